//! Understanding a message with a language model, constrained to what the stewards declared.
//!
//! When no rule decides, one structured call ([`Classifier`]) asks the model to pick among the
//! declared intents and fill their declared slots: the response schema is generated from the
//! pipelines, so the model can only name intents and slots that exist, never a droplet, endpoint
//! or method. Its answer is checked again here (schema, slot ownership, slot types and rules) and
//! every slot value must be *grounded*: found in the user's own words, so a value the model made
//! up is dropped and asked for instead. The user's message travels as a quoted JSON string,
//! marked as data; the instructions say to ignore instructions inside it.

use serde_json::{json, Map, Value};

use crate::catalogue::Catalogue;
use crate::llm::{LlmRequest, Purpose, Speaker};
use crate::pipeline::Pipeline;
use crate::slots::model::{checked_value, quoted_message, slot_kind, DATA_RULE};

/// At most this many intents in one message.
pub const MAX_INTENTS: usize = 3;

/// The longest clarifying question the model may have the assistant ask (characters).
pub const MAX_CLARIFICATION_CHARS: usize = 300;

/// The classification call for one configuration: schema, validator and instructions.
pub struct Classifier {
    schema: Value,
    validator: jsonschema::Validator,
    system: String,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// One intent the model chose, with the slot values that survived checking.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub intent: String,
    pub slots: Map<String, Value>,
}

/// What the model's answer amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Understanding {
    /// Confident enough: run these intents (in the order given).
    Intents {
        chosen: Vec<Chosen>,
        confidence: f64,
        /// Why values were dropped, for the trace.
        notes: Vec<String>,
    },
    /// No intent, or not confident enough; the model may have a question to ask.
    Unsure { confidence: f64, clarification: Option<String> },
    /// The answer was not JSON of the required shape (an unknown intent, say).
    Invalid { reason: String },
}

/// Which pipelines the model may choose: every intent but the fallback and interrupts (those
/// only mean something while an action is pending, when the model is never asked).
fn choosable(pipelines: &[Pipeline]) -> impl Iterator<Item = &Pipeline> {
    pipelines.iter().filter(|p| !p.fallback && !p.interrupts)
}

