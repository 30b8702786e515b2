//! One step of a pipeline: exactly one kind, each compiled with its templates.

use super::templates::{DECLINED, DEFAULT_ASK, GIVE_UP};
use super::{Compiler, Document};
use crate::catalogue::Catalogue;
use crate::config::spec::{ConfirmSpec, ExtractSpec, FormatSpec, ReasonSpec, StepSpec};
use crate::diagnostic::{Code, Diagnostic};
use crate::steps::{
    ConfirmStep, ExtractStep, FormatStep, Progress, QueryStep, ReasonOutput, ReasonStep, Step, DEFAULT_CONFIRM_TRIES,
    DEFAULT_TRIES,
};
use crate::template::{
    Templates, ASK_CONTEXT_NAMES, CONFIRM_CONTEXT_NAMES, GIVE_UP_CONTEXT_NAMES, PROGRESS_CONTEXT_NAMES,
};

impl Compiler<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        doc: &Document,
        here: &str,
        step: &StepSpec,
        slot_names: &[String],
        known: &[String],
        catalogue: &Catalogue,
        slot_specs: &indexmap::IndexMap<String, crate::config::spec::SlotSpec>,
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
}
