//! The compile pass: from validated `*Spec` values to runtime types, checking every
//! cross-reference (templates exist, droplets and endpoints known, slots declared, variables
//! defined, regexes valid, intents unique) and recording each problem with its location.

mod calls;
mod catalogue;
mod documents;
mod pipeline;
mod pipelines;
mod steps;
mod syntax_errors;
mod templates;
mod variables;
mod vocabulary;

use std::collections::BTreeSet;
use std::sync::Arc;

pub(super) use documents::Document;
use templates::{UNREAD, UNREAD_CONTEXT_NAMES};

use super::files::{ConfigFiles, CATALOGUE_FILE};
use super::spec::PipelineSpec;
use super::{CompiledConfig, CATALOGUE_SCHEMA, PIPELINE_SCHEMA, UDC_CONFIG_SCHEMA, VOCABULARY_SCHEMA};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Position};
use crate::intent::{IntentRules, Resolver};
use crate::nlu::Analyzer;
use crate::pipeline::Pipeline;
use crate::template::Templates;

pub(super) struct Compiler<'a> {
    files: &'a ConfigFiles,
    diagnostics: &'a mut Diagnostics,
    /// Problems worth a look that do not stop loading.
    warnings: Diagnostics,
    /// Endpoints templates read whose answers declare no shape, said once at the end.
    unchecked_answers: BTreeSet<String>,
}

impl<'a> Compiler<'a> {
    pub(super) fn new(files: &'a ConfigFiles, diagnostics: &'a mut Diagnostics) -> Self {
        Compiler { files, diagnostics, warnings: Diagnostics::default(), unchecked_answers: BTreeSet::new() }
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub(super) fn run(mut self) -> Option<CompiledConfig> {
        let pipeline_schema = self.schema("schemas/pipeline.schema.json", PIPELINE_SCHEMA)?;
        let catalogue_schema = self.schema("schemas/catalogue.schema.json", CATALOGUE_SCHEMA)?;

        let mut templates = Templates::new();
        self.add_templates(&mut templates);

        let udc_schema = self.schema("schemas/udc_config.schema.json", UDC_CONFIG_SCHEMA)?;
        let vocabulary_schema = self.schema("schemas/vocabulary.schema.json", VOCABULARY_SCHEMA)?;
        let vocabulary = self.vocabulary(&vocabulary_schema);

        let welcome = self.welcome(&templates);
        let unread = self.engine_templates(
            &templates,
            UNREAD,
            UNREAD_CONTEXT_NAMES,
            "the reply about a part of a message nobody understood",
            "it says which part of a several-request message was not understood",
        );
        let catalogue = self.catalogue(&catalogue_schema, &templates);
        let identity = catalogue.as_ref().and_then(|c| self.identity(&udc_schema, c));

        let mut pipelines = Vec::new();
        self.pipeline_file_names();
        let pipeline_files: Vec<(String, String)> = self
            .files
            .under("pipelines", ".yaml")
            .filter(|(p, _)| !p["pipelines/".len()..].contains('/'))
            .map(|(p, t)| (p.to_owned(), t.to_owned()))
            .collect();
        if pipeline_files.is_empty() {
            self.report(
                Diagnostic::new(Code::NoFallback, "pipelines/", Position::default(), "there are no pipelines")
                    .with_help("add at least a fallback pipeline, e.g. pipelines/fallback.yaml with `fallback: true`"),
            );
        }
        let mut documents = Vec::new();
        for (file, text) in &pipeline_files {
            let Some((document, spec)) = self.parse::<PipelineSpec>(file, text, &pipeline_schema) else { continue };
            if let Some(catalogue) = &catalogue {
                if let Some(compiled) = self.pipeline(&document, &spec, catalogue, &templates) {
                    pipelines.push(compiled);
                }
            }
            documents.push((document, spec));
        }
        self.across_pipelines(&documents);

        let catalogue = catalogue?;
        let identity = identity?;
        let welcome = welcome?;
        let unread = unread?;
        let vocabulary = vocabulary?;
        let fallback = pipelines.iter().find(|(p, _)| p.fallback).map(|(p, _)| p.intent.clone())?;
        if !self.diagnostics.is_empty() {
            return None;
        }
        // the fallback answers when no rule decides, so it takes no part in resolving
        let rules: Vec<IntentRules> =
            pipelines.iter_mut().filter(|(p, _)| !p.fallback).map(|(_, r)| std::mem::take(r)).collect();
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
        let analyzer = Arc::new(Analyzer::new(&catalogue, vocabulary, known.into_iter()));
        let resolver = Resolver::new(rules, fallback, analyzer);
        if !self.unchecked_answers.is_empty() {
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
        let warnings = std::mem::take(&mut self.warnings);
        Some(CompiledConfig {
            classifier,
            warnings,
            resolver,
            droplets_value: crate::template::to_value(&catalogue.droplets),
            intents_value,
            pipelines,
            catalogue: Arc::new(catalogue),
            identity,
            welcome,
            unread,
            templates: Arc::new(templates),
            origin: self.files.origin.clone(),
        })
    }
}