impl Classifier {
    pub fn build(pipelines: &[Pipeline], catalogue: &Catalogue) -> Classifier {
        let intents: Vec<&str> = choosable(pipelines).map(|p| p.intent.as_str()).collect();
        let mut slot_names: Vec<&str> =
            choosable(pipelines).flat_map(|p| p.slots.iter().map(|s| s.name.as_str())).collect();
        slot_names.sort_unstable();
        slot_names.dedup();
        let slot_items = if slot_names.is_empty() {
            // an enum must not be empty: with no slots anywhere, no slot can be named
            json!({"type": "string", "maxLength": 0})
        } else {
            json!({"type": "string", "enum": slot_names})
        };
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["intents", "confidence", "slots", "clarification"],
            "properties": {
                "intents": {
                    "type": "array",
                    "description": "The intents the message asks for, most important first; empty when none fits.",
                    "items": {"type": "string", "enum": intents},
                    "maxItems": MAX_INTENTS,
                },
                "confidence": {
                    "type": "number",
                    "description": "How sure the choice is, from 0 to 1.",
                    "minimum": 0,
                    "maximum": 1,
                },
                "slots": {
                    "type": "array",
                    "description": "Slot values the user gave, copied from the message.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["intent", "name", "value"],
                        "properties": {
                            "intent": {"type": "string", "enum": intents},
                            "name": slot_items,
                            "value": {"type": "string"},
                        },
                    },
                },
                "clarification": {
                    "type": ["string", "null"],
                    "description": "One short question to ask when the message is unclear; otherwise null.",
                },
            },
        });
        // built from our own declarations, so it always compiles; an empty validator would be
        // a bug shown by the tests, not a user-facing failure
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|_| jsonschema::draft202012::new(&json!(false)).expect("`false` is a schema"));
        Classifier { system: classify_instructions(pipelines, catalogue), schema, validator }
    }

    /// The call for `message`, after `history`; `focus` says what the conversation is about, so
    /// a follow-up ("and its endpoints?") can be understood.
    pub fn request(&self, history: Vec<(Speaker, String)>, message: &str, focus: Option<String>) -> LlmRequest {
        let quoted = quoted_message(message);
        LlmRequest {
            purpose: Purpose::Classify,
            system: self.system.clone(),
            history,
            prompt: match focus {
                Some(focus) => format!("{focus}\n\n{quoted}"),
                None => quoted,
            },
            schema: Some(self.schema.clone()),
            schema_name: "classification",
        }
    }

    /// Checks the model's answer against the schema, the pipelines and the message.
    pub fn read(
        &self,
        answer: &str,
        pipelines: &[Pipeline],
        catalogue: &Catalogue,
        message: &str,
        min_confidence: f64,
    ) -> Understanding {
        let value: Value = match serde_json::from_str(answer.trim()) {
            Ok(value) => value,
            Err(error) => return Understanding::Invalid { reason: format!("the answer is not JSON: {error}") },
        };
        if let Some(error) = self.validator.iter_errors(&value).next() {
            return Understanding::Invalid {
                reason: format!("the answer breaks the schema at `{}`: {error}", error.instance_path()),
            };
        }
        let confidence = value["confidence"].as_f64().unwrap_or(0.0);
        // one short question, said to the user and kept in the history: a long one is no question
        let clarification = value["clarification"]
            .as_str()
            .map(str::trim)
            .filter(|c| !c.is_empty() && c.chars().count() <= MAX_CLARIFICATION_CHARS)
            .map(str::to_owned);
        let mut intents: Vec<String> = Vec::new();
        for intent in value["intents"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !intents.iter().any(|i| i == intent) {
                intents.push(intent.to_owned());
            }
        }
        if intents.is_empty() || confidence < min_confidence {
            return Understanding::Unsure { confidence, clarification };
        }
        let mut notes = Vec::new();
        let mut chosen: Vec<Chosen> = intents.iter().map(|i| Chosen { intent: i.clone(), slots: Map::new() }).collect();
        for pair in value["slots"].as_array().into_iter().flatten() {
            let (intent, name, raw) = (
                pair["intent"].as_str().unwrap_or(""),
                pair["name"].as_str().unwrap_or(""),
                pair["value"].as_str().unwrap_or(""),
            );
            let Some(target) = chosen.iter_mut().find(|c| c.intent == intent) else {
                notes.push(format!("ignored slot `{name}` for `{intent}`, an intent not chosen"));
                continue;
            };
            let Some(slot) = pipelines.iter().find(|p| p.intent == intent).and_then(|p| p.slot(name)) else {
                notes.push(format!("ignored slot `{name}`: `{intent}` has no such slot"));
                continue;
            };
            match checked_value(slot, raw, message, catalogue) {
                Ok(value) => {
                    target.slots.insert(slot.name.clone(), value);
                }
                Err(why) => notes.push(format!("dropped slot `{name}` = {raw:?}: {why}")),
            }
        }
        Understanding::Intents { chosen, confidence, notes }
    }
}

fn classify_instructions(pipelines: &[Pipeline], catalogue: &Catalogue) -> String {
    let mut text = String::from(
        "You route messages for the Chat Orchestrator of the Full Potential droplet mesh.\n\
         Decide which of the intents below the user's latest message asks for, and copy the slot values the user gave.\n\n\
         Rules:\n\
         - Answer only with JSON that follows the response schema.\n\
         - `intents` names only intents from the list, most important first; several only when the message asks for several things; empty when none fits.\n\
         - `slots` names only slots listed under a chosen intent; each value is copied from the user's words. Leave out values the user did not give.\n\
         - `confidence` is how sure you are of the intents, from 0 to 1.\n\
         - `clarification` is one short question to ask when the message is unclear; otherwise null.\n",
    );
    text.push_str("- ");
    text.push_str(DATA_RULE);
    text.push_str("\n\nIntents:\n");
    for pipeline in choosable(pipelines) {
        text.push_str(&format!("- {}: {}", pipeline.intent, pipeline.description));
        if !pipeline.examples.is_empty() {
            let examples: Vec<String> = pipeline.examples.iter().take(3).map(|e| format!("\"{e}\"")).collect();
            text.push_str(&format!(". Examples: {}", examples.join("; ")));
        }
        text.push('\n');
        for slot in &pipeline.slots {
            text.push_str(&format!("  - slot {} ({}): {}\n", slot.name, slot_kind(slot), slot.prompt));
        }
    }
    text.push_str("\nDroplets (for droplet slots): ");
    let droplets: Vec<String> = catalogue.droplets.iter().map(|d| format!("{} ({})", d.name, d.id)).collect();
    text.push_str(&droplets.join(", "));
    text.push('\n');
    text
}
