//! The compile pass: from validated `*Spec` values to runtime types, checking every
//! cross-reference (templates exist, droplets and endpoints known, slots declared, variables
//! defined, regexes valid, intents unique) and recording each problem with its location.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::answer_shapes;
use super::files::{ConfigFiles, CATALOGUE_FILE, UDC_CONFIG_FILE, VOCABULARY_FILE};
use super::patterns;
use super::schema::{suggest, Schema};
use super::spec::{
    CallSpec, CatalogueSpec, ConfirmSpec, DropletRefSpec, ExtractSpec, FanOutSpec, FormatSpec, PipelineSpec,
    QuestionSpec, ReasonSpec, SlotKindSpec, StepSpec, UdcConfigSpec, VocabularySpec,
};
use super::template_reads;
use super::yaml::LocatedYaml;
use super::{CompiledConfig, CATALOGUE_SCHEMA, PIPELINE_SCHEMA, UDC_CONFIG_SCHEMA, VOCABULARY_SCHEMA};
use crate::catalogue::{Catalogue, Droplet, Endpoint, NativeForm};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Position};
use crate::identity::Identity;
use crate::intent::{IntentRules, Resolver};
use crate::nlu::vocabulary::Vocabulary;
use crate::nlu::Analyzer;
use crate::pipeline::{GuardedStep, Pipeline, PipelineTest};
use crate::slots::phrases::Phrase;
use crate::slots::{KeyValueParser, SlotDef, SlotKind};
use crate::steps::{
    Call, ConfirmStep, ExtractStep, FormatStep, Progress, QueryStep, ReasonOutput, ReasonStep, ReplyTemplates, Step,
    Target, DEFAULT_CALL_TIMEOUT, DEFAULT_CONFIRM_TRIES, DEFAULT_TRIES,
};
use crate::template::{
    Templates, ASK_CONTEXT_NAMES, CONFIRM_CONTEXT_NAMES, CONTEXT_NAMES, GIVE_UP_CONTEXT_NAMES, PROGRESS_CONTEXT_NAMES,
    SAMPLE_CONTEXT_NAMES, WELCOME_CONTEXT_NAMES,
};

/// Templates used by `extract` steps that name no `ask` templates of their own.
pub const DEFAULT_ASK: (&str, &str) = ("_shared/ask.chat.md.j2", "_shared/ask.voice.txt.j2");

/// The reply when an action stops after too many unusable answers.
pub const GIVE_UP: (&str, &str) = ("_shared/give_up.chat.md.j2", "_shared/give_up.voice.txt.j2");

/// The reply to "no" at a `confirm` step that names no `declined` templates.
pub const DECLINED: (&str, &str) = ("_shared/declined.chat.md.j2", "_shared/declined.voice.txt.j2");

/// Said after the replies to a message that asked for several things, about a part of it no
/// intent could read ("show the registry and blorp the frobnicator").
pub const UNREAD: (&str, &str) = ("_shared/unread.chat.md.j2", "_shared/unread.voice.txt.j2");

/// Names the "not understood" templates are given: the parts, and the channel.
pub const UNREAD_CONTEXT_NAMES: &[&str] = &["unread", "channel"];

/// Templates greeting a client that connects over WebSocket.
pub const WELCOME: (&str, &str) = ("_shared/welcome.chat.md.j2", "_shared/welcome.voice.txt.j2");

/// Names minijinja provides itself; a template may read them without us defining them.
const JINJA_GLOBALS: &[&str] = &[
    "range",
    "dict",
    "debug",
    "namespace",
    "lipsum",
    "cycler",
    "joiner",
    "loop",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
];

pub struct Compiler<'a> {
    files: &'a ConfigFiles,
    diagnostics: &'a mut Diagnostics,
    /// Problems worth a look that do not stop loading.
    warnings: Diagnostics,
    /// Endpoints templates read whose answers declare no shape, said once at the end.
    unchecked_answers: BTreeSet<String>,
}

/// A parsed file: its path, located tree and JSON form.
pub(super) struct Document {
    pub(super) file: String,
    pub(super) text: String,
    yaml: LocatedYaml,
}

impl Document {
    pub(super) fn at(&self, pointer: &str) -> Position {
        self.yaml.position_of(pointer)
    }
}

