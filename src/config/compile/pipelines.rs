//! The pipeline files as a set: names that would not be read, and what must hold across them.

use std::collections::{BTreeMap, BTreeSet};

use super::{Compiler, Document};
use crate::catalogue::Catalogue;
use crate::config::schema::suggest;
use crate::config::schema::Schema;
use crate::config::spec::PipelineSpec;
use crate::diagnostic::{Code, Diagnostic, Position};
use crate::intent::IntentRules;
use crate::pipeline::Pipeline;
use crate::template::Templates;

impl Compiler<'_> {
    /// Every pipeline file, each compiled against the catalogue when there is one (without it,
    /// only parsed), then the checks across all of them.
    pub(super) fn pipelines(
        &mut self,
        schema: &Schema,
        catalogue: Option<&Catalogue>,
        templates: &Templates,
        generic_nouns: &[String],
    ) -> Vec<(Pipeline, IntentRules)> {
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
            let Some((document, spec)) = self.parse::<PipelineSpec>(file, text, schema) else { continue };
            if let Some(catalogue) = catalogue {
                if let Some(compiled) = self.pipeline(&document, &spec, catalogue, templates, generic_nouns) {
                    pipelines.push(compiled);
                }
            }
            documents.push((document, spec));
        }
        self.across_pipelines(&documents);
        pipelines
    }

    /// Files under `pipelines/` that would silently not be read: another extension (`.yml`), or
    /// a subfolder (pipelines are read from the folder itself).
    fn pipeline_file_names(&mut self) {
        let misplaced: Vec<String> = self
            .files
            .under("pipelines", "")
            .map(|(p, _)| p.to_owned())
            .filter(|p| !p.ends_with(".yaml") || p["pipelines/".len()..].contains('/'))
            .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml"))
            .collect();
        for path in misplaced {
            let name = path.rsplit('/').next().unwrap_or_default();
            let stem = name.trim_end_matches(".yml").trim_end_matches(".yaml");
            let (message, help) = if path.ends_with(".yml") && !path["pipelines/".len()..].contains('/') {
                (
                    format!("{path} is not read: pipeline files end in `.yaml`"),
                    format!("rename it to pipelines/{stem}.yaml"),
                )
            } else {
                (
                    format!(
                        "{path} is not read: pipelines are read from pipelines/ itself, not from a folder inside it"
                    ),
                    format!("move it to pipelines/{stem}.yaml"),
                )
            };
            self.report(Diagnostic::new(Code::FileName, &path, Position::default(), message).with_help(help));
        }
    }

    /// Checks that only make sense across all pipelines: unique intents, one fallback, tests
    /// naming real intents.
    fn across_pipelines(&mut self, documents: &[(Document, PipelineSpec)]) {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        let taken = |name: &str| {
            documents.iter().any(|(_, s)| s.intent == name)
                || self.files.get(&format!("pipelines/{name}.yaml")).is_some()
        };
        let mut duplicates = Vec::new();
        // the pipeline a duplicate copies is the one whose file is named after the intent: the
        // problem is reported on the other file, the one to change
        let named_after = |doc: &Document, intent: &str| doc.file == format!("pipelines/{intent}.yaml");
        let mut ordered: Vec<&(Document, PipelineSpec)> = documents.iter().collect();
        ordered.sort_by_key(|(doc, spec)| !named_after(doc, &spec.intent));
        for (doc, spec) in ordered {
            if let Some(first) = seen.insert(&spec.intent, &doc.file) {
                // a name no pipeline and no file has: the file's own name if free, else a number
                let stem = doc.file.trim_start_matches("pipelines/").trim_end_matches(".yaml");
                let free = std::iter::once(stem.to_owned())
                    .chain((2..).map(|n| format!("{}_{n}", spec.intent)))
                    .find(|name| (name == stem && !documents.iter().any(|(_, s)| s.intent == *name)) || !taken(name))
                    .unwrap_or_else(|| format!("{}_copy", spec.intent));
                let help = if free == stem {
                    format!("every pipeline needs its own intent id: set `intent: {free}`, the name of this file")
                } else {
                    format!("every pipeline needs its own intent id: e.g. `intent: {free}`, in a file named pipelines/{free}.yaml")
                };
                duplicates.push(
                    Diagnostic::new(
                        Code::DuplicateIntent,
                        &doc.file,
                        doc.at("/intent"),
                        format!("intent `{}` is already defined in {first}", spec.intent),
                    )
                    .with_help(help),
                );
            }
        }
        for diagnostic in duplicates {
            self.report(diagnostic);
        }
        let fallbacks: Vec<&(Document, PipelineSpec)> = documents.iter().filter(|(_, s)| s.fallback).collect();
        if fallbacks.len() > 1 {
            for (doc, _) in &fallbacks[1..] {
                self.report(
                    Diagnostic::new(
                        Code::ManyFallbacks,
                        &doc.file,
                        doc.at("/fallback"),
                        format!("more than one pipeline is the fallback (also {})", fallbacks[0].0.file),
                    )
                    .with_help("keep `fallback: true` on exactly one pipeline"),
                );
            }
        }
        if fallbacks.is_empty() && !documents.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::NoFallback,
                    "pipelines/",
                    Position::default(),
                    "no pipeline is marked `fallback: true`, so unrecognised messages would get no reply",
                )
                .with_help("add `fallback: true` to the pipeline that should answer when nothing else matches"),
            );
        }
        let intents: BTreeSet<&str> = documents.iter().map(|(_, s)| s.intent.as_str()).collect();
        for (doc, spec) in documents {
            for (i, test) in spec.tests.iter().enumerate() {
                if !intents.contains(test.expect_intent.as_str()) {
                    let mut diagnostic = Diagnostic::new(
                        Code::UnknownTestIntent,
                        &doc.file,
                        doc.at(&format!("/tests/{i}/expect_intent")),
                        format!("test expects intent `{}`, which no pipeline defines", test.expect_intent),
                    );
                    if let Some(best) = suggest(&test.expect_intent, intents.iter().copied()) {
                        diagnostic = diagnostic.with_help(format!("did you mean `{best}`?"));
                    }
                    self.report(diagnostic);
                }
            }
        }
    }
}
