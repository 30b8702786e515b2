//! Chat Orchestrator (droplet 12): a declarative conversation engine.
//!
//! Stewards describe each intent as a YAML pipeline (`pipelines/`) and write its replies as
//! minijinja templates (`templates/`); the droplets of the mesh are data (`catalogue/`). This
//! crate checks and compiles that configuration and runs it behind a poem-openapi server.
//! ARCHITECTURE.md has the data flow and the invariants.
//!
//! # Layout
//!
//! - [`config`]: files → located YAML → JSON Schema → `*Spec` → [`config::CompiledConfig`],
//!   collecting every [`diagnostic::Diagnostic`] before failing.
//! - [`engine`]: one turn in, one reply out; pure (no HTTP, no files).
//! - [`intent`]: rule-based intent resolution that explains itself.
//! - [`pipeline`] and [`steps`]: the runtime pipeline and its step kinds (`extract`, `query`,
//!   `format`), one file each.
//! - [`slots`]: `key:value` parsing, coercion and validation of slot values.
//! - [`catalogue`]: the droplets; [`backend`]: how droplet calls are made (the bundled sample
//!   data by default).
//! - [`template`] and [`speech`]: the minijinja environment, and the voice channel's text rules.
//! - [`session`]: conversation state behind a store trait, in memory by default.
//! - [`api`] and [`server`]: the HTTP surface; [`settings`]: environment variables.

pub mod api;
pub mod auth;
pub mod backend;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod connections;
pub mod coverage;
pub mod credentials;
pub mod diagnostic;
pub mod dialogue;
pub mod droplet_ids;
pub mod engine;
pub mod envelope;
pub mod fixture;
pub mod identity;
pub mod intent;
pub mod lifecycle;
pub mod llm;
pub mod mesh;
pub mod metrics;
pub mod nlu;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod server;
pub mod session;
pub mod settings;
pub mod shapes;
pub mod slots;
pub mod speech;
pub mod stats;
pub mod statuses;
pub mod steps;
pub mod template;
pub mod trace;
pub mod turn_events;
pub mod understand;
pub mod util;
pub mod utterances;

/// The layering ARCHITECTURE.md states ("Layers"), checked on the source: a module may name
/// (`crate::x`) only modules on its own layer or below.
#[cfg(test)]
mod layering {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Bottom to top, as in ARCHITECTURE.md.
    const LAYERS: &[&[&str]] = &[
        &[
            "util",
            "droplet_ids",
            "statuses",
            "diagnostic",
            "shapes",
            "auth",
            "connections",
            "credentials",
            "identity",
            "metrics",
        ],
        &[
            "catalogue",
            "nlu",
            "speech",
            "template",
            "intent",
            "slots",
            "backend",
            "trace",
            "llm",
            "session",
            "envelope",
            "stats",
            "lifecycle",
            "mesh",
            "turn_events",
        ],
        &["pipeline", "steps", "dialogue", "understand"],
        &["config", "coverage"],
        &["engine"],
        &["replay", "reload", "fixture", "utterances", "settings", "api", "server", "cli"],
    ];

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|layer| layer.contains(&module))
    }

    /// The modules a file names, outside comments and its `#[cfg(test)]` part.
    fn named(source: &str) -> BTreeSet<String> {
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let pattern = regex::Regex::new(r"crate::([a-z_]+)").expect("static pattern");
        code.lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .flat_map(|line| pattern.captures_iter(line).map(|c| c[1].to_owned()).collect::<Vec<_>>())
            .collect()
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_reaches_up() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let mut wrong = Vec::new();
        for path in all {
            let relative = path.strip_prefix(&src).expect("under src");
            let top = relative.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or_default();
            let module = top.trim_end_matches(".rs");
            if module == "lib" || module == "main" {
                continue;
            }
            let own = layer_of(module)
                .unwrap_or_else(|| panic!("`{module}` is in no layer: add it to LAYERS and ARCHITECTURE.md"));
            let source = std::fs::read_to_string(&path).expect("readable");
            for used in named(&source) {
                if let Some(theirs) = layer_of(&used) {
                    if theirs > own {
                        wrong.push(format!(
                            "{} (layer {}) uses `{used}` (layer {})",
                            relative.display(),
                            own + 1,
                            theirs + 1
                        ));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "modules reaching up a layer:\n{}", wrong.join("\n"));
    }
}
