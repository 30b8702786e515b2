//! The compile pass: from validated `*Spec` values to runtime types, checking every
//! cross-reference (templates exist, droplets and endpoints known, slots declared, variables
//! defined, regexes valid, intents unique) and recording each problem with its location.

mod calls;
mod catalogue;
mod documents;
mod pipeline;
mod pipelines;
mod slots;
mod steps;
mod syntax_errors;
mod templates;
mod variables;
mod vocabulary;

use std::collections::BTreeSet;
use std::sync::Arc;

use indexmap::IndexMap;

pub(super) use documents::Document;

use super::files::{ConfigFiles, CATALOGUE_FILE};
use super::spec::SlotSpec;
use super::CompiledConfig;
use crate::catalogue::Catalogue;
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Position};
use crate::identity::Identity;
use crate::intent::{IntentRules, Resolver};
use crate::nlu::vocabulary::Vocabulary;
use crate::nlu::Analyzer;
use crate::pipeline::Pipeline;
use crate::steps::ReplyTemplates;
use crate::template::Templates;

/// One load of the configuration: what it is reading, and what it has found so far.
pub(super) struct Compiler<'a> {
    files: &'a ConfigFiles,
    diagnostics: &'a mut Diagnostics,
    /// Problems worth a look that do not stop loading.
    warnings: Diagnostics,
    /// Endpoints templates read whose answers declare no shape, said once at the end.
    unchecked_answers: BTreeSet<String>,
}

/// What compiled, waiting for the last checks before it becomes a `CompiledConfig`.
struct Parts {
    catalogue: Catalogue,
    identity: Identity,
    welcome: ReplyTemplates,
    unread: ReplyTemplates,
    vocabulary: Vocabulary,
    templates: Templates,
    pipelines: Vec<(Pipeline, IntentRules)>,
}

/// Where a check is: the file it reports in, and what the templates and templated values used
/// there may read. There is one per pipeline and one for the catalogue's samples; the JSON
/// pointer inside the file goes beside it, because it changes at every level of a step.
pub(super) struct Scope<'s> {
    pub(super) doc: &'s Document,
    pub(super) templates: &'s Templates,
    /// The names everything rendered here is given: the engine's context and the pipeline's
    /// results (`as:`).
    pub(super) known: Vec<String>,
    /// The slots as declared, for their kinds (a `$slot` droplet, the type a body value sends);
    /// none outside a pipeline.
    pub(super) slots: &'s IndexMap<String, SlotSpec>,
    /// Their names in the order written, for suggestions and the lists in messages.
    pub(super) slot_names: Vec<String>,
}

impl<'s> Scope<'s> {
    pub(super) fn new(
        doc: &'s Document,
        templates: &'s Templates,
        known: Vec<String>,
        slots: &'s IndexMap<String, SlotSpec>,
    ) -> Self {
        Scope { doc, templates, known, slots, slot_names: slots.keys().cloned().collect() }
    }
}

