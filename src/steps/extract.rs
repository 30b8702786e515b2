//! `extract`: fill slots from the message; ask for what is missing and park the pipeline.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{ReplyTemplates, StepError};
use crate::catalogue::{Catalogue, Recognition};
use crate::intent::content_words;
use crate::pipeline::{Flow, Pipeline, RunEnv, TurnState};
use crate::slots::{SlotDef, SlotKind};

/// A message of at most this many content words that names a droplet answers "which droplet?".
const SHORT_ANSWER_WORDS: usize = 3;

#[derive(Debug)]
pub struct ExtractStep {
    pub required: Vec<String>,
    pub optional: Vec<String>,
    /// Templates that ask for missing slots.
    pub ask: ReplyTemplates,
}

/// What a message contributed to the slots.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filled {
    /// Slot name → why the value given is not acceptable (the slot stays empty).
    pub errors: BTreeMap<String, String>,
    /// Required slots still empty, in the order listed.
    pub missing: Vec<String>,
}

impl ExtractStep {
    fn wanted<'p>(&'p self, pipeline: &'p Pipeline) -> impl Iterator<Item = &'p SlotDef> + 'p {
        self.required.iter().chain(&self.optional).filter_map(|name| pipeline.slot(name))
    }

    /// Reads slot values from `message` into `slots`. Pure: the engine and `explain` share it.
    ///
    /// `resumed` says the message answers a question this step asked; then a message that is
    /// just a value fills the one required slot still open.
    pub fn fill(
        &self,
        pipeline: &Pipeline,
        catalogue: &Catalogue,
        message: &str,
        resumed: bool,
        slots: &mut Map<String, Value>,
    ) -> Filled {
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        let pairs = pipeline.parser.parse(message);
        let before = slots.clone();
        let mut given: Vec<&str> = Vec::new();

        for (key, raw) in &pairs {
            let Some(slot) = self.wanted(pipeline).find(|s| s.keys.contains(key)) else { continue };
            given.push(&slot.name);
            accept(slot, raw, catalogue, slots, &mut errors);
        }

        for slot in self.wanted(pipeline).filter(|s| s.kind == SlotKind::Droplet && !given.contains(&s.name.as_str())) {
            match catalogue.recognize(message) {
                Recognition::Found(id) => {
                    slots.insert(slot.name.clone(), json!(id));
                    errors.remove(&slot.name);
                }
                Recognition::UnknownNumber(number) => {
                    slots.remove(&slot.name);
                    errors.insert(slot.name.clone(), format!("number {number} is not in the catalogue"));
                }
                Recognition::NotMentioned => {}
            }
        }

        // An answer to "what is its id?" is often just the value: take the whole message when
        // exactly one required slot is still open and the message filled nothing else.
        if resumed && pairs.is_empty() && *slots == before && errors.is_empty() {
            if let [slot] = self.open_slots(pipeline, slots).as_slice() {
                accept(slot, message, catalogue, slots, &mut errors);
            }
        }

        let missing = self.open_slots(pipeline, slots).into_iter().map(|s| s.name.clone()).collect();
        Filled { errors, missing }
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
        let mut filled = self.fill(pipeline, env.catalogue, &state.message, state.resumed, &mut state.slots);
        if !filled.missing.is_empty() {
            if let Some(llm) = env.llm.filter(|_| state.llm_may_extract) {
                let missing: Vec<&SlotDef> = filled.missing.iter().filter_map(|name| pipeline.slot(name)).collect();
                if crate::understand::worth_asking(pipeline, &missing, &state.message) {
                    self.ask_model(llm, pipeline, env, state, &mut filled).await;
                }
            }
        }
        if filled.missing.is_empty() {
            return Ok(None);
        }
        let missing: Vec<Value> = filled
            .missing
            .iter()
            .filter_map(|name| pipeline.slot(name))
            .map(|slot| {
                json!({
                    "name": slot.name,
                    "prompt": slot.prompt,
                    "example": slot.example,
                    "error": filled.errors.get(&slot.name),
                    "type": slot.kind,
                })
            })
            .collect();
        let text = self.ask.render(pipeline, env, state, Some(("missing", crate::template::to_value(&missing))))?;
        Ok(Some(Flow::Ask { text, step: index }))
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
        let request = crate::understand::extraction_request(pipeline, &missing, &state.message);
        let (result, call) = llm.ask(&request).await;
        state.trace.llm.push(call);
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => {
                state.trace.notes.push(format!("the language model could not read slots: {error}"));
                return;
            }
        };
        let (values, notes) = crate::understand::read_extraction(&answer.text, &missing, &state.message, env.catalogue);
        state.trace.notes.extend(notes);
        for (name, value) in values {
            filled.errors.remove(&name);
            state.slots.insert(name, value);
        }
        filled.missing = self.open_slots(pipeline, &state.slots).into_iter().map(|s| s.name.clone()).collect();
    }

    /// Whether the message reads as an answer to this step's question: a `key:value` for one of
    /// its slots, or a short message naming a droplet when it wants one. The engine uses it to
    /// tell an answer from a change of subject; a droplet named inside a longer request for
    /// something else ("create a task title:Restart the registry") is not an answer.
    pub fn answers(&self, pipeline: &Pipeline, catalogue: &Catalogue, message: &str) -> bool {
        let keyed =
            pipeline.parser.parse(message).iter().any(|(key, _)| self.wanted(pipeline).any(|s| s.keys.contains(key)));
        let named = self.wanted(pipeline).any(|s| s.kind == SlotKind::Droplet)
            && content_words(message).len() <= SHORT_ANSWER_WORDS
            && catalogue.recognize(message) != Recognition::NotMentioned;
        keyed || named
    }

    /// Required slots not filled yet, in the order they are listed.
    fn open_slots<'p>(&'p self, pipeline: &'p Pipeline, slots: &Map<String, Value>) -> Vec<&'p SlotDef> {
        self.required.iter().filter(|name| !slots.contains_key(*name)).filter_map(|name| pipeline.slot(name)).collect()
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

fn accept(
    slot: &SlotDef,
    raw: &str,
    catalogue: &Catalogue,
    slots: &mut Map<String, Value>,
    errors: &mut BTreeMap<String, String>,
) {
    match slot.coerce(raw, catalogue) {
        Ok(value) => {
            slots.insert(slot.name.clone(), value);
            errors.remove(&slot.name);
        }
        Err(problem) => {
            // a wrong new value replaces an old one: the user meant to change it
            slots.remove(&slot.name);
            errors.insert(slot.name.clone(), problem);
        }
    }
}