impl<'a> Compiler<'a> {
    pub fn new(files: &'a ConfigFiles, diagnostics: &'a mut Diagnostics) -> Self {
        Compiler { files, diagnostics, warnings: Diagnostics::default(), unchecked_answers: BTreeSet::new() }
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn run(mut self) -> Option<CompiledConfig> {
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

    fn schema(&mut self, file: &str, text: &str) -> Option<Schema> {
        match Schema::compile(file, text) {
            Ok(schema) => Some(schema),
            Err(diagnostic) => {
                self.report(diagnostic);
                None
            }
        }
    }

    /// YAML → located tree → schema check → typed spec. `None` (with diagnostics) on any problem.
    fn parse<T: DeserializeOwned>(&mut self, file: &str, text: &str, schema: &Schema) -> Option<(Document, T)> {
        let yaml = match LocatedYaml::parse(text) {
            Ok(yaml) => yaml,
            Err(error) => {
                self.report(
                    Diagnostic::new(
                        Code::YamlSyntax,
                        file,
                        error.position,
                        format!("this is not valid YAML: {}", error.message),
                    )
                    .with_help(yaml_help(text, error.position, &error.message)),
                );
                return None;
            }
        };
        let json = yaml.to_json();
        let problems = schema.check(file, &yaml, &json);
        if !problems.is_empty() {
            for problem in problems {
                self.report(problem);
            }
            return None;
        }
        match serde_json::from_value::<T>(json) {
            Ok(spec) => Some((Document { file: file.to_owned(), text: text.to_owned(), yaml }, spec)),
            Err(error) => {
                // the schema and the spec types disagree: a bug on our side, still reported
                self.report(Diagnostic::new(Code::InvalidValue, file, Position::default(), error.to_string()));
                None
            }
        }
    }

    fn add_templates(&mut self, templates: &mut Templates) {
        for (path, text) in self.files.under("templates", ".j2") {
            let name = path.trim_start_matches("templates/");
            if let Err(error) = templates.add(name, text) {
                let position = template_error_position(&error, text);
                self.report(
                    Diagnostic::new(
                        Code::TemplateSyntax,
                        path,
                        position,
                        format!("template syntax error: {}", error_detail(&error)),
                    )
                    .with_help("check that every `{{`, `{%` and `{#` is closed and every block has its `end` tag"),
                );
            }
        }
    }

    fn catalogue(&mut self, schema: &Schema, templates: &Templates) -> Option<Catalogue> {
        let Some(text) = self.files.get(CATALOGUE_FILE) else {
            self.report(
                Diagnostic::new(Code::Io, CATALOGUE_FILE, Position::default(), "the droplet catalogue is missing")
                    .with_help("create catalogue/droplets.yaml listing the droplets of the mesh"),
            );
            return None;
        };
        let (document, spec) = self.parse::<CatalogueSpec>(CATALOGUE_FILE, text, schema)?;
        let shapes = answer_shapes::named(&document, &spec.shapes, &mut |d| self.report(d));
        let mut seen_ids: BTreeMap<i64, String> = BTreeMap::new();
        let mut seen_names: BTreeMap<String, String> = BTreeMap::new();
        let mut droplets = Vec::new();
        for (i, d) in spec.droplets.iter().enumerate() {
            let here = format!("/droplets/{i}");
            // every number and name this droplet answers to, with where it is written
            let mut numbers = vec![(d.id, format!("{here}/id"))];
            // the display name and key are matched in free text too (see `Catalogue::recognize`)
            let mut names =
                vec![(d.key.clone(), format!("{here}/key")), (d.name.to_lowercase(), format!("{here}/name"))];
            for (j, alias) in d.aliases.iter().enumerate() {
                let pointer = format!("{here}/aliases/{j}");
                match alias {
                    Value::Number(n) => numbers.extend(n.as_i64().map(|id| (id, pointer))),
                    Value::String(s) => names.push((s.to_lowercase(), pointer)),
                    _ => {}
                }
            }
            let alias_ids: Vec<i64> = numbers.iter().skip(1).map(|(id, _)| *id).collect();
            let aliases: Vec<String> = names.iter().skip(2).map(|(name, _)| name.clone()).collect();
            for (id, pointer) in &numbers {
                let id = *id;
                if let Some(owner) = seen_ids.insert(id, d.name.clone()) {
                    self.report(
                        Diagnostic::new(
                            Code::DuplicateDroplet,
                            CATALOGUE_FILE,
                            document.at(pointer),
                            format!("droplet number {id} is used twice ({owner} and {})", d.name),
                        )
                        .with_help("give every droplet its own number"),
                    );
                }
            }
            for (name, pointer) in names {
                if let Some(owner) = seen_names.get(&name) {
                    if owner != &d.name {
                        self.report(
                            Diagnostic::new(
                                Code::DuplicateDroplet,
                                CATALOGUE_FILE,
                                document.at(&pointer),
                                format!("the name `{name}` is used by both {owner} and {}", d.name),
                            )
                            .with_help("remove the alias from one of them, so users' words point at one droplet"),
                        );
                    }
                } else {
                    seen_names.insert(name, d.name.clone());
                }
            }
            let mut endpoints = Vec::new();
            for (j, e) in d.endpoints.iter().enumerate() {
                let at = format!("{here}/endpoints/{j}");
                let response = e.response.as_ref().and_then(|written| {
                    answer_shapes::response(&document, &format!("{at}/response"), written, &shapes, &mut |d| {
                        self.report(d)
                    })
                });
                let request = e.request.as_ref().and_then(|schema| {
                    answer_shapes::request(&document, &format!("{at}/request"), schema, &mut |d| self.report(d))
                });
                if let (Some(sample), Some(shape)) = (&e.sample, &response) {
                    answer_shapes::check_sample(&document, &format!("{at}/sample"), sample, shape, &mut |d| {
                        self.report(d)
                    });
                }
                if let Some(sample) = &e.sample {
                    self.check_templated(
                        &document,
                        &format!("{here}/endpoints/{j}/sample"),
                        sample,
                        templates,
                        SAMPLE_CONTEXT_NAMES,
                        &[],
                    );
                }
                if let Some(native) = &e.native {
                    if d.id != crate::droplet_ids::ORCHESTRATOR {
                        self.report(
                            Diagnostic::new(
                                Code::NativeTarget,
                                CATALOGUE_FILE,
                                document.at(&format!("{here}/endpoints/{j}/native")),
                                format!(
                                    "`native` on the {} would never be used: only the Orchestrator (droplet {}) answers questions itself",
                                    d.name,
                                    crate::droplet_ids::ORCHESTRATOR
                                ),
                            )
                            .with_help("remove `native` here; calls to this droplet go the way MESH_MODE says"),
                        );
                    }
                    self.check_templated(
                        &document,
                        &format!("{here}/endpoints/{j}/native/payload"),
                        &native.payload,
                        templates,
                        SAMPLE_CONTEXT_NAMES,
                        &[],
                    );
                }
                endpoints.push(Endpoint {
                    path: e.path.clone(),
                    method: e.method.clone(),
                    description: e.description.clone(),
                    backing: e.backing.clone().unwrap_or_else(|| "source".to_owned()),
                    response,
                    request,
                    sample: e.sample.clone().map(Arc::new),
                    native: e.native.as_ref().map(|n| {
                        Arc::new(NativeForm { message_type: n.message_type.clone(), payload: n.payload.clone() })
                    }),
                });
            }
            droplets.push(Droplet {
                id: d.id,
                key: d.key.clone(),
                name: d.name.clone(),
                purpose: d.purpose.clone(),
                aliases,
                alias_ids,
                endpoints,
            });
        }
        Some(Catalogue::new(droplets))
    }

    /// The welcome templates: they must exist and read only what a greeting has.
    fn welcome(&mut self, templates: &Templates) -> Option<ReplyTemplates> {
        self.engine_templates(
            templates,
            WELCOME,
            WELCOME_CONTEXT_NAMES,
            "the WebSocket greeting",
            "it greets clients that connect over WebSocket",
        )
    }

    /// A pair of templates the engine renders itself (not a pipeline's): each must exist and use
    /// only the names it is given.
    fn engine_templates(
        &mut self,
        templates: &Templates,
        (chat, voice): (&str, &str),
        names: &[&str],
        what: &str,
        purpose: &str,
    ) -> Option<ReplyTemplates> {
        let mut ok = true;
        for name in [chat, voice] {
            let path = format!("templates/{name}");
            let Some(source) = self.files.get(&path).map(str::to_owned) else {
                ok = false;
                self.report(
                    Diagnostic::new(
                        Code::MissingTemplate,
                        &path,
                        Position::default(),
                        format!("the template `{name}` ({what}) is missing"),
                    )
                    .with_help(format!("create templates/{name}: {purpose}")),
                );
                continue;
            };
            let allowed: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            for variable in templates.undeclared_variables(name) {
                if let Some(diagnostic) = check_variable(&path, &source, &variable, &allowed, &[], what) {
                    ok = false;
                    self.report(diagnostic);
                }
            }
        }
        ok.then(|| ReplyTemplates { chat: chat.to_owned(), voice: voice.to_owned() })
    }

    /// `catalogue/vocabulary.yaml`, when there is one: synonyms without cycles or double meanings.
    fn vocabulary(&mut self, schema: &Schema) -> Option<Vocabulary> {
        let Some(text) = self.files.get(VOCABULARY_FILE) else { return Some(Vocabulary::default()) };
        let (document, spec) = self.parse::<VocabularySpec>(VOCABULARY_FILE, text, schema)?;
        let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
        let entries: Vec<(String, Vec<String>)> = spec.synonyms.into_iter().collect();
        match Vocabulary::build(
            &entries,
            |w| stemmer.stem(w).into_owned(),
            |t| crate::nlu::text::words(t).into_iter().map(|w| w.text).collect(),
        ) {
            Ok(vocabulary) => Some(vocabulary),
            Err(problems) => {
                for problem in problems {
                    self.report(
                        Diagnostic::new(
                            Code::BadVocabulary,
                            VOCABULARY_FILE,
                            document.at(&problem.pointer),
                            problem.message,
                        )
                        .with_help(problem.help),
                    );
                }
                None
            }
        }
    }

    /// `udc_config.json`: schema, and every droplet number it names must be in the catalogue.
    fn identity(&mut self, schema: &Schema, catalogue: &Catalogue) -> Option<Identity> {
        let Some(text) = self.files.get(UDC_CONFIG_FILE) else {
            self.report(
                Diagnostic::new(Code::Io, UDC_CONFIG_FILE, Position::default(), "udc_config.json is missing")
                    .with_help(
                    "create udc_config.json at the root with this droplet's identity, capabilities and dependencies",
                ),
            );
            return None;
        };
        let (document, spec) = self.parse::<UdcConfigSpec>(UDC_CONFIG_FILE, text, schema)?;
        let named = std::iter::once((spec.droplet.id, "/droplet/id".to_owned()))
            .chain(
                spec.dependencies
                    .required
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (*id, format!("/dependencies/required/{i}"))),
            )
            .chain(
                spec.dependencies
                    .optional
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (*id, format!("/dependencies/optional/{i}"))),
            );
        let mut ok = true;
        for (id, pointer) in named {
            if catalogue.by_id(id).is_none() {
                ok = false;
                self.report(
                    Diagnostic::new(
                        Code::UnknownDroplet,
                        UDC_CONFIG_FILE,
                        document.at(&pointer),
                        format!("droplet {id} is not in the catalogue"),
                    )
                    .with_help(format!("known droplets: {}", catalogue.names().join(", "))),
                );
            }
        }
        ok.then_some(Identity {
            id: spec.droplet.id,
            name: spec.droplet.name,
            steward: spec.droplet.steward,
            endpoint: spec.droplet.endpoint,
            udc_version: spec.droplet.udc_version,
            features: spec.capabilities.features,
            supported_sources: spec.capabilities.supported_sources,
            required: spec.dependencies.required,
            optional: spec.dependencies.optional,
        })
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

    fn pipeline(
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
        let slot_names: Vec<String> = spec.slots.keys().cloned().collect();
        let result_names = self.result_names(doc, spec);
        let mut known: Vec<String> = CONTEXT_NAMES.iter().map(|s| s.to_string()).collect();
        known.extend(result_names.iter().cloned());

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
                self.check_expression(doc, &format!("{here}/when"), condition, templates, &known, &slot_names);
            }
            let only_format =
                step.format.is_some() && step.extract.is_none() && step.query.is_none() && step.reason.is_none();
            if only_format && step.when.is_none() && reply_guaranteed_at.is_none() {
                reply_guaranteed_at = Some(i);
            }
            if let Some(compiled) = self.step(doc, &here, step, &slot_names, &known, catalogue, &spec.slots, templates)
            {
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
            legacy_fingerprint: legacy_fingerprint(&doc.text),
            file: doc.file.clone(),
            example_positions: (0..spec.examples.len()).map(|i| doc.at(&format!("/examples/{i}"))).collect(),
            step_lines: (0..spec.steps.len()).map(|i| doc.at(&format!("/steps/{i}")).line).collect(),
        };
        Some((pipeline, rules))
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

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        doc: &Document,
        here: &str,
        step: &StepSpec,
        slot_names: &[String],
        known: &[String],
        catalogue: &Catalogue,
        slot_specs: &indexmap::IndexMap<String, super::spec::SlotSpec>,
        templates: &Templates,
    ) -> Option<Step> {
        let kinds: Vec<&str> = [
            ("extract", step.extract.is_some()),
            ("query", step.query.is_some()),
            ("reason", step.reason.is_some()),
            ("confirm", step.confirm.is_some()),
            ("format", step.format.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if kinds.len() != 1 {
            let message = if kinds.is_empty() {
                "this step does nothing: it has no `extract`, `query`, `reason`, `confirm` or `format`".to_owned()
            } else {
                format!(
                    "this step has {} at once; a step does exactly one thing",
                    kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ")
                )
            };
            self.report(Diagnostic::new(Code::StepKind, &doc.file, doc.at(here), message).with_help(
                "give each step exactly one of `extract`, `query`, `reason`, `confirm` or `format`; split it into several steps",
            ));
            return None;
        }
        if step.progress.is_some() && step.query.is_none() {
            self.report(
                Diagnostic::new(
                    Code::StepKind,
                    &doc.file,
                    doc.at(&format!("{here}/progress")),
                    format!("`progress:` belongs to a `query` step, and this is a `{}` step", kinds[0]),
                )
                .with_help("move `progress:` to the query step whose droplets may be slow to answer"),
            );
            return None;
        }
        if let Some(extract) = &step.extract {
            return self
                .extract(doc, &format!("{here}/extract"), extract, slot_names, known, templates)
                .map(Step::Extract);
        }
        if let Some(reason) = &step.reason {
            return self.reason(doc, &format!("{here}/reason"), reason, templates, known, slot_names).map(Step::Reason);
        }
        if let Some(confirm) = &step.confirm {
            return self
                .confirm(doc, &format!("{here}/confirm"), confirm, templates, known, slot_names)
                .map(Step::Confirm);
        }
        if let Some(format) = &step.format {
            let templates_ok =
                self.reply_templates(doc, &format!("{here}/format"), format, templates, known, slot_names, &[]);
            return templates_ok.map(|t| Step::Format(FormatStep { templates: t }));
        }
        let query = step.query.as_ref()?;
        let mut calls = Vec::new();
        for (suffix, call) in query.calls() {
            let pointer = format!("{here}/query{suffix}");
            if let Some(call) = self.call(doc, &pointer, call, catalogue, slot_specs, slot_names, known, templates) {
                calls.push(call);
            }
        }
        let progress = match &step.progress {
            None => None,
            Some(spec) => {
                let lines = FormatSpec { chat: spec.chat.clone(), voice: spec.voice.clone() };
                let pointer = format!("{here}/progress");
                let templates =
                    self.reply_templates(doc, &pointer, &lines, templates, known, slot_names, PROGRESS_CONTEXT_NAMES)?;
                Some(Progress { templates, after: spec.after_ms.map(std::time::Duration::from_millis) })
            }
        };
        Some(Step::Query(QueryStep { calls, progress }))
    }

    fn extract(
        &mut self,
        doc: &Document,
        here: &str,
        extract: &ExtractSpec,
        slot_names: &[String],
        known: &[String],
        templates: &Templates,
    ) -> Option<ExtractStep> {
        for (key, names) in [("required", &extract.required), ("optional", &extract.optional)] {
            for (j, name) in names.iter().enumerate() {
                if !slot_names.contains(name) {
                    self.unknown_slot(doc, doc.at(&format!("{here}/{key}/{j}")), name, slot_names);
                }
            }
        }
        let default_ask = FormatSpec { chat: DEFAULT_ASK.0.to_owned(), voice: DEFAULT_ASK.1.to_owned() };
        let ask_spec = extract.ask.as_ref().unwrap_or(&default_ask);
        let ask = self.reply_templates(
            doc,
            &format!("{here}/ask"),
            ask_spec,
            templates,
            known,
            slot_names,
            ASK_CONTEXT_NAMES,
        )?;
        let give_up = self.shared_templates(doc, here, GIVE_UP, templates, known, slot_names, GIVE_UP_CONTEXT_NAMES)?;
        Some(ExtractStep {
            required: extract.required.clone(),
            optional: extract.optional.clone(),
            ask,
            together: extract.together,
            tries: extract.tries.unwrap_or(DEFAULT_TRIES),
            give_up,
        })
    }

    /// A `confirm` step: its read-back templates, and the shared (or its own) declined reply.
    fn confirm(
        &mut self,
        doc: &Document,
        here: &str,
        confirm: &ConfirmSpec,
        templates: &Templates,
        known: &[String],
        slot_names: &[String],
    ) -> Option<ConfirmStep> {
        let read_back = FormatSpec { chat: confirm.chat.clone(), voice: confirm.voice.clone() };
        let ask = self.reply_templates(doc, here, &read_back, templates, known, slot_names, CONFIRM_CONTEXT_NAMES);
        let declined = match &confirm.declined {
            Some(spec) => {
                self.reply_templates(doc, &format!("{here}/declined"), spec, templates, known, slot_names, &[])
            }
            None => self.shared_templates(doc, here, DECLINED, templates, known, slot_names, &[]),
        };
        let give_up = self.shared_templates(doc, here, GIVE_UP, templates, known, slot_names, GIVE_UP_CONTEXT_NAMES);
        Some(ConfirmStep { ask: ask?, declined: declined?, give_up: give_up?, tries: DEFAULT_CONFIRM_TRIES })
    }

    /// One of the shared reply pairs (`_shared/…`), checked like a pipeline's own.
    #[allow(clippy::too_many_arguments)]
    fn shared_templates(
        &mut self,
        doc: &Document,
        here: &str,
        (chat, voice): (&str, &str),
        templates: &Templates,
        known: &[String],
        slot_names: &[String],
        extra: &[&str],
    ) -> Option<ReplyTemplates> {
        let spec = FormatSpec { chat: chat.to_owned(), voice: voice.to_owned() };
        self.reply_templates(doc, here, &spec, templates, known, slot_names, extra)
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        doc: &Document,
        here: &str,
        call: &CallSpec,
        catalogue: &Catalogue,
        slot_specs: &indexmap::IndexMap<String, super::spec::SlotSpec>,
        slot_names: &[String],
        known: &[String],
        templates: &Templates,
    ) -> Option<Call> {
        let target = match (&call.droplet, &call.droplets) {
            (Some(_), Some(_)) | (None, None) => {
                self.report(
                    Diagnostic::new(Code::InvalidValue, &doc.file, doc.at(here), "a call needs exactly one of `droplet` (one droplet) or `droplets` (several)")
                        .with_help("write `droplet: 1` for one droplet, or `droplets: all` to ask every droplet that offers the endpoint"),
                );
                return None;
            }
            (Some(DropletRefSpec::Name(name)), None) if name.starts_with('$') => {
                let slot = &name[1..];
                match slot_specs.get(slot) {
                    Some(spec) if spec.kind == SlotKindSpec::Droplet => Target::Slot(slot.to_owned()),
                    Some(_) => {
                        self.report(
                            Diagnostic::new(
                                Code::UnknownSlot,
                                &doc.file,
                                doc.at(&format!("{here}/droplet")),
                                format!("slot `{slot}` is not a droplet slot"),
                            )
                            .with_help(format!("declare it with `type: droplet` to use it as `{name}`")),
                        );
                        return None;
                    }
                    None => {
                        self.unknown_slot(doc, doc.at(&format!("{here}/droplet")), slot, slot_names);
                        return None;
                    }
                }
            }
            (Some(reference), None) => {
                let droplet = self.droplet(doc, &format!("{here}/droplet"), reference, catalogue)?;
                self.endpoint(doc, here, droplet, call)?;
                Target::Droplet(droplet.id)
            }
            (None, Some(FanOutSpec::All(_))) => {
                let ids: Vec<i64> =
                    catalogue.droplets.iter().filter(|d| d.endpoint(&call.endpoint).is_some()).map(|d| d.id).collect();
                if ids.is_empty() {
                    self.report(
                        Diagnostic::new(
                            Code::UnknownEndpoint,
                            &doc.file,
                            doc.at(&format!("{here}/endpoint")),
                            format!("no droplet in the catalogue offers `{}`", call.endpoint),
                        )
                        .with_help("check the endpoint path against catalogue/droplets.yaml"),
                    );
                    return None;
                }
                Target::FanOut(ids)
            }
            (None, Some(FanOutSpec::List(references))) => {
                // check every entry, so one run reports every unknown droplet in the list
                let mut ids = Vec::new();
                let mut ok = true;
                for (k, reference) in references.iter().enumerate() {
                    let found = self.droplet(doc, &format!("{here}/droplets/{k}"), reference, catalogue);
                    match found.and_then(|droplet| self.endpoint(doc, here, droplet, call).map(|()| droplet.id)) {
                        Some(id) => ids.push(id),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                Target::FanOut(ids)
            }
        };
        if let (Target::Droplet(id), Some(body)) = (&target, &call.body) {
            self.body_fields(doc, here, *id, call, body, catalogue, slot_specs);
        }
        let mut templated = Vec::new();
        for (key, value) in &call.params {
            let key = key.replace('~', "~0").replace('/', "~1");
            Templates::templated_strings(value, format!("{here}/params/{key}"), &mut templated);
        }
        if let Some(body) = &call.body {
            Templates::templated_strings(body, format!("{here}/body"), &mut templated);
        }
        for (pointer, source) in templated {
            self.check_template_string(doc, &pointer, &source, templates, known, slot_names);
        }
        Some(Call {
            target,
            endpoint: call.endpoint.clone(),
            method: call.method.clone(),
            params: call.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: call.body.clone(),
            name: call.name.clone(),
            timeout: call.timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_CALL_TIMEOUT),
        })
    }

    /// The fields of a call's body against the endpoint's `request:`: one it does not take, one
    /// it requires and the body lacks, or a value of the wrong kind would be refused by the
    /// droplet (and the refusal read as the droplet's fault).
    #[allow(clippy::too_many_arguments)]
    fn body_fields(
        &mut self,
        doc: &Document,
        here: &str,
        id: i64,
        call: &CallSpec,
        body: &Value,
        catalogue: &Catalogue,
        slot_specs: &indexmap::IndexMap<String, super::spec::SlotSpec>,
    ) {
        let Some(droplet) = catalogue.by_id(id) else { return };
        let method = call.method.clone().or_else(|| droplet.endpoint(&call.endpoint).map(|e| e.method.clone()));
        let Some(endpoint) = method.and_then(|m| droplet.endpoint_for(&call.endpoint, &m)) else { return };
        let (Some(shape), Value::Object(fields)) = (&endpoint.request, body) else { return };
        let root = shape.root();
        let declared: Vec<(&str, bool)> =
            root.fields().into_iter().map(|(name, _, required)| (name, required)).collect();
        let taken: Vec<&str> = declared.iter().map(|(name, _)| *name).collect();
        let what = format!("{} {} {}", droplet.name, endpoint.method, endpoint.path);
        if !root.open() {
            for key in fields.keys().filter(|k| !taken.contains(&k.as_str())) {
                let pointer = format!("{here}/body/{}", key.replace('~', "~0").replace('/', "~1"));
                let mut diagnostic = Diagnostic::new(
                    Code::BodyField,
                    &doc.file,
                    doc.at(&pointer),
                    format!("{what} does not take a body field `{key}`"),
                );
                diagnostic = match suggest(key, taken.iter().copied()) {
                    Some(best) => diagnostic.with_help(format!("did you mean `{best}`? It takes: {}", taken.join(", "))),
                    None => diagnostic.with_help(format!(
                        "it takes: {}; if it really takes `{key}`, add it to the endpoint's `request:` in catalogue/droplets.yaml",
                        taken.join(", ")
                    )),
                };
                self.report(diagnostic);
            }
        }
        for (key, value) in fields {
            let crate::shapes::Field::Declared { node, .. } = root.field(key) else { continue };
            let expected = node.types();
            let Some((sent, from)) = sent_type(value, slot_specs) else { continue };
            let fits =
                expected.is_empty() || expected.contains(&sent) || (sent == "integer" && expected.contains(&"number"));
            if !fits {
                let pointer = format!("{here}/body/{}", key.replace('~', "~0").replace('/', "~1"));
                self.report(
                    Diagnostic::new(Code::BodyField, &doc.file, doc.at(&pointer), {
                        let label = node.type_label();
                        let article = if label.starts_with("text") || label.starts_with("list") { "" } else { "a " };
                        format!("`{key}` must be {article}{label} for {what}, but this body sends {from}")
                    })
                    .with_help(format!(
                        "send a slot of that kind (`type: {}`), or fix the endpoint's `request:` if it takes this",
                        expected.first().copied().unwrap_or("string")
                    )),
                );
            }
        }
        for (name, _) in declared.iter().filter(|(name, required)| *required && !fields.contains_key(*name)) {
            self.report(
                Diagnostic::new(
                    Code::BodyField,
                    &doc.file,
                    doc.at(&format!("{here}/body")),
                    format!("{what} needs a body field `{name}`, and this body has none"),
                )
                .with_help(format!(
                    "add `{name}: \"{{{{ slots.{name} }}}}\"` (or the value it should carry) to the body"
                )),
            );
        }
    }

    fn droplet<'c>(
        &mut self,
        doc: &Document,
        pointer: &str,
        reference: &DropletRefSpec,
        catalogue: &'c Catalogue,
    ) -> Option<&'c Droplet> {
        let (found, written) = match reference {
            DropletRefSpec::Id(id) => (catalogue.by_id(*id), id.to_string()),
            DropletRefSpec::Name(name) => (catalogue.by_name(name), name.clone()),
        };
        if found.is_none() {
            let keys: Vec<&str> = catalogue.droplets.iter().map(|d| d.key.as_str()).collect();
            let mut diagnostic = Diagnostic::new(
                Code::UnknownDroplet,
                &doc.file,
                doc.at(pointer),
                format!("there is no droplet `{written}` in the catalogue"),
            );
            diagnostic = match suggest(&written, keys.iter().copied()) {
                Some(best) => diagnostic
                    .with_help(format!("did you mean `{best}`? Known droplets: {}", catalogue.names().join(", "))),
                None => diagnostic.with_help(format!("known droplets: {}", catalogue.names().join(", "))),
            };
            self.report(diagnostic);
        }
        found
    }

    fn endpoint(&mut self, doc: &Document, here: &str, droplet: &Droplet, call: &CallSpec) -> Option<()> {
        let Some(endpoint) = droplet.endpoint(&call.endpoint) else {
            let offered: Vec<&str> = droplet.endpoints.iter().map(|e| e.path.as_str()).collect();
            let mut diagnostic = Diagnostic::new(
                Code::UnknownEndpoint,
                &doc.file,
                doc.at(&format!("{here}/endpoint")),
                format!("the {} (droplet {}) has no endpoint `{}`", droplet.name, droplet.id, call.endpoint),
            );
            let listing =
                droplet.endpoints.iter().map(|e| format!("{} {}", e.method, e.path)).collect::<Vec<_>>().join(", ");
            diagnostic = match suggest(&call.endpoint, offered.iter().copied()) {
                Some(best) => diagnostic.with_help(format!("did you mean `{best}`? It offers: {listing}")),
                None => diagnostic.with_help(format!("it offers: {listing}")),
            };
            self.report(diagnostic);
            return None;
        };
        if let Some(method) = &call.method {
            if *method != endpoint.method {
                self.report(
                    Diagnostic::new(
                        Code::MethodMismatch,
                        &doc.file,
                        doc.at(&format!("{here}/method")),
                        format!("{} {} is a {} endpoint, not {method}", droplet.name, endpoint.path, endpoint.method),
                    )
                    .with_help(format!("write `method: {}` or leave `method` out", endpoint.method)),
                );
                return None;
            }
        }
        Some(())
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_templates(
        &mut self,
        doc: &Document,
        here: &str,
        spec: &FormatSpec,
        templates: &Templates,
        known: &[String],
        slot_names: &[String],
        extra: &[&str],
    ) -> Option<ReplyTemplates> {
        let mut ok = true;
        for (key, name) in [("chat", &spec.chat), ("voice", &spec.voice)] {
            let pointer = format!("{here}/{key}");
            ok &= self.template_file(doc, &pointer, name, templates, known, slot_names, extra);
        }
        ok.then(|| ReplyTemplates { chat: spec.chat.clone(), voice: spec.voice.clone() })
    }

    /// A template a pipeline names: it must exist, parse, and use only names it will be given.
    #[allow(clippy::too_many_arguments)]
    fn template_file(
        &mut self,
        doc: &Document,
        pointer: &str,
        name: &str,
        templates: &Templates,
        known: &[String],
        slot_names: &[String],
        extra: &[&str],
    ) -> bool {
        if !templates.contains(name) {
            if self.files.get(&format!("templates/{name}")).is_some() {
                return false; // it exists but did not parse: already reported against the template
            }
            let mut diagnostic = Diagnostic::new(
                Code::MissingTemplate,
                &doc.file,
                doc.at(pointer),
                format!("template `{name}` does not exist (looked for templates/{name})"),
            );
            let existing: Vec<String> = self
                .files
                .under("templates", ".j2")
                .map(|(p, _)| p.trim_start_matches("templates/").to_owned())
                .collect();
            if let Some(best) = suggest(name, existing.iter().map(String::as_str)) {
                diagnostic = diagnostic.with_help(format!("did you mean `{best}`?"));
            } else {
                diagnostic = diagnostic
                    .with_help(format!("create templates/{name}, or fix the path (it is relative to templates/)"));
            }
            self.report(diagnostic);
            return false;
        }
        let mut allowed: Vec<String> = known.to_vec();
        allowed.extend(extra.iter().map(|s| s.to_string()));
        let path = format!("templates/{name}");
        let source = self.files.get(&path).unwrap_or_default().to_owned();
        let mut ok = true;
        for variable in templates.undeclared_variables(name) {
            if let Some(diagnostic) = check_variable(&path, &source, &variable, &allowed, slot_names, &doc.file) {
                self.report(diagnostic);
                ok = false;
            }
        }
        ok
    }

    #[allow(clippy::too_many_arguments)]
    fn reason(
        &mut self,
        doc: &Document,
        here: &str,
        reason: &ReasonSpec,
        templates: &Templates,
        known: &[String],
        slot_names: &[String],
    ) -> Option<ReasonStep> {
        let prompt_ok =
            self.template_file(doc, &format!("{here}/prompt"), &reason.prompt, templates, known, slot_names, &[]);
        let output = match (reason.output.as_deref().unwrap_or("text"), &reason.schema) {
            ("json", None) => {
                self.report(
                    Diagnostic::new(
                        Code::MissingKey,
                        &doc.file,
                        doc.at(here),
                        "`output: json` needs a `schema` for the answer",
                    )
                    .with_help("add `schema:` with the JSON Schema of the answer, or use `output: text`"),
                );
                return None;
            }
            ("json", Some(schema)) => match jsonschema::draft202012::new(schema) {
                Ok(validator) => ReasonOutput::Json { schema: schema.clone(), validator: Box::new(validator) },
                Err(error) => {
                    self.report(
                        Diagnostic::new(
                            Code::SlotSchema,
                            &doc.file,
                            doc.at(&format!("{here}/schema")),
                            format!("the answer's schema is not a valid JSON Schema: {error}"),
                        )
                        .with_help("use JSON Schema keywords such as type, properties, required and enum"),
                    );
                    return None;
                }
            },
            _ => ReasonOutput::Text,
        };
        let stream = match (&output, reason.stream) {
            (ReasonOutput::Json { .. }, Some(true)) => {
                self.report(
                    Diagnostic::new(
                        Code::StepKind,
                        &doc.file,
                        doc.at(&format!("{here}/stream")),
                        "only a text answer can be streamed: a JSON answer means nothing until it is whole",
                    )
                    .with_help("remove `stream: true`, or use `output: text`"),
                );
                return None;
            }
            (ReasonOutput::Json { .. }, _) => false,
            (ReasonOutput::Text, stream) => stream.unwrap_or(true),
        };
        prompt_ok.then(|| ReasonStep { prompt: reason.prompt.clone(), output, name: reason.name.clone(), stream })
    }

    fn check_expression(
        &mut self,
        doc: &Document,
        pointer: &str,
        expr: &str,
        templates: &Templates,
        known: &[String],
        slot_names: &[String],
    ) {
        match templates.expression_variables(expr) {
            Ok(variables) => self.check_variables(doc, pointer, expr, &variables, known, slot_names),
            Err(error) => self.report(
                Diagnostic::new(
                    Code::BadCondition,
                    &doc.file,
                    doc.at(pointer),
                    format!("condition `{expr}` does not parse: {}", error_detail(&error)),
                )
                .with_help("write a minijinja expression such as `not result.ok` or `slots.id is none`"),
            ),
        }
    }

    fn check_template_string(
        &mut self,
        doc: &Document,
        pointer: &str,
        source: &str,
        templates: &Templates,
        known: &[String],
        slot_names: &[String],
    ) {
        let parsed = match crate::template::single_expression(source) {
            Some(expr) => templates.expression_variables(expr),
            None => templates.inline_variables(source),
        };
        match parsed {
            Ok(variables) => self.check_variables(doc, pointer, source, &variables, known, slot_names),
            Err(error) => self.report(
                Diagnostic::new(
                    Code::TemplateSyntax,
                    &doc.file,
                    doc.at(pointer),
                    format!("`{source}` does not parse: {}", error_detail(&error)),
                )
                .with_help("close every `{{ … }}`; write values like \"{{ slots.name }}\""),
            ),
        }
    }

    fn check_templated(
        &mut self,
        doc: &Document,
        pointer: &str,
        value: &Value,
        templates: &Templates,
        known: &[&str],
        slot_names: &[String],
    ) {
        let mut found = Vec::new();
        Templates::templated_strings(value, pointer.to_owned(), &mut found);
        let known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
        for (pointer, source) in found {
            self.check_template_string(doc, &pointer, &source, templates, &known, slot_names);
        }
    }

    fn check_variables(
        &mut self,
        doc: &Document,
        pointer: &str,
        written: &str,
        variables: &[String],
        known: &[String],
        slot_names: &[String],
    ) {
        for variable in variables {
            let (head, rest) = split_variable(variable);
            if JINJA_GLOBALS.contains(&head) {
                continue;
            }
            if !known.iter().any(|k| k == head) {
                let mut diagnostic = Diagnostic::new(
                    Code::UndefinedVariable,
                    &doc.file,
                    doc.at(pointer),
                    format!("`{written}` uses `{head}`, which does not exist here"),
                );
                diagnostic = with_variable_help(diagnostic, head, known);
                self.report(diagnostic);
            } else if head == "slots" {
                if let Some(slot) = rest {
                    if !slot_names.iter().any(|s| s == slot) {
                        self.unknown_slot(doc, doc.at(pointer), slot, slot_names);
                    }
                }
            }
        }
    }

    fn unknown_slot(&mut self, doc: &Document, at: Position, name: &str, slot_names: &[String]) {
        let mut diagnostic = Diagnostic::new(
            Code::UnknownSlot,
            &doc.file,
            at,
            format!("slot `{name}` is not declared in this pipeline"),
        );
        diagnostic = match suggest(name, slot_names.iter().map(String::as_str)) {
            Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
            None if slot_names.is_empty() => diagnostic
                .with_help(format!("declare it under `slots:`, e.g. `{name}: {{ type: string, prompt: \"…\" }}`")),
            None => diagnostic
                .with_help(format!("declared slots: {}; or declare `{name}` under `slots:`", slot_names.join(", "))),
        };
        self.report(diagnostic);
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

/// The JSON type a body value will have, and where it comes from in words: a literal, or a
/// `"{{ slots.x }}"` (a whole expression keeps its type).
fn sent_type(
    value: &Value,
    slot_specs: &indexmap::IndexMap<String, super::spec::SlotSpec>,
) -> Option<(&'static str, String)> {
    match value {
        Value::String(text) => {
            let expr = crate::template::single_expression(text)?.trim();
            let slot = expr.strip_prefix("slots.")?;
            let spec = slot_specs.get(slot)?;
            let (json, words) = match spec.kind {
                SlotKindSpec::String => ("string", "text"),
                SlotKindSpec::Integer => ("integer", "a whole number"),
                SlotKindSpec::Number => ("number", "a number"),
                SlotKindSpec::Boolean => ("boolean", "true/false"),
                SlotKindSpec::Droplet => ("integer", "a droplet number"),
            };
            Some((json, format!("slot `{slot}`, which is {words}")))
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(("integer", format!("the number {n}"))),
        Value::Number(n) => Some(("number", format!("the number {n}"))),
        Value::Bool(b) => Some(("boolean", format!("`{b}`"))),
        _ => None,
    }
}

/// `slots.name.first` → (`slots`, Some(`name`)).
fn split_variable(variable: &str) -> (&str, Option<&str>) {
    let mut parts = variable.splitn(3, '.');
    let head = parts.next().unwrap_or_default();
    (head, parts.next())
}

fn with_variable_help(diagnostic: Diagnostic, head: &str, known: &[String]) -> Diagnostic {
    match suggest(head, known.iter().map(String::as_str)) {
        Some(best) => diagnostic.with_help(format!("did you mean `{best}`? Available: {}", known.join(", "))),
        None => diagnostic.with_help(format!("available here: {}", known.join(", "))),
    }
}

/// A template's use of an unknown variable or slot, located at its first use in the template.
fn check_variable(
    path: &str,
    source: &str,
    variable: &str,
    allowed: &[String],
    slot_names: &[String],
    pipeline_file: &str,
) -> Option<Diagnostic> {
    let (head, rest) = split_variable(variable);
    if JINJA_GLOBALS.contains(&head) {
        return None;
    }
    let known = allowed.iter().any(|k| k == head);
    // a name the template sets itself is fine; asked only when it would otherwise be reported,
    // because the check compiles a pattern
    if (!known || head == "slots") && assigns(source, head) {
        return None;
    }
    if !known {
        let at = first_use(source, head);
        let diagnostic = Diagnostic::new(
            Code::UndefinedVariable,
            path,
            at,
            format!("`{head}` is not defined when {pipeline_file} renders this template"),
        );
        return Some(with_variable_help(diagnostic, head, allowed));
    }
    if head == "slots" {
        let slot = rest?;
        if !slot_names.iter().any(|s| s == slot) {
            let at = first_use(source, &format!("slots.{slot}"));
            let mut diagnostic = Diagnostic::new(
                Code::UnknownSlot,
                path,
                at,
                format!("slot `{slot}` is not declared in {pipeline_file}"),
            );
            diagnostic = match suggest(slot, slot_names.iter().map(String::as_str)) {
                Some(best) => diagnostic.with_help(format!("did you mean `slots.{best}`?")),
                None => diagnostic.with_help(format!(
                    "declared slots: {}",
                    if slot_names.is_empty() { "none".to_owned() } else { slot_names.join(", ") }
                )),
            };
            return Some(diagnostic);
        }
    }
    None
}

/// Whether the template assigns `name` itself. minijinja's `undeclared_variables` reports a
/// name set inside an `{% if %}` branch and read after it; such a template is fine (and strict
/// undefined still catches a branch that forgets to set it), so it must not be reported.
fn assigns(source: &str, name: &str) -> bool {
    let name = regex::escape(name);
    Regex::new(&format!(r"\{{%-?\s*(set\s+{name}\b|for\s+([\w\s,]*,\s*)?{name}\b)"))
        .map(|pattern| pattern.is_match(source))
        .unwrap_or(false)
}

/// Line and column of the first whole-word occurrence of `word` inside a `{{ }}` or `{% %}`.
fn first_use(source: &str, word: &str) -> Position {
    let Ok(pattern) = Regex::new(&format!(r"(^|[^\w.]){}\b", regex::escape(word))) else { return Position::default() };
    for (n, line) in source.lines().enumerate() {
        if let Some(m) = pattern.find(line) {
            let offset = line[m.start()..].find(word).map(|o| o + m.start()).unwrap_or(m.start());
            return Position { line: n as u32 + 1, column: line[..offset].chars().count() as u32 + 1 };
        }
    }
    Position::default()
}

/// How to fix a YAML syntax error. A backslash inside double quotes starts a YAML escape, and
/// the ones regular expressions use (`\s`, `\d`, `\w`, `\.`) are not YAML escapes: that is
/// nearly always a pattern that wants single quotes, not an indentation problem.
fn yaml_help(text: &str, at: Position, message: &str) -> String {
    let line = text.lines().nth(at.line.saturating_sub(1) as usize).unwrap_or_default();
    if message.contains("escape") || (line.contains('"') && line.contains('\\')) {
        let quoted = line.split('"').nth(1).unwrap_or_default().replace('\'', "''");
        return format!(
            "inside double quotes YAML reads a backslash as the start of an escape; write patterns in single quotes, where it stays a backslash: '{quoted}'"
        );
    }
    "check indentation and that every `[`, `{` and quote is closed".to_owned()
}

/// minijinja's message without its own location suffix.
fn error_detail(error: &minijinja::Error) -> String {
    let detail = error.detail().map(str::to_owned).unwrap_or_else(|| error.kind().to_string());
    format!("{} ({detail})", error.kind())
}

fn template_error_position(error: &minijinja::Error, source: &str) -> Position {
    let line = error.line().unwrap_or(0) as u32;
    let column = error
        .range()
        .and_then(|range| {
            let before = source.get(..range.start)?;
            let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
            Some(before[line_start..].chars().count() as u32 + 1)
        })
        .unwrap_or(1);
    Position { line, column }
}
