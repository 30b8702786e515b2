//! One pipeline: its file name and intent rules, its result names, the consent and answer-read
//! checks over its steps, and the runtime `Pipeline` built from it.

use std::collections::HashSet;

use regex::Regex;

use super::{Compiler, Document, Scope};
use crate::catalogue::Catalogue;
use crate::config::patterns;
use crate::config::spec::{PipelineSpec, SlotKindSpec};
use crate::config::template_reads;
use crate::diagnostic::{Code, Diagnostic};
use crate::intent::IntentRules;
use crate::pipeline::{Pipeline, PipelineTest};
use crate::slots::{GenericWords, KeyValueParser, SlotDef};
use crate::template::{
    Templates, ASK_CONTEXT_NAMES, CONFIRM_CONTEXT_NAMES, CONTEXT_NAMES, GIVE_UP_CONTEXT_NAMES, PROGRESS_CONTEXT_NAMES,
};

impl Compiler<'_> {
    /// One pipeline, checked in the order its file is written. It is built only when none of
    /// these checks found a problem in it; the other pipelines are built either way.
    pub(super) fn pipeline(
        &mut self,
        doc: &Document,
        spec: &PipelineSpec,
        catalogue: &Catalogue,
        templates: &Templates,
        generic_nouns: &[String],
    ) -> Option<(Pipeline, IntentRules)> {
        let errors_before = self.diagnostics.len();
        self.intent_name(doc, spec);
        let rules = self.intent_rules(doc, spec);
        let slots = self.slots(doc, spec);
        let result_names = self.result_names(doc, spec);
        let mut known: Vec<String> = CONTEXT_NAMES.iter().map(|s| s.to_string()).collect();
        known.extend(result_names.iter().cloned());
        let scope = Scope::new(doc, templates, known, &spec.slots);
        self.consent_before_changes(doc, spec, catalogue);
        let steps = self.steps(&scope, spec, catalogue);
        self.answer_reads(doc, spec, catalogue);
        if self.diagnostics.len() > errors_before {
            return None;
        }
        let parser = self.key_value_parser(doc, &slots)?;
        let pipeline = Pipeline {
            generic_words: GenericWords::new(own_words(spec, &slots), generic_nouns.to_vec()),
            intent: spec.intent.clone(),
            description: spec.description.clone(),
            examples: spec.examples.clone(),
            fallback: spec.fallback,
            interrupts: spec.interrupts,
            changes_state: changes_state(spec, catalogue),
            listed: spec.listed,
            slots,
            parser,
            steps,
            result_names,
            tests: tests(doc, spec),
            fingerprint: fingerprint(&doc.text),
            legacy_fingerprint: legacy_fingerprint(&doc.text),
            file: doc.file.clone(),
            example_positions: (0..spec.examples.len()).map(|i| doc.at(&format!("/examples/{i}"))).collect(),
            step_lines: (0..spec.steps.len()).map(|i| doc.at(&format!("/steps/{i}")).line).collect(),
        };
        Some((pipeline, rules))
    }

    /// A pipeline's file is named after its intent, so the intent is found by its file.
    fn intent_name(&mut self, doc: &Document, spec: &PipelineSpec) {
        let stem = doc.file.trim_start_matches("pipelines/").trim_end_matches(".yaml");
        if spec.intent != stem {
            self.report(
                Diagnostic::new(
                    Code::IntentName,
                    &doc.file,
                    doc.at("/intent"),
                    format!("intent `{}` does not match the file name `{stem}.yaml`", spec.intent),
                )
                .with_help(if self.files.get(&format!("pipelines/{}.yaml", spec.intent)).is_some() {
                    // the file it would be renamed to is another pipeline's
                    format!(
                        "pipelines/{}.yaml already defines `{}`; set `intent: {stem}` to match this file's name",
                        spec.intent, spec.intent
                    )
                } else {
                    format!("rename the file to `{}.yaml` or set `intent: {stem}`", spec.intent)
                }),
            );
        }
    }

    /// What the rule resolver needs of this intent: its patterns (each regex checked), keywords,
    /// examples, and the words that start one of its slot phrases.
    fn intent_rules(&mut self, doc: &Document, spec: &PipelineSpec) -> IntentRules {
        IntentRules {
            intent: spec.intent.clone(),
            priority: spec.priority,
            any: self.regexes(doc, "/match/any", &spec.rules.any),
            all: self.regexes(doc, "/match/all", &spec.rules.all),
            none: self.regexes(doc, "/match/none", &spec.rules.none),
            keywords: spec.rules.keywords.iter().map(|k| k.to_lowercase()).collect(),
            examples: spec.examples.clone(),
            interrupts: spec.interrupts,
            droplet_slot: spec.slots.values().any(|s| s.kind == SlotKindSpec::Droplet),
            // set from the compiled pipeline, which knows its calls' methods
            changes_state: false,
            conversational: spec.steps.iter().all(|s| s.extract.is_none() && s.query.is_none() && s.reason.is_none()),
            slot_leads: spec
                .slots
                .iter()
                .flat_map(|(name, slot)| {
                    std::iter::once(name.replace('_', " "))
                        .chain(slot.aliases.iter().map(|a| a.replace('_', " ")))
                        .chain(slot.from.iter().cloned())
                        .collect::<Vec<_>>()
                })
                .filter_map(|text| {
                    crate::nlu::text::words(&text.replace("{value}", " ")).into_iter().next().map(|w| w.text)
                })
                .collect(),
        }
    }

    fn regexes(&mut self, document: &Document, pointer: &str, patterns: &[String]) -> Vec<Regex> {
        let mut out = Vec::new();
        for (i, pattern) in patterns.iter().enumerate() {
            let at = document.at(&format!("{pointer}/{i}"));
            let line = document.text.lines().nth(at.line.saturating_sub(1) as usize).unwrap_or_default();
            match patterns::compile(pattern, &document.file, at, line) {
                Ok(regex) => out.push(regex),
                Err(diagnostic) => self.report(diagnostic),
            }
        }
        out
    }

    /// The key:value parser over every slot name and alias.
    fn key_value_parser(&mut self, doc: &Document, slots: &[SlotDef]) -> Option<KeyValueParser> {
        match KeyValueParser::new(slots.iter().flat_map(|s| s.keys.iter().map(String::as_str))) {
            Ok(parser) => Some(parser),
            Err(error) => {
                self.report(
                    Diagnostic::new(
                        Code::SlotSchema,
                        &doc.file,
                        doc.at("/slots"),
                        format!("the slot names and aliases do not make a usable pattern: {error}"),
                    )
                    .with_help("use fewer or shorter aliases"),
                );
                None
            }
        }
    }

    /// Every read of a droplet answer in the pipeline's templates and conditions, resolved
    /// against the answer's declared shape (`config::template_reads`).
    fn answer_reads(&mut self, doc: &Document, spec: &PipelineSpec, catalogue: &Catalogue) {
        let files = self.files;
        let get = move |name: &str| files.get(&format!("templates/{name}"));
        let sources = template_reads::Sources { get: &get };
        let mut findings = template_reads::Findings::default();
        template_reads::check_pipeline(&sources, spec, catalogue, &doc.file, &|pointer| doc.at(pointer), &mut findings);
        for error in findings.errors {
            self.report(error);
        }
        for warning in findings.warnings {
            self.warnings.push(warning);
        }
        self.unchecked_answers.extend(findings.unchecked);
    }

    /// A warning for every state-changing call (not GET) with no `confirm` step before it and
    /// no `without_consent: true`: a misheard value would change something without a read-back.
    fn consent_before_changes(&mut self, doc: &Document, spec: &PipelineSpec, catalogue: &Catalogue) {
        let mut confirmed = false;
        for (i, step) in spec.steps.iter().enumerate() {
            confirmed |= step.confirm.is_some();
            let Some(query) = &step.query else { continue };
            for (suffix, call) in query.calls() {
                if call_changes_state(call, catalogue) && !confirmed && !call.without_consent {
                    self.warnings.push(
                        Diagnostic::new(
                            Code::NoConsent,
                            &doc.file,
                            doc.at(&format!("/steps/{i}/query{suffix}")),
                            format!("`{}` changes something, and nothing asks the user before it is sent", call.endpoint),
                        )
                        .with_help(
                            "add a `confirm:` step before this query that reads the values back, or `without_consent: true` on the call",
                        ),
                    );
                }
            }
        }
    }

    /// Every `as` name in the pipeline, with the `<as>_summary` a fan-out gives beside its
    /// list; reports names used twice or shadowing engine names.
    fn result_names(&mut self, doc: &Document, spec: &PipelineSpec) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        // the names that are a fan-out's summary, with the fan-out's own name
        let mut summaries: Vec<(String, String)> = Vec::new();
        for (i, step) in spec.steps.iter().enumerate() {
            let mut named: Vec<(String, String, Option<String>)> = Vec::new();
            if let Some(query) = &step.query {
                for (suffix, call) in query.calls() {
                    let pointer = format!("/steps/{i}/query{suffix}/as");
                    named.push((pointer.clone(), call.name.clone(), None));
                    if call.droplets.is_some() {
                        named.push((pointer, crate::steps::summary_name(&call.name), Some(call.name.clone())));
                    }
                }
            }
            if let Some(reason) = &step.reason {
                named.push((format!("/steps/{i}/reason/as"), reason.name.clone(), None));
            }
            for (pointer, name, summary_of) in named {
                let at = doc.at(&pointer);
                let taken: Vec<&str> = [
                    CONTEXT_NAMES,
                    ASK_CONTEXT_NAMES,
                    CONFIRM_CONTEXT_NAMES,
                    GIVE_UP_CONTEXT_NAMES,
                    PROGRESS_CONTEXT_NAMES,
                ]
                .concat();
                let earlier_summary = summaries.iter().find(|(n, _)| *n == name).map(|(_, of)| of.clone());
                if taken.contains(&name.as_str()) {
                    self.report(
                        Diagnostic::new(
                            Code::DuplicateResult,
                            &doc.file,
                            at,
                            format!("`{}` is a name the engine already provides to templates", name),
                        )
                        .with_help(format!("choose another name; taken names are: {}", taken.join(", "))),
                    );
                } else if names.contains(&name) {
                    let message = match (summary_of, earlier_summary) {
                        (Some(of), _) => format!(
                            "the fan-out `{of}` gives its summary as `{name}`, but an earlier step already stores a result under that name"
                        ),
                        (None, Some(of)) => format!("`{name}` is already the summary of the fan-out `{of}`"),
                        (None, None) => format!("two steps store their result as `{}`", name),
                    };
                    self.report(
                        Diagnostic::new(Code::DuplicateResult, &doc.file, at, message)
                            .with_help("give each call or reason step its own `as:` name; a `droplets:` query also takes `<as>_summary`"),
                    );
                } else {
                    if let Some(of) = summary_of {
                        summaries.push((name.clone(), of));
                    }
                    names.push(name);
                }
            }
        }
        names
    }
}

