//! A compiled pipeline and the loop that runs its steps for one turn.
//!
//! Steps run in order; a step whose `when` is false is skipped; an `extract` step that lacks
//! required slots asks for them and *parks* the pipeline (the engine stores where to resume);
//! the first `format` step that runs produces the reply and ends the pipeline. The compile pass
//! guarantees the last step is an unconditional `format`, so every run ends in a reply.

use std::sync::Arc;

use minijinja::Value;
use serde_json::Map;

use crate::backend::DropletBackend;
use crate::catalogue::Catalogue;
use crate::session::{Channel, Pending};
use crate::slots::{KeyValueParser, SlotDef};
use crate::steps::{Step, StepError};
use crate::template::Templates;
use crate::trace::{DialogueState, StepTrace, TurnTrace};

#[derive(Debug)]
pub struct Pipeline {
    pub intent: String,
    pub description: String,
    pub examples: Vec<String>,
    pub fallback: bool,
    pub interrupts: bool,
    /// A call of it changes something (not GET): a follow-up never repeats it.
    pub changes_state: bool,
    /// Shown in the `intents` template variable (help and fallback replies).
    pub listed: bool,
    /// In declaration order.
    pub slots: Vec<SlotDef>,
    pub parser: KeyValueParser,
    /// Words of the intent's own description, slot prompts and names, and the mesh's generic
    /// nouns: on their own they are not a value ("register a new *service*" names no service).
    pub generic_words: crate::slots::GenericWords,
    pub steps: Vec<GuardedStep>,
    /// Every query result name, so templates can test a skipped one for `none`.
    pub result_names: Vec<String>,
    pub tests: Vec<PipelineTest>,
    /// sha256 (hex) of the pipeline's source, to tell whether a parked question still fits it.
    /// Stored with the question (in Redis too), so it must not depend on the toolchain.
    pub fingerprint: String,
    /// The fingerprint sessions stored before format 2 carry (std's `DefaultHasher`, which
    /// differs between toolchains): read for one release so questions parked before an upgrade
    /// still resume on replicas built like the old ones. Remove with session format 1.
    pub legacy_fingerprint: u64,
    /// The file it was written in, and where each example is in it (for `check`'s warnings).
    pub file: String,
    pub example_positions: Vec<crate::diagnostic::Position>,
    /// The line each step starts on in the pipeline file (coverage reports).
    pub step_lines: Vec<u32>,
}

#[derive(Debug)]
pub struct GuardedStep {
    pub when: Option<String>,
    pub step: Step,
}

/// An entry of a pipeline's `tests:` block.
#[derive(Debug, Clone)]
pub struct PipelineTest {
    /// Where the test is written in the pipeline file (the line of its `say:`).
    pub line: u32,
    pub say: String,
    pub expect_intent: String,
    pub expect_slots: Option<serde_json::Map<String, serde_json::Value>>,
    pub expect_reply_contains: Option<String>,
}

/// What a pipeline run produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Flow {
    Reply(String),
    /// A question was asked (a missing slot, or consent): `pending` is the action as the
    /// session keeps it until the answer comes.
    Ask {
        text: String,
        pending: Box<Pending>,
    },
}

/// Where a run stands in a conversation about one action: what the `extract` and `confirm`
/// steps read of the question being answered, and what they say of where the action stands.
#[derive(Debug, Clone, Default)]
pub struct TurnDialogue {
    /// The question this message answers, as the session kept it (`None`: nothing was asked, or
    /// a corrected read-back is shown afresh).
    pub waiting: Option<Pending>,
    /// The answer to a read-back this turn (`None`: no clear yes or no).
    pub consent: Option<crate::nlu::answers::YesNo>,
    /// The message was meant as an answer to the pending question but gave nothing usable.
    pub unclear: bool,
    /// The question is asked again after something else was answered.
    pub resuming: bool,
    /// Values corrected this turn, as `slot: old → new`.
    pub changed: Vec<String>,
    /// Where the action stands after this turn, when a step got as far as asking or confirming.
    pub state: Option<DialogueState>,
    /// Unusable answers left before giving up, when asking.
    pub tries_left: Option<u32>,
    /// How the message was read as an answer to the question waited on.
    pub answer: Option<crate::trace::AnswerReading>,
}

