//! One pipeline: its intent rules, slots, result names, steps and tests.

use regex::Regex;

use super::{Compiler, Document, Scope};
use crate::catalogue::Catalogue;
use crate::config::patterns;
use crate::config::spec::{PipelineSpec, QuestionSpec, SlotKindSpec};
use crate::config::template_reads;
use crate::diagnostic::{Code, Diagnostic};
use crate::intent::IntentRules;
use crate::pipeline::{GuardedStep, Pipeline, PipelineTest};
use crate::slots::phrases::Phrase;
use crate::slots::{KeyValueParser, SlotDef, SlotKind};
use crate::template::{
    Templates, ASK_CONTEXT_NAMES, CONFIRM_CONTEXT_NAMES, CONTEXT_NAMES, GIVE_UP_CONTEXT_NAMES, PROGRESS_CONTEXT_NAMES,
};

impl Compiler<'_> {
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

    pub(super) fn pipeline(
        &mut self,
        doc: &Document,
        spec: &PipelineSpec,
        catalogue: &Catalogue,
        templates: &Templates,
    ) -> Option<(Pipeline, IntentRules)> {
        let errors_before = self.diagnostics.len();
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
        let rules = IntentRules {
            intent: spec.intent.clone(),
            priority: spec.priority,
            any: self.regexes(doc, "/match/any", &spec.rules.any),
            all: self.regexes(doc, "/match/all", &spec.rules.all),
            none: self.regexes(doc, "/match/none", &spec.rules.none),
            keywords: spec.rules.keywords.iter().map(|k| k.to_lowercase()).collect(),
            examples: spec.examples.clone(),
            interrupts: spec.interrupts,
            droplet_slot: spec.slots.values().any(|s| s.kind == SlotKindSpec::Droplet),
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
        };

        let mut slots = Vec::new();
        for (name, slot) in &spec.slots {
            let kind = match slot.kind {
                SlotKindSpec::String => SlotKind::String,
                SlotKindSpec::Integer => SlotKind::Integer,
                SlotKindSpec::Number => SlotKind::Number,
                SlotKindSpec::Boolean => SlotKind::Boolean,
                SlotKindSpec::Droplet => SlotKind::Droplet,
            };
            let mut declared = Vec::new();
            for (i, written) in slot.from.iter().enumerate() {
                match Phrase::new(written) {
                    Ok(phrase) if phrase.is_glued() && !matches!(kind, SlotKind::Integer | SlotKind::Number) => self
                        .report(
                            Diagnostic::new(
                                Code::BadPhrase,
                                &doc.file,
                                doc.at(&format!("/slots/{name}/from/{i}")),
                                format!("the phrase \"{written}\" reads a number glued to its prefix, but `{name}` is not a number"),
                            )
                            .with_help("put a space before `{value}` (\"ticket {value}\"), or make the slot an integer"),
                        ),
                    Ok(phrase) => declared.push(phrase),
                    Err(problem) => self.report(
                        Diagnostic::new(
                            Code::BadPhrase,
                            &doc.file,
                            doc.at(&format!("/slots/{name}/from/{i}")),
                            problem,
                        )
                        .with_help(
                            "write the words people say around the value, e.g. \"called {value}\" or \"id {value}\"",
                        ),
                    ),
                }
            }
            let question = slot.ask.as_ref().map(|ask| match ask {
                QuestionSpec::Both(text) => (text.clone(), text.clone()),
                QuestionSpec::Channels { chat, voice } => (chat.clone(), voice.clone()),
            });
            match SlotDef::new(name, kind, &slot.prompt, slot.example.clone(), &slot.aliases, slot.schema.as_ref()) {
                Ok(def) => {
                    slots.push(def.with_phrases(declared).with_question(question).with_sensitive(slot.sensitive))
                }
                Err(error) => self.report(
                    Diagnostic::new(
                        Code::SlotSchema,
                        &doc.file,
                        doc.at(&format!("/slots/{name}/schema")),
                        format!("the rules for slot `{name}` are not a valid JSON Schema: {error}"),
                    )
                    .with_help(
                        "use JSON Schema keywords such as minimum, maximum, minLength, maxLength, pattern or enum",
                    ),
                ),
            }
        }
        let result_names = self.result_names(doc, spec);
        let mut known: Vec<String> = CONTEXT_NAMES.iter().map(|s| s.to_string()).collect();
        known.extend(result_names.iter().cloned());
        let scope = Scope::new(doc, templates, known, &spec.slots);

        self.consent_before_changes(doc, spec, catalogue);
        let mut steps = Vec::new();
        let mut reply_guaranteed_at: Option<usize> = None;
        for (i, step) in spec.steps.iter().enumerate() {
            let here = format!("/steps/{i}");
            if let Some(at) = reply_guaranteed_at {
                self.report(
                    Diagnostic::new(
                        Code::UnreachableStep,
                        &doc.file,
                        doc.at(&here),
                        format!("step {} can never run: step {} always produces the reply", i + 1, at + 1),
                    )
                    .with_help("remove this step, or add a `when:` condition to the earlier `format` step"),
                );
            }
            if let Some(condition) = &step.when {
                self.check_expression(&scope, &format!("{here}/when"), condition);
            }
            let only_format =
                step.format.is_some() && step.extract.is_none() && step.query.is_none() && step.reason.is_none();
            if only_format && step.when.is_none() && reply_guaranteed_at.is_none() {
                reply_guaranteed_at = Some(i);
            }
            if let Some(compiled) = self.step(&scope, &here, step, catalogue) {
                steps.push(GuardedStep { when: step.when.clone(), step: compiled });
            }
        }
        if reply_guaranteed_at.is_none() {
            let last = format!("/steps/{}", spec.steps.len().saturating_sub(1));
            self.report(
                Diagnostic::new(Code::NoReply, &doc.file, doc.at(&last), "the pipeline can end without a reply: its last step is not a `format` step without `when`")
                    .with_help("end the steps with `- format: { chat: …, voice: … }` and no `when`, as the reply when nothing else applies"),
            );
        }

        self.answer_reads(doc, spec, catalogue);

        let tests = spec
            .tests
            .iter()
            .enumerate()
            .map(|(i, t)| PipelineTest {
                line: doc.at(&format!("/tests/{i}/say")).line,
                say: t.say.clone(),
                expect_intent: t.expect_intent.clone(),
                expect_slots: t.expect_slots.clone(),
                expect_reply_contains: t.expect_reply_contains.clone(),
            })
            .collect();
        if self.diagnostics.len() > errors_before {
            return None;
        }
        let parser = match KeyValueParser::new(slots.iter().flat_map(|s| s.keys.iter().map(String::as_str))) {
            Ok(parser) => parser,
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
                return None;
            }
        };
        let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
        let generic_words = std::iter::once(spec.description.as_str())
            .chain(spec.slots.values().map(|s| s.prompt.as_str()))
            .chain(spec.slots.keys().map(String::as_str))
            .chain(slots.iter().flat_map(|s| s.keys.iter().map(String::as_str)))
            .flat_map(|text| crate::nlu::text::words(&text.replace('_', " ")).into_iter().map(|w| w.text))
            .flat_map(|word| [stemmer.stem(&word).into_owned(), word])
            .collect();
        let pipeline = Pipeline {
            generic_words,
            intent: spec.intent.clone(),
            description: spec.description.clone(),
            examples: spec.examples.clone(),
            fallback: spec.fallback,
            interrupts: spec.interrupts,
            listed: spec.listed,
            slots,
            parser,
            steps,
            result_names,
            tests,
            fingerprint: fingerprint(&doc.text),
            file: doc.file.clone(),
            example_positions: (0..spec.examples.len()).map(|i| doc.at(&format!("/examples/{i}"))).collect(),
            step_lines: (0..spec.steps.len()).map(|i| doc.at(&format!("/steps/{i}")).line).collect(),
        };
        Some((pipeline, rules))
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
                let method = call.method.clone().or_else(|| {
                    catalogue.droplets.iter().find_map(|d| d.endpoint(&call.endpoint).map(|e| e.method.clone()))
                });
                let changes = method.is_some_and(|m| !m.eq_ignore_ascii_case("GET"));
                if changes && !confirmed && !call.without_consent {
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

    /// Every `as` name in the pipeline; reports names used twice or shadowing engine names.
    fn result_names(&mut self, doc: &Document, spec: &PipelineSpec) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (i, step) in spec.steps.iter().enumerate() {
            let mut named: Vec<(String, &str)> = Vec::new();
            if let Some(query) = &step.query {
                for (suffix, call) in query.calls() {
                    named.push((format!("/steps/{i}/query{suffix}/as"), call.name.as_str()));
                }
            }
            if let Some(reason) = &step.reason {
                named.push((format!("/steps/{i}/reason/as"), reason.name.as_str()));
            }
            for (pointer, name) in named {
                let at = doc.at(&pointer);
                let taken: Vec<&str> = [
                    CONTEXT_NAMES,
                    ASK_CONTEXT_NAMES,
                    CONFIRM_CONTEXT_NAMES,
                    GIVE_UP_CONTEXT_NAMES,
                    PROGRESS_CONTEXT_NAMES,
                ]
                .concat();
                if taken.contains(&name) {
                    self.report(
                        Diagnostic::new(
                            Code::DuplicateResult,
                            &doc.file,
                            at,
                            format!("`{}` is a name the engine already provides to templates", name),
                        )
                        .with_help(format!("choose another name; taken names are: {}", taken.join(", "))),
                    );
                } else if names.contains(&name.to_owned()) {
                    self.report(
                        Diagnostic::new(
                            Code::DuplicateResult,
                            &doc.file,
                            at,
                            format!("two steps store their result as `{}`", name),
                        )
                        .with_help("give each call or reason step its own `as:` name"),
                    );
                } else {
                    names.push(name.to_owned());
                }
            }
        }
        names
    }
}

fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}