/// The pipeline's own words (description, slot prompts, names and aliases, with their stems),
/// so that a word the intent is about is not read as a slot's value.
fn own_words(spec: &PipelineSpec, slots: &[SlotDef]) -> HashSet<String> {
    let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
    std::iter::once(spec.description.as_str())
        .chain(spec.slots.values().map(|s| s.prompt.as_str()))
        .chain(spec.slots.keys().map(String::as_str))
        .chain(slots.iter().flat_map(|s| s.keys.iter().map(String::as_str)))
        .flat_map(|text| crate::nlu::text::words(&text.replace('_', " ")).into_iter().map(|w| w.text))
        .flat_map(|word| [stemmer.stem(&word).into_owned(), word])
        .collect()
}

fn tests(doc: &Document, spec: &PipelineSpec) -> Vec<PipelineTest> {
    spec.tests
        .iter()
        .enumerate()
        .map(|(i, t)| PipelineTest {
            line: doc.at(&format!("/tests/{i}/say")).line,
            say: t.say.clone(),
            expect_intent: t.expect_intent.clone(),
            expect_slots: t.expect_slots.clone(),
            expect_reply_contains: t.expect_reply_contains.clone(),
        })
        .collect()
}

/// sha256 of the source, hex: the same on every build, as stored sessions require.
fn fingerprint(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What session format 1 stored (see `Pipeline::legacy_fingerprint`).
fn legacy_fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Whether a call changes something (its method, or its endpoint's, is not GET).
fn call_changes_state(call: &crate::config::spec::CallSpec, catalogue: &Catalogue) -> bool {
    let method = call
        .method
        .clone()
        .or_else(|| catalogue.droplets.iter().find_map(|d| d.endpoint(&call.endpoint).map(|e| e.method.clone())));
    method.is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
}

/// Whether any of the pipeline's calls changes something: a follow-up never repeats it silently.
fn changes_state(spec: &PipelineSpec, catalogue: &Catalogue) -> bool {
    spec.steps
        .iter()
        .filter_map(|step| step.query.as_ref())
        .any(|query| query.calls().iter().any(|(_, call)| call_changes_state(call, catalogue)))
}