impl TurnDialogue {
    /// The slot the question being answered asked for.
    pub fn asking(&self) -> Option<&str> {
        self.waiting.as_ref()?.asking.as_deref()
    }

    /// The slot the question before it asked for and got (a correction may be about it).
    pub fn answered(&self) -> Option<&str> {
        self.waiting.as_ref()?.answered.as_deref()
    }

    /// Unusable answers to the question so far.
    pub fn tries(&self) -> u32 {
        self.waiting.as_ref().map_or(0, |w| w.tries)
    }
}

/// Everything a run reads but does not own: one configuration version and the outside world.
pub struct RunEnv<'a> {
    pub templates: &'a Arc<Templates>,
    pub catalogue: &'a Catalogue,
    /// How this configuration reads text (typos, numbers, droplet names).
    pub analyzer: &'a crate::nlu::Analyzer,
    pub backend: &'a dyn DropletBackend,
    /// Template globals computed once per configuration: `droplets`, `intents`.
    pub droplets: &'a Value,
    pub intents: &'a Value,
    pub trace_id: &'a str,
    /// The language model, when one is configured.
    pub llm: Option<&'a crate::llm::Llm>,
    /// The client listening while the turn works, if one does.
    pub events: Option<&'a crate::turn_events::TurnEvents>,
    /// How long a query waits before sending its progress line (unless the step says).
    pub progress_after: std::time::Duration,
}

/// What a run reads and writes for one turn.
pub struct TurnState {
    pub message: String,
    /// The message as the turn read it (words, typos, numbers, droplets), for the slot reader.
    pub reading: Arc<crate::nlu::Reading>,
    pub channel: Channel,
    /// Whether this turn continues a question asked in the previous one.
    pub resumed: bool,
    pub slots: Map<String, serde_json::Value>,
    /// Each step's result by its `as:` name, already a template value (see `template::json`).
    pub results: std::collections::HashMap<String, Value>,
    /// The pending action an interrupting intent just cleared, if any.
    pub cleared: Option<serde_json::Value>,
    /// The `llm` template variable: whether a model is configured and how understanding went.
    pub llm: serde_json::Value,
    /// Whether `extract` may ask the model for slots (not when it already chose the intent this
    /// turn: that call had its chance to fill them).
    pub llm_may_extract: bool,
    pub trace: TurnTrace,
    /// Render the reply for the other channel too, into `other_channel_text`.
    pub preview_other_channel: bool,
    pub other_channel_text: Option<String>,
    pub dialogue: TurnDialogue,
    /// Where the slots the run started with came from (`earlier`, `focus, turn 3`); the rest are
    /// `said` or `asked` (see `TurnTrace::slot_sources`).
    pub sources: std::collections::BTreeMap<String, String>,
    /// Every droplet call made, with its answer as it came (for the turn journal).
    pub answers: Vec<crate::session::RecordedCall>,
    /// Why the fallback answers (`understanding` in templates): the action no intent serves, the
    /// nearest thing served, the intents the message is torn between. Null otherwise.
    pub understanding: serde_json::Value,
}

impl Pipeline {
    /// The step that collects the pipeline's slots, if it has one: the first `extract`.
    pub fn first_extract(&self) -> Option<&crate::steps::ExtractStep> {
        self.steps.iter().find_map(|s| match &s.step {
            Step::Extract(extract) => Some(extract),
            _ => None,
        })
    }

    /// Whether a question parked with `fingerprint` was asked by this version of the pipeline.
    pub fn fits(&self, fingerprint: &str) -> bool {
        fingerprint == self.fingerprint
            || fingerprint.strip_prefix(crate::session::stored::LEGACY_FINGERPRINT_PREFIX)
                == Some(self.legacy_fingerprint.to_string().as_str())
    }

