//! A pipeline's slots: kind, phrases (`from:`), question, and the JSON Schema of their values.

use super::{Compiler, Document};
use crate::config::spec::{PipelineSpec, QuestionSpec, SlotKindSpec};
use crate::diagnostic::{Code, Diagnostic};
use crate::slots::phrases::Phrase;
use crate::slots::{SlotDef, SlotKind};

impl Compiler<'_> {
    pub(super) fn slots(&mut self, doc: &Document, spec: &PipelineSpec) -> Vec<SlotDef> {
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
                Ok(def) => slots.push(
                    def.with_phrases(declared)
                        .with_question(question)
                        .with_sensitive(slot.sensitive)
                        .with_from_context(slot.from_context),
                ),
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
        slots
    }
}
