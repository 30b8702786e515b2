//! A pipeline's steps: their order (a reply at the end, nothing after it), and each step of
//! exactly one kind, compiled with its templates.

use super::templates::{DECLINED, DEFAULT_ASK, GIVE_UP};
use super::{Compiler, Scope};
use crate::catalogue::Catalogue;
use crate::config::spec::{ConfirmSpec, ExtractSpec, FormatSpec, PipelineSpec, ReasonSpec, StepSpec};
use crate::diagnostic::{Code, Diagnostic};
use crate::pipeline::GuardedStep;
use crate::steps::{
    ConfirmStep, ExtractStep, FormatStep, Progress, QueryStep, ReasonOutput, ReasonStep, Step, DEFAULT_CONFIRM_TRIES,
    DEFAULT_TRIES,
};
use crate::template::{ASK_CONTEXT_NAMES, CONFIRM_CONTEXT_NAMES, GIVE_UP_CONTEXT_NAMES, PROGRESS_CONTEXT_NAMES};

impl Compiler<'_> {
    /// The steps in order: each compiled, none after one that always replies, and a reply at the
    /// end whatever the conditions.
    pub(super) fn steps(&mut self, scope: &Scope, spec: &PipelineSpec, catalogue: &Catalogue) -> Vec<GuardedStep> {
        let doc = scope.doc;
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
                self.check_expression(scope, &format!("{here}/when"), condition);
            }
            let only_format =
                step.format.is_some() && step.extract.is_none() && step.query.is_none() && step.reason.is_none();
            if only_format && step.when.is_none() && reply_guaranteed_at.is_none() {
                reply_guaranteed_at = Some(i);
            }
            if let Some(compiled) = self.step(scope, &here, step, catalogue) {
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
        steps
    }

    pub(super) fn step(&mut self, scope: &Scope, here: &str, step: &StepSpec, catalogue: &Catalogue) -> Option<Step> {
        let doc = scope.doc;
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
            return self.extract(scope, &format!("{here}/extract"), extract).map(Step::Extract);
        }
        if let Some(reason) = &step.reason {
            return self.reason(scope, &format!("{here}/reason"), reason).map(Step::Reason);
        }
        if let Some(confirm) = &step.confirm {
            return self.confirm(scope, &format!("{here}/confirm"), confirm).map(Step::Confirm);
        }
        if let Some(format) = &step.format {
            let templates_ok = self.reply_templates(scope, &format!("{here}/format"), format, &[]);
            return templates_ok.map(|t| Step::Format(FormatStep { templates: t }));
        }
        let query = step.query.as_ref()?;
        let mut calls = Vec::new();
        for (suffix, call) in query.calls() {
            let pointer = format!("{here}/query{suffix}");
            if let Some(call) = self.call(scope, &pointer, call, catalogue) {
                calls.push(call);
            }
        }
        let progress = match &step.progress {
            None => None,
            Some(spec) => {
                let lines = FormatSpec { chat: spec.chat.clone(), voice: spec.voice.clone() };
                let pointer = format!("{here}/progress");
                let templates = self.reply_templates(scope, &pointer, &lines, PROGRESS_CONTEXT_NAMES)?;
                Some(Progress { templates, after: spec.after_ms.map(std::time::Duration::from_millis) })
            }
        };
        Some(Step::Query(QueryStep { calls, progress }))
    }

    fn extract(&mut self, scope: &Scope, here: &str, extract: &ExtractSpec) -> Option<ExtractStep> {
        for (key, names) in [("required", &extract.required), ("optional", &extract.optional)] {
            for (j, name) in names.iter().enumerate() {
                if !scope.slot_names.contains(name) {
                    self.unknown_slot(scope, scope.doc.at(&format!("{here}/{key}/{j}")), name);
                }
            }
        }
        let default_ask = FormatSpec { chat: DEFAULT_ASK.0.to_owned(), voice: DEFAULT_ASK.1.to_owned() };
        let ask_spec = extract.ask.as_ref().unwrap_or(&default_ask);
        let ask = self.reply_templates(scope, &format!("{here}/ask"), ask_spec, ASK_CONTEXT_NAMES)?;
        let give_up = self.shared_templates(scope, here, GIVE_UP, GIVE_UP_CONTEXT_NAMES)?;
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
    fn confirm(&mut self, scope: &Scope, here: &str, confirm: &ConfirmSpec) -> Option<ConfirmStep> {
        let read_back = FormatSpec { chat: confirm.chat.clone(), voice: confirm.voice.clone() };
        let ask = self.reply_templates(scope, here, &read_back, CONFIRM_CONTEXT_NAMES);
        let declined = match &confirm.declined {
            Some(spec) => self.reply_templates(scope, &format!("{here}/declined"), spec, &[]),
            None => self.shared_templates(scope, here, DECLINED, &[]),
        };
        let give_up = self.shared_templates(scope, here, GIVE_UP, GIVE_UP_CONTEXT_NAMES);
        Some(ConfirmStep { ask: ask?, declined: declined?, give_up: give_up?, tries: DEFAULT_CONFIRM_TRIES })
    }

    fn reason(&mut self, scope: &Scope, here: &str, reason: &ReasonSpec) -> Option<ReasonStep> {
        let doc = scope.doc;
        let prompt_ok = self.template_file(scope, &format!("{here}/prompt"), &reason.prompt, &[]);
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