    pub fn slot(&self, name: &str) -> Option<&SlotDef> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// Runs the steps from `start` to a reply or a question.
    pub async fn run(&self, env: &RunEnv<'_>, state: &mut TurnState, start: usize) -> Result<Flow, StepError> {
        for (index, guarded) in self.steps.iter().enumerate().skip(start) {
            let kind = guarded.step.kind();
            if let Some(condition) = &guarded.when {
                let context = self.context(env, state, &[]);
                if !env.templates.condition(condition, &context)? {
                    state.trace.steps.push(StepTrace {
                        index: index as u32,
                        kind: kind.to_owned(),
                        ran: false,
                        note: Some(format!("skipped: `{condition}` is false")),
                    });
                    continue;
                }
            }
            let (note, flow) = match &guarded.step {
                Step::Extract(step) => match step.run(self, env, state, index).await? {
                    Some(flow @ Flow::Ask { .. }) => ("asked for missing slots".to_owned(), Some(flow)),
                    Some(flow) => ("stopped asking: too many unusable answers".to_owned(), Some(flow)),
                    None => ("all required slots filled".to_owned(), None),
                },
                Step::Confirm(step) => match step.run(self, env, state, index)? {
                    Some(flow @ Flow::Ask { .. }) => {
                        ("read the values back and asked for consent".to_owned(), Some(flow))
                    }
                    Some(flow) => ("no consent: nothing sent".to_owned(), Some(flow)),
                    None => ("consent given".to_owned(), None),
                },
                Step::Query(step) => (step.run(self, env, state).await?, None),
                Step::Reason(step) => (step.run(self, env, state).await?, None),
                Step::Format(step) => {
                    let text = step.templates.render(self, env, state, &[])?;
                    ("rendered the reply".to_owned(), Some(Flow::Reply(text)))
                }
            };
            state.trace.steps.push(StepTrace {
                index: index as u32,
                kind: kind.to_owned(),
                ran: true,
                note: Some(note),
            });
            if let Some(flow) = flow {
                return Ok(flow);
            }
        }
        Err(StepError::NoReply { intent: self.intent.clone() })
    }

    /// The action as the session keeps it while the question a step asked at `step` waits for
    /// its answer: the one place a [`Pending`] is made.
    pub fn park(
        &self,
        step: usize,
        slots: &Map<String, serde_json::Value>,
        asking: Option<String>,
        tries: u32,
        answered: Option<String>,
    ) -> Pending {
        Pending {
            intent: self.intent.clone(),
            step,
            slots: slots.clone(),
            fingerprint: self.fingerprint.clone(),
            asking,
            tries,
            answered,
            sensitive: self.sensitive_slots(),
        }
    }

    /// The intent as a language model reading its slots is told of it.
    pub fn for_model(&self) -> crate::slots::model::Intent<'_> {
        crate::slots::model::Intent {
            id: &self.intent,
            description: &self.description,
            examples: &self.examples,
            parser: &self.parser,
            slots: &self.slots,
        }
    }

    /// The names of the slots whose values must not be kept (`sensitive: true`).
    pub fn sensitive_slots(&self) -> Vec<String> {
        self.slots.iter().filter(|s| s.sensitive).map(|s| s.name.clone()).collect()
    }

    /// The template context: the same names for every template, condition and templated value
    /// (see `template::CONTEXT_NAMES`), plus `extra` (e.g. `missing` in ask templates).
    pub fn context(&self, env: &RunEnv<'_>, state: &TurnState, extra: &[(&str, Value)]) -> Value {
        // values are serialised from where they are (no copy of a droplet's answer first)
        let slots: std::collections::BTreeMap<&str, &serde_json::Value> = self
            .slots
            .iter()
            .map(|slot| (slot.name.as_str(), state.slots.get(&slot.name).unwrap_or(&serde_json::Value::Null)))
            .collect();
        let mut map: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
        for name in &self.result_names {
            map.insert(name.clone(), state.results.get(name).cloned().unwrap_or(Value::from(())));
        }
        map.insert("message".into(), Value::from(state.message.clone()));
        map.insert("channel".into(), Value::from(state.channel.as_str()));
        map.insert(
            "intent".into(),
            crate::template::to_value(serde_json::json!({
                "id": self.intent,
                "description": self.description,
                "example": self.examples.first(),
            })),
        );
        map.insert("slots".into(), crate::template::to_value(&slots));
        map.insert("droplets".into(), env.droplets.clone());
        map.insert("intents".into(), env.intents.clone());
        map.insert(
            "pending".into(),
            crate::template::to_value(state.cleared.as_ref().unwrap_or(&serde_json::Value::Null)),
        );
        map.insert("backend".into(), Value::from(env.backend.name()));
        map.insert("llm".into(), crate::template::to_value(&state.llm));
        map.insert("understanding".into(), crate::template::to_value(&state.understanding));
        for (name, value) in extra {
            map.insert((*name).to_owned(), value.clone());
        }
        Value::from(map)
    }
}
