//! The per-turn trace: why a reply came out the way it did.
//!
//! Collected by the engine on every turn (it is cheap) and returned to callers that ask for it
//! (`trace: true`). The same types are the OpenAPI schema of that field.

use poem_openapi::Object;
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Object)]
pub struct TurnTrace {
    /// Which intent answered, and why.
    pub intent: IntentTrace,
    /// Slot values known at the end of the turn.
    pub slots: serde_json::Value,
    /// Where each of those values came from: `said` (in this message), `asked` (the answer to the
    /// question for it), `earlier` (given in an earlier turn of the same action) or `focus, turn
    /// N` (what the conversation was about: "is it up?" after "status of the deck").
    pub slot_sources: std::collections::BTreeMap<String, String>,
    /// Every step of the pipeline that was considered, in order.
    pub steps: Vec<StepTrace>,
    /// Every droplet call made during the turn.
    pub calls: Vec<CallTrace>,
    /// Every language-model call made during the turn (none when rules decided everything).
    pub llm: Vec<LlmCallTrace>,
    /// Further intents answered in the same reply, when one message asked for several things.
    pub joined: Vec<IntentTrace>,
    /// Templates rendered, in order.
    pub templates: Vec<String>,
    /// Where droplet data came from (e.g. `fallback-data` for the bundled samples).
    pub backend: String,
    /// The configuration version that answered (it changes on every successful reload).
    pub config_version: u64,
    /// Anything else worth knowing (an abandoned pending action, a render failure).
    pub notes: Vec<String>,
    /// Where the conversation stands after this turn, when an action is under way.
    pub dialogue: Option<DialogueTrace>,
}

impl TurnTrace {
    /// The state-changing calls this turn sent: any but a GET that reached its droplet (an
    /// answer in an unexpected form still means the droplet got the command).
    pub fn commands_sent(&self) -> impl Iterator<Item = &CallTrace> {
        self.calls.iter().filter(|c| {
            !c.method.eq_ignore_ascii_case("GET")
                && (c.outcome != crate::backend::CallStatus::Failed || c.unexpected.is_some())
        })
    }
}

/// The state of an action that collects details and asks for consent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Object)]
pub struct DialogueTrace {
    /// The intent whose action it is.
    pub intent: String,
    /// Where the action stands after this turn.
    pub state: DialogueState,
    /// The slot being asked for, while asking.
    pub asking: Option<String>,
    /// Unusable answers left before the action stops.
    pub tries_left: Option<u32>,
    /// Values the user corrected this turn, as `slot: old → new`.
    pub changed: Vec<String>,
    /// How the message was read as an answer to the question the action waited on.
    pub answer: Option<AnswerReading>,
}

crate::api_state! {
    /// How a message was read as an answer to the question an action waited on.
    pub enum AnswerReading {
        /// A value for the detail asked about.
        Value,
        /// Yes to the read-back: the action goes ahead.
        Consent,
        /// No (or stop) to the read-back: nothing is sent.
        Refusal,
        /// A value already given was changed ("no, the id is 78"); read back again.
        Correction,
        /// A request of its own, answered while the action waits (or, said with a no, instead of it).
        AnotherRequest,
        /// "wait", "hold on": the action still waits and is read back again.
        Wait,
        /// A yes together with a no, a wait or a stop: asked again.
        Contradiction,
        /// Nothing usable: asked again.
        Unclear,
    }
}

crate::api_state! {
    /// Where an action that collects details and asks for consent stands after a turn (each
    /// state has this one name in the steps, the trace and the transcripts).
    #[derive(Default)]
    pub enum DialogueState {
        /// A detail was asked for; the action waits for it.
        #[default]
        Asking,
        /// The values were read back; the action waits for a yes or a no.
        Confirming,
        /// The user said yes: the steps after the read-back ran.
        Confirmed,
        /// The user said no: nothing was sent.
        Declined,
        /// Too many unusable answers: the action was dropped, nothing was sent.
        GaveUp,
        /// Something else was answered; the action still waits and its question was asked again.
        Kept,
    }
}

crate::api_state! {
    /// How a turn's intent was chosen.
    #[derive(Default)]
    pub enum IntentSource {
        /// A pattern or the examples matched.
        #[default]
        Rules,
        /// The language model chose among the declared intents.
        Llm,
        /// Nothing matched.
        Fallback,
        /// Continuing a question asked in the previous turn.
        Resumed,
        /// A follow-up that names only a new value ("and the deck?"): the last request again.
        FollowUp,
        /// E.g. cancel while something was pending.
        Interrupt,
        /// A retried request id: the stored reply, nothing ran again.
        Replayed,
    }
}

