//! Loading the stewards' configuration: files → located YAML → schema check → `*Spec` →
//! compiled runtime types, collecting every problem before failing.
//!
//! [`load`] is the only entry point. It is pure (it is handed the files) and all-or-nothing: it
//! returns a complete [`CompiledConfig`] or every [`Diagnostic`] found, never a half-built one.

mod answer_shapes;
pub mod capabilities;
mod compile;
mod files;
mod patterns;
mod schema;
mod spec;
mod template_reads;
mod yaml;

use std::sync::Arc;

pub use files::{ConfigFiles, ReadError, CATALOGUE_FILE, CONFIG_FOLDERS, UDC_CONFIG_FILE, VOCABULARY_FILE};
pub use schema::suggest;

use crate::catalogue::Catalogue;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::identity::Identity;
use crate::intent::Resolver;
use crate::pipeline::Pipeline;
use crate::template::Templates;

/// The schemas are part of the program (they describe what this build understands), so they are
/// compiled in rather than read from the configuration being checked.
pub const PIPELINE_SCHEMA: &str = include_str!("../../schemas/pipeline.schema.json");
pub const CATALOGUE_SCHEMA: &str = include_str!("../../schemas/catalogue.schema.json");
pub const UDC_CONFIG_SCHEMA: &str = include_str!("../../schemas/udc_config.schema.json");
pub const VOCABULARY_SCHEMA: &str = include_str!("../../schemas/vocabulary.schema.json");

/// One immutable, fully checked version of the configuration. The engine holds it behind an
/// `Arc`; a turn uses exactly one version from start to end.
#[derive(Debug)]
pub struct CompiledConfig {
    /// For how many of the user's messages a value they named stays in the conversation's
    /// focus (`focus.turns` in the vocabulary).
    pub focus_turns: u32,
    /// Sorted by intent id.
    pub pipelines: Vec<Pipeline>,
    pub resolver: Resolver,
    /// The actions its intents serve, to tell a request it cannot serve.
    pub capabilities: capabilities::Capabilities,
    /// The language-model call that chooses among these pipelines when no rule decides.
    pub classifier: crate::understand::Classifier,
    pub catalogue: Arc<Catalogue>,
    /// This droplet's UDC identity (`udc_config.json`).
    pub identity: Identity,
    /// The greeting sent to WebSocket clients on connect.
    pub welcome: crate::steps::ReplyTemplates,
    /// What is said about the part of a several-request message no intent could read.
    pub unread: crate::steps::ReplyTemplates,
    pub templates: Arc<Templates>,
    /// Template globals, built once.
    pub droplets_value: minijinja::Value,
    pub intents_value: minijinja::Value,
    /// Where the files came from (a directory or `embedded`).
    pub origin: String,
    /// Things worth a steward's look that do not stop loading (an example another intent wins).
    pub warnings: Diagnostics,
}

impl CompiledConfig {
    pub fn pipeline(&self, intent: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.intent == intent)
    }
}

/// A configuration that did not load, with everything wrong with it.
#[derive(Debug)]
pub struct LoadError {
    pub diagnostics: Diagnostics,
    files: ConfigFiles,
}

impl LoadError {
    /// Every problem with a source snippet, ready to print.
    pub fn render(&self) -> String {
        self.diagnostics.render(|path| self.files.get(path))
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for LoadError {}

/// A warning for every example that resolves to another intent than its own: the steward's
/// example teaches the wrong thing (or the other intent's patterns are too wide). It resolves
/// every example, so `check` asks for it; a reload does not wait for it.
pub fn example_warnings(config: &CompiledConfig) -> Diagnostics {
    let mut warnings = Diagnostics::default();
    for (intent, example, resolution) in config.resolver.claimed_examples() {
        let Some(pipeline) = config.pipeline(&intent) else { continue };
        let index = pipeline.examples.iter().position(|e| *e == example).unwrap_or_default();
        let at = pipeline.example_positions.get(index).copied().unwrap_or_default();
        let won = if resolution.intent == config.resolver.fallback() {
            "no intent (it falls back)".to_owned()
        } else {
            format!("`{}`", resolution.intent)
        };
        warnings.push(
            Diagnostic::new(
                Code::ExampleClaimed,
                &pipeline.file,
                at,
                format!("the example \"{example}\" of `{intent}` is understood as {won}: {}", resolution.reason),
            )
            .with_help(format!("reword the example, or narrow what makes {won} win (its patterns, or a `none:` veto)")),
        );
    }
    warnings.sort();
    warnings
}

/// Checks and compiles a configuration.
pub fn load(files: &ConfigFiles) -> Result<CompiledConfig, LoadError> {
    let mut diagnostics = Diagnostics::default();
    let compiled = compile::Compiler::new(files, &mut diagnostics).run();
    diagnostics.sort();
    match compiled {
        Some(mut config) if diagnostics.is_empty() => {
            config.warnings.sort();
            Ok(config)
        }
        _ => {
            if diagnostics.is_empty() {
                // the compiler gave up without saying why: a bug, but never a silent success
                diagnostics.push(Diagnostic::new(
                    Code::Io,
                    "(configuration)",
                    Default::default(),
                    "configuration did not compile",
                ));
            }
            Err(LoadError { diagnostics, files: files.clone() })
        }
    }
}
