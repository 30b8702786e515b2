//! `extract`: fill slots from the message; ask for what is missing and park the pipeline.

use std::collections::BTreeMap;

use serde_json::json;

use super::{ReplyTemplates, StepError};
use crate::catalogue::{Catalogue, Recognition};
use crate::pipeline::{Flow, Pipeline, RunEnv, TurnState};
use crate::slots::{SlotDef, SlotKind};

#[derive(Debug)]
pub struct ExtractStep {
    pub required: Vec<String>,
    pub optional: Vec<String>,
    /// Templates that ask for missing slots.
    pub ask: ReplyTemplates,
}

impl ExtractStep {
    fn wanted<'p>(&'p self, pipeline: &'p Pipeline) -> impl Iterator<Item = &'p SlotDef> + 'p {
        self.required.iter().chain(&self.optional).filter_map(|name| pipeline.slot(name))
    }

    /// Fills what the message gives. Returns a question when required slots are still missing.
    pub fn run(
        &self,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        index: usize,
    ) -> Result<Option<Flow>, StepError> {
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        let pairs = pipeline.parser.parse(&state.message);
        let mut given: Vec<String> = Vec::new();

        for (key, raw) in &pairs {
            let Some(slot) = self.wanted(pipeline).find(|s| s.keys.contains(key)) else { continue };
            given.push(slot.name.clone());
            self.accept(slot, raw, env.catalogue, state, &mut errors);
        }

        for slot in self.wanted(pipeline).filter(|s| s.kind == SlotKind::Droplet && !given.contains(&s.name)) {
            match env.catalogue.recognize(&state.message) {
                Recognition::Found(id) => {
                    state.slots.insert(slot.name.clone(), json!(id));
                    errors.remove(&slot.name);
                }
                Recognition::UnknownNumber(number) => {
                    state.slots.remove(&slot.name);
                    errors.insert(slot.name.clone(), format!("number {number} is not in the catalogue"));
                }
                Recognition::NotMentioned => {}
            }
        }

        // An answer to "what is its id?" is often just the value: take the whole message when
        // exactly one required slot is still open and nothing else was recognised.
        if state.resumed && pairs.is_empty() {
            let open: Vec<&SlotDef> =
                self.open_slots(pipeline, state).into_iter().filter(|s| !errors.contains_key(&s.name)).collect();
            if let [slot] = open.as_slice() {
                if slot.kind != SlotKind::Droplet {
                    let message = state.message.clone();
                    self.accept(slot, &message, env.catalogue, state, &mut errors);
                }
            }
        }

        let missing: Vec<serde_json::Value> = self
            .open_slots(pipeline, state)
            .into_iter()
            .map(|slot| {
                json!({
                    "name": slot.name,
                    "prompt": slot.prompt,
                    "example": slot.example,
                    "error": errors.get(&slot.name),
                    "type": slot.kind,
                })
            })
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let text = self.ask.render(pipeline, env, state, Some(("missing", crate::template::to_value(&missing))))?;
        Ok(Some(Flow::Ask { text, step: index }))
    }

    /// Whether the message gives a value for any of this step's slots. The engine uses it to
    /// tell an answer to its question from a change of subject.
    pub fn finds_values(&self, pipeline: &Pipeline, catalogue: &Catalogue, message: &str) -> bool {
        let keyed =
            pipeline.parser.parse(message).iter().any(|(key, _)| self.wanted(pipeline).any(|s| s.keys.contains(key)));
        let named = self.wanted(pipeline).any(|s| s.kind == SlotKind::Droplet)
            && catalogue.recognize(message) != Recognition::NotMentioned;
        keyed || named
    }

    /// Required slots not filled yet, in the order they are listed.
    fn open_slots<'p>(&'p self, pipeline: &'p Pipeline, state: &TurnState) -> Vec<&'p SlotDef> {
        self.required
            .iter()
            .filter(|name| !state.slots.contains_key(*name))
            .filter_map(|name| pipeline.slot(name))
            .collect()
    }

    fn accept(
        &self,
        slot: &SlotDef,
        raw: &str,
        catalogue: &Catalogue,
        state: &mut TurnState,
        errors: &mut BTreeMap<String, String>,
    ) {
        match slot.coerce(raw, catalogue) {
            Ok(value) => {
                state.slots.insert(slot.name.clone(), value);
                errors.remove(&slot.name);
            }
            Err(problem) => {
                // a wrong new value replaces an old one: the user meant to change it
                state.slots.remove(&slot.name);
                errors.insert(slot.name.clone(), problem);
            }
        }
    }
}