impl<'a> Compiler<'a> {
    pub(super) fn new(files: &'a ConfigFiles, diagnostics: &'a mut Diagnostics) -> Self {
        Compiler { files, diagnostics, warnings: Diagnostics::default(), unchecked_answers: BTreeSet::new() }
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// The passes, in the order their results are needed. A part that does not compile is `None`
    /// and the passes after it still run, so one load reports every problem.
    pub(super) fn run(mut self) -> Option<CompiledConfig> {
        let schemas = self.schemas()?;
        let mut templates = self.templates();
        let vocabulary = self.vocabulary(&schemas.vocabulary);
        let welcome = self.welcome(&templates);
        let unread = self.unread(&templates);
        let catalogue = self.catalogue(&schemas.catalogue, &templates);
        let identity = catalogue.as_ref().and_then(|c| self.identity(&schemas.udc_config, c));
        if let Some(catalogue) = &catalogue {
            templates.use_statuses(catalogue.statuses.clone());
        }
        // a vocabulary that does not compile fails the load anyway; its nouns are then none
        let generic_nouns = vocabulary.as_ref().map(|v| v.nouns().generic_nouns.clone()).unwrap_or_default();
        let pipelines = self.pipelines(&schemas.pipeline, catalogue.as_ref(), &templates, &generic_nouns);
        let parts = Parts {
            catalogue: catalogue?,
            identity: identity?,
            welcome: welcome?,
            unread: unread?,
            vocabulary: vocabulary?,
            templates,
            pipelines,
        };
        let fallback = parts.pipelines.iter().find(|(p, _)| p.fallback).map(|(p, _)| p.intent.clone())?;
        if !self.diagnostics.is_empty() {
            return None;
        }
        self.unchecked_answers_warning();
        Some(self.assemble(parts, fallback))
    }

    /// The runtime configuration from parts that all compiled: pipelines sorted by intent, the
    /// resolver over their rules, and the values templates read globally.
    fn assemble(&mut self, parts: Parts, fallback: String) -> CompiledConfig {
        let Parts { catalogue, identity, welcome, unread, vocabulary, templates, mut pipelines } = parts;
        // the fallback answers when no rule decides, so it takes no part in resolving
        let rules: Vec<IntentRules> = pipelines
            .iter_mut()
            .filter(|(p, _)| !p.fallback)
            .map(|(p, r)| IntentRules { changes_state: p.changes_state, ..std::mem::take(r) })
            .collect();
        let mut pipelines: Vec<Pipeline> = pipelines.into_iter().map(|(p, _)| p).collect();
        pipelines.sort_by(|a, b| a.intent.cmp(&b.intent));
        let intents_value = crate::template::to_value(
            pipelines
                .iter()
                .filter(|p| p.listed && !p.fallback && !p.interrupts)
                .map(|p| serde_json::json!({"id": p.intent, "description": p.description, "examples": p.examples}))
                .collect::<Vec<_>>(),
        );
        let classifier = crate::understand::Classifier::build(&pipelines, &catalogue);
        // every text a steward wrote that users may echo is a known word (typo correction)
        let known: Vec<&str> = rules
            .iter()
            .flat_map(|r| r.examples.iter().chain(&r.keywords).map(String::as_str))
            .chain(pipelines.iter().map(|p| p.description.as_str()))
            .chain(
                pipelines
                    .iter()
                    .flat_map(|p| p.slots.iter().flat_map(|s| s.phrases.iter().map(|f| f.written.as_str()))),
            )
            .collect();
        let focus_turns = vocabulary.focus_turns();
        let command_lead = vocabulary.command_lead();
        let analyzer = Arc::new(Analyzer::new(&catalogue, vocabulary, known.into_iter()));
        let keywords: Vec<(&str, &str)> =
            rules.iter().flat_map(|r| r.keywords.iter().map(|k| (r.intent.as_str(), k.as_str()))).collect();
        let capabilities =
            crate::config::capabilities::Capabilities::build(&pipelines, &keywords, &catalogue, &analyzer);
        let resolver = Resolver::new(rules, fallback, analyzer).with_command_lead(command_lead);
        CompiledConfig {
            focus_turns,
            classifier,
            warnings: std::mem::take(&mut self.warnings),
            resolver,
            capabilities,
            droplets_value: crate::template::to_value(&catalogue.droplets),
            intents_value,
            pipelines,
            catalogue: Arc::new(catalogue),
            identity,
            welcome,
            unread,
            templates: Arc::new(templates),
            origin: self.files.origin.clone(),
        }
    }

    /// One warning for all the endpoints whose answers templates read without a declared shape,
    /// rather than one per read.
    fn unchecked_answers_warning(&mut self) {
        if self.unchecked_answers.is_empty() {
            return;
        }
        let listed: Vec<&str> = self.unchecked_answers.iter().map(String::as_str).collect();
        self.warnings.push(
            Diagnostic::new(
                Code::UncheckedRead,
                CATALOGUE_FILE,
                Position::default(),
                format!(
                    "templates read fields of answers that declare no shape, so those reads are not checked: {}",
                    listed.join("; ")
                ),
            )
            .with_help("declare `response:` on these endpoints (see STEWARDS.md, \"What a query gives you\")"),
        );
    }
}