crate::api_state! {
    /// What became of asking the language model to understand a message (`llm.status` in
    /// templates).
    pub enum ModelStatus {
        /// No model is configured.
        Off,
        /// The rules decided; the model was not asked.
        NotNeeded,
        /// The model chose the intent.
        Understood,
        /// The model was not sure enough (it may have asked back).
        Unsure,
        /// The model's answer was rejected.
        Invalid,
        /// The model could not be asked.
        Unavailable,
    }
}

crate::api_state! {
    /// Whether a model call brought an answer back.
    pub enum ModelCallOutcome {
        Ok,
        Failed,
    }
}

impl ModelCallOutcome {
    pub fn of<T, E>(result: &Result<T, E>) -> ModelCallOutcome {
        if result.is_ok() {
            ModelCallOutcome::Ok
        } else {
            ModelCallOutcome::Failed
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Object)]
pub struct IntentTrace {
    /// The intent that handled the turn.
    pub id: String,
    /// How it was chosen.
    pub source: IntentSource,
    /// Score of the winning rule, or the model's confidence (0 for resumed and fallback turns).
    pub score: f64,
    /// The rule, example or keywords that decided.
    pub reason: String,
    /// The next best intent, if any scored.
    pub runner_up: Option<CandidateTrace>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct CandidateTrace {
    /// The intent.
    pub id: String,
    /// Its score (a matching pattern scores 1).
    pub score: f64,
    /// The rule, example or keywords behind the score.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct StepTrace {
    /// Position in the pipeline's `steps`, from 0.
    pub index: u32,
    /// `extract`, `query` or `format`.
    pub kind: String,
    /// False when its `when` condition was false.
    pub ran: bool,
    /// What the step did, in a few words.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct CallTrace {
    /// The droplet's number.
    pub droplet_id: i64,
    /// The droplet's name.
    pub droplet: String,
    /// The endpoint path, as in the catalogue.
    pub endpoint: String,
    /// HTTP method.
    pub method: String,
    /// How the call travelled: `fallback-data` (bundled samples), `orchestrator_send`,
    /// `orchestrator_native`, `proxy` or `direct`; empty when no call was made.
    pub via: String,
    /// Time until the outcome was known.
    pub duration_ms: u64,
    pub outcome: crate::backend::CallStatus,
    /// The failure's plain-language message, when it failed.
    pub error: Option<String>,
    /// Where the answer broke its endpoint's declared shape (`at /status: the field status is
    /// missing`), when that is why it failed.
    pub unexpected: Option<String>,
}

/// How a streamed answer came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Object)]
pub struct StreamTrace {
    /// Time from the call's start to the first piece of text handed on (none: no text came).
    pub first_piece_ms: Option<u64>,
    /// Pieces of text handed on.
    pub pieces: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct LlmCallTrace {
    /// `classify`, `extract` or `reason`.
    pub purpose: String,
    /// `gemini` or `openai`.
    pub provider: String,
    /// The model that answered (as the provider named it), or the configured one on failure.
    pub model: String,
    /// Time until the answer or the failure, retries included.
    pub latency_ms: u64,
    /// HTTP attempts (more than one after a 429 or 503).
    pub attempts: u32,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub outcome: ModelCallOutcome,
    /// The failure, in plain words.
    pub error: Option<String>,
    /// Present when the answer was streamed to the client while it was written.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamTrace>,
    /// The model's answer as it came: kept for the turn journal (replays, recordings), never
    /// shown in the trace.
    #[oai(skip)]
    #[serde(skip)]
    pub answer: Option<String>,
}

#[cfg(test)]
mod state_names {
    use poem_openapi::types::ToJSON;
    use strum::IntoEnumIterator;

    use super::{DialogueState, IntentSource, ModelCallOutcome, ModelStatus};
    use crate::backend::CallStatus;

    /// The API documents these enums (poem-openapi names them) and everything else uses their
    /// strum names: the two must agree, variant by variant, and serde must write the same.
    fn agree<T: IntoEnumIterator + ToJSON + serde::Serialize + Copy + Into<&'static str>>() {
        for state in T::iter() {
            let name: &'static str = state.into();
            assert_eq!(state.to_json(), Some(serde_json::json!(name)));
            assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::json!(name)));
        }
    }

    #[test]
    fn api_names_are_the_state_names() {
        agree::<IntentSource>();
        agree::<ModelStatus>();
        agree::<CallStatus>();
        agree::<ModelCallOutcome>();
        agree::<DialogueState>();
        agree::<crate::session::MissedReason>();
    }
}
