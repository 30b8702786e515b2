//! The last turns the server answered, with the droplet answers they used.
//!
//! Kept (bounded by `RECORDED_TURNS`, sensitive values masked) so a steward can see what a
//! configuration change would do to real traffic before it goes live — a reload replays them on
//! the candidate without calling any droplet (`replay`) — and so a conversation can become a
//! test fixture that pins those answers (`chat-orchestrator record`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One turn as it was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct RecordedTurn {
    /// The conversation, as its client named it.
    pub session: String,
    /// What the user said (sensitive values masked).
    pub said: String,
    /// `chat` or `voice`.
    pub channel: String,
    /// The intent that answered.
    pub intent: String,
    /// The reply (sensitive values masked).
    pub reply: String,
    /// Every droplet call the turn made, in order, with its answer.
    pub calls: Vec<RecordedCall>,
    /// Every language-model call the turn made, in order, with its answer.
    #[serde(default)]
    pub model: Vec<RecordedModelAnswer>,
    /// RFC 3339 UTC.
    pub at: String,
    /// The configuration version that answered.
    pub config_version: u64,
}

/// One language-model call and what it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct RecordedModelAnswer {
    /// `classify`, `extract` or `reason`.
    pub purpose: String,
    /// The answer's text (sensitive values masked); none when the call failed.
    pub answer: Option<String>,
}

/// One droplet call and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct RecordedCall {
    pub droplet: i64,
    pub endpoint: String,
    pub method: String,
    pub outcome: crate::backend::CallStatus,
    /// The answer, when it was data (as the droplet sent it, before any shape check).
    pub data: Option<Value>,
    /// Why it failed (`timeout`, `unreachable`, …), when it did.
    pub kind: Option<String>,
    /// The failure's sentence, when it failed.
    pub message: Option<String>,
}
