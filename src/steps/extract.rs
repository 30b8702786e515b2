//! `extract`: fill slots from the message; ask for what is missing and park the pipeline.

use serde_json::{json, Value};

use super::{ReplyTemplates, StepError};
use crate::catalogue::Catalogue;
use crate::nlu::Analyzer;
use crate::pipeline::{Flow, Pipeline, RunEnv, TurnState};
use crate::slots::fill::{bare_answer, changes, Filled, Said, SlotReader};
use crate::slots::{model, SlotDef};
use crate::trace::{AnswerReading, DialogueState};

#[derive(Debug)]
pub struct ExtractStep {
    pub required: Vec<String>,
    pub optional: Vec<String>,
    /// Templates that ask for missing slots.
    pub ask: ReplyTemplates,
    /// Ask for every missing slot at once in chat (voice always asks one at a time).
    pub together: bool,
    /// Unusable answers to one question before stopping.
    pub tries: u32,
    /// The reply when the answers stayed unusable.
    pub give_up: ReplyTemplates,
}

/// How many unusable answers to one question before the action stops.
pub const DEFAULT_TRIES: u32 = 3;

impl ExtractStep {
    /// The slot reader for what this step collects.
    pub fn reader<'a>(
        &'a self,
        pipeline: &'a Pipeline,
        catalogue: &'a Catalogue,
        analyzer: &'a Analyzer,
    ) -> SlotReader<'a> {
        SlotReader {
            slots: &pipeline.slots,
            parser: &pipeline.parser,
            generic_words: &pipeline.generic_words,
            required: &self.required,
            optional: &self.optional,
            catalogue,
            analyzer,
        }
    }

    /// Fills what the message gives — from `key:value` pairs, then, for required slots still
    /// open, from the language model when the message says more than its trigger words.
    /// Returns a question when required slots are still missing.
    pub async fn run(
        &self,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        index: usize,
    ) -> Result<Option<Flow>, StepError> {
        let asked = state.dialogue.asking().map(str::to_owned);
        let before = state.slots.clone();
        if state.resumed {
            self.correct_previous_answer(pipeline, env.catalogue, state);
        }
        let said = if state.resumed { Said::Answer(asked.as_deref()) } else { Said::Fresh };
        let reader = self.reader(pipeline, env.catalogue, env.analyzer);
        // the turn's reading, unless a correction of the previous answer used up the message
        let reading = if state.reading.text == state.message {
            state.reading.clone()
        } else {
            std::sync::Arc::new(env.analyzer.read(&state.message))
        };
        let mut filled = reader.fill(&reading, said, &mut state.slots);
        if !filled.missing.is_empty() {
            if let Some(llm) = env.llm.filter(|_| state.llm_may_extract) {
                let missing: Vec<&SlotDef> = filled.missing.iter().filter_map(|name| pipeline.slot(name)).collect();
                if model::worth_asking(&pipeline.for_model(), &missing, &state.message) {
                    self.ask_model(llm, pipeline, env, state, &mut filled).await;
                }
            }
        }
        // values given before and changed now ("actually call it Billing Two") are corrections
        for change in changes(&pipeline.slots, &before, &state.slots, true) {
            state.trace.notes.push(format!("changed {change}"));
            state.dialogue.changed.push(change);
        }
        // planning read a read-back's correction already; an answer to a question is read here
        if state.resumed && state.dialogue.answer.is_none() {
            let usable = state.slots != before;
            state.dialogue.answer = Some(if usable { AnswerReading::Value } else { AnswerReading::Unclear });
        }
        // an optional value the user gave but that is not acceptable is asked for, not dropped
        let rejected: Vec<String> =
            self.optional.iter().filter(|name| filled.errors.contains_key(*name)).cloned().collect();
        filled.missing.extend(rejected);
        if filled.missing.is_empty() {
            return Ok(None);
        }
        let missing: Vec<&SlotDef> = filled.missing.iter().filter_map(|name| pipeline.slot(name)).collect();
        let Some(asking) = missing.first().copied() else { return Ok(None) };
        // the same question again after an answer that gave nothing usable
        let again = state.resumed && asked.as_deref() == Some(asking.name.as_str());
        let tries = match (again, state.slots != before) {
            (false, _) => 0,
            // another value was given: not a wasted answer
            (true, true) => state.dialogue.tries(),
            (true, false) => state.dialogue.tries() + 1,
        };
        if tries >= self.tries {
            let note = format!("no usable `{}` after {tries} tries: the action was dropped", asking.name);
            let detail = self.describe_slot(asking, &filled, pipeline, env, state);
            return super::give_up(&self.give_up, pipeline, env, state, note, detail);
        }
        // the question moved on: the one before it was answered (and may be corrected next)
        let answered = match asked {
            Some(asked) if asked != asking.name => Some(asked),
            Some(_) => state.dialogue.answered().map(str::to_owned),
            None => None,
        };
        state.dialogue.tries_left = Some(self.tries - tries);
        state.dialogue.state = Some(DialogueState::Asking);
        let described: Vec<Value> =
            missing.iter().map(|slot| self.describe_slot(slot, &filled, pipeline, env, state)).collect();
        let together = self.together && state.channel == crate::session::Channel::Chat && missing.len() > 1;
        let first = !state.resumed && !state.dialogue.resuming;
        let extra = [
            ("asking", crate::template::to_value(&described[0])),
            ("missing", crate::template::to_value(&described)),
            ("ask_together", minijinja::Value::from(together)),
            ("first_question", minijinja::Value::from(first)),
            ("asking_again", minijinja::Value::from(state.dialogue.resuming)),
        ];
        let text = self.ask.render(pipeline, env, state, &extra)?;
        let pending = pipeline.park(index, &state.slots, Some(asking.name.clone()), tries, answered);
        Ok(Some(Flow::Ask { text, pending: Box::new(pending) }))
    }

    /// "oops, payments" / "sorry, I mean Billing Two", in answer to the next question: when the
    /// message starts with a correction and what follows is no answer to the question asked but
    /// fits the slot asked before, it replaces that slot's value.
    fn correct_previous_answer(&self, pipeline: &Pipeline, catalogue: &Catalogue, state: &mut TurnState) {
        let (Some(previous), Some(asked)) =
            (state.dialogue.answered().map(str::to_owned), state.dialogue.asking().map(str::to_owned))
        else {
            return;
        };
        let lowered = state.message.trim().to_lowercase();
        let Some(marker) = crate::nlu::Lexicon::english()
            .correction_markers
            .iter()
            .find(|m| lowered.starts_with(*m) && lowered[m.len()..].starts_with(|c: char| !c.is_alphanumeric()))
        else {
            return;
        };
        let rest = state.message.trim().get(marker.len()..).unwrap_or_default();
        let rest = bare_answer(rest.trim_start_matches([',', ' ', ':', '-']).trim_start_matches("i mean ").trim());
        let (Some(previous_slot), Some(asked_slot)) = (pipeline.slot(&previous), pipeline.slot(&asked)) else { return };
        if rest.is_empty() || asked_slot.coerce(rest, catalogue).is_ok() {
            return;
        }
        if let Ok(value) = previous_slot.coerce(rest, catalogue) {
            // recorded as a change with the others, by `run`
            state.slots.insert(previous, value);
            // the message was this correction, not an answer to the question asked
            state.message.clear();
        }
    }

    /// A missing slot as the ask templates see it: `{name, label, prompt, question, example,
    /// error, type}`; the question is the steward's (rendered) or made from the prompt.
    fn describe_slot(
        &self,
        slot: &SlotDef,
        filled: &Filled,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &TurnState,
    ) -> Value {
        let written = slot.question.as_ref().map(|(chat, voice)| match state.channel {
            crate::session::Channel::Chat => chat,
            crate::session::Channel::Voice => voice,
        });
        let question = written
            .and_then(|source| {
                let context = pipeline.context(env, state, &[]);
                env.templates.render_value(&Value::String(source.clone()), &context).ok()
            })
            .and_then(|value| value.as_str().map(str::to_owned))
            .filter(|q| !q.trim().is_empty())
            .unwrap_or_else(|| slot.default_question());
        json!({
            "name": slot.name,
            "label": slot.name.replace('_', " "),
            "prompt": slot.prompt,
            "question": question,
            "example": slot.example,
            "error": filled.errors.get(&slot.name),
            "type": slot.kind,
        })
    }

    /// One extraction call for the required slots still open; values are kept only when the
    /// user said them and they pass the slot's rules.
    async fn ask_model(
        &self,
        llm: &crate::llm::Llm,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        filled: &mut Filled,
    ) {
        let missing: Vec<&SlotDef> = filled.missing.iter().filter_map(|name| pipeline.slot(name)).collect();
        let request = model::extraction_request(&pipeline.for_model(), &missing, &state.message);
        let (result, call) = llm.ask(&request).await;
        state.trace.llm.push(call);
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => {
                state.trace.notes.push(format!("the language model could not read slots: {error}"));
                return;
            }
        };
        let (values, notes) = model::read_extraction(&answer.text, &missing, &state.message, env.catalogue);
        state.trace.notes.extend(notes);
        for (name, value) in values {
            filled.errors.remove(&name);
            state.slots.insert(name, value);
        }
        let reader = self.reader(pipeline, env.catalogue, env.analyzer);
        filled.missing = reader.open_slots(&state.slots).into_iter().map(|s| s.name.clone()).collect();
    }

    /// One line for `explain`: what the step collects.
    pub fn describe(&self) -> String {
        let mut text = format!("extract required [{}]", self.required.join(", "));
        if !self.optional.is_empty() {
            text.push_str(&format!(", optional [{}]", self.optional.join(", ")));
        }
        text
    }
}
