//! Conversation state between turns, behind the [`SessionStore`] seam.
//!
//! A turn *leases* its session: the store hands out a working copy and holds every other turn of
//! the same session until the lease is committed or dropped. So two concurrent turns on one
//! session run one after the other and neither loses the other's messages, and a turn that is
//! rejected or fails before commit changes nothing. [`MemoryStore`] is the default;
//! [`RedisStore`] keeps the same contract across replicas (`REDIS_URL`).

mod journal;
mod memory;
mod missed;
mod owner;
mod redis;
pub mod stored;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use self::journal::{RecordedCall, RecordedModelAnswer, RecordedTurn};
pub use self::memory::MemoryStore;
pub use self::missed::{group as group_missed, MissedGroup, MissedLimits, MissedMessage, MissedReason};
pub use self::owner::{Entry, Owner};
pub use self::redis::RedisStore;

/// Which kind of client a turn came from; it selects the reply template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Chat,
    Voice,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Chat => "chat",
            Channel::Voice => "voice",
        }
    }

    pub fn other(self) -> Channel {
        match self {
            Channel::Chat => Channel::Voice,
            Channel::Voice => Channel::Chat,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One message of the history. The texts are shared (`Arc<str>`): every turn works on a copy of
/// its session (so a turn that fails changes nothing), and copying the history must not copy
/// every reply in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub text: Arc<str>,
    /// The intent that handled the turn (assistant messages).
    pub intent: Option<Arc<str>>,
    /// RFC 3339 UTC.
    pub at: Arc<str>,
}

/// An action waiting for the user: a missing slot (at an `extract` step) or consent (at a
/// `confirm` step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub intent: String,
    /// Index of the `extract` or `confirm` step to resume at.
    pub step: usize,
    /// Slots filled so far.
    pub slots: serde_json::Map<String, serde_json::Value>,
    /// The pipeline's fingerprint when the question was asked: after a reload that changed the
    /// pipeline, the answer no longer fits and the action is dropped. Format 1 stored a number
    /// here; [`stored`] reads it as `v1:<number>`.
    #[serde(default)]
    pub fingerprint: String,
    /// The slot the question asked for (none while waiting for consent).
    #[serde(default)]
    pub asking: Option<String>,
    /// Unusable answers to this question so far.
    #[serde(default)]
    pub tries: u32,
    /// The slot the previous question asked for and got ("oops, payments" corrects it).
    #[serde(default)]
    pub answered: Option<String>,
    /// The slots among `slots` whose values are sensitive: the admin view masks them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub channel: Channel,
    /// Most recent last; at most the store's history limit.
    pub history: VecDeque<Message>,
    pub pending: Option<Pending>,
    /// Caller-supplied metadata, merged turn by turn.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The last replies given to turns that carried a request id (`Idempotency-Key`,
    /// `request_id`), most recent last, at most [`ANSWERED_KEPT`]: a retried turn gets its
    /// reply again instead of running twice.
    #[serde(default)]
    pub answered: VecDeque<AnsweredRequest>,
    /// How many messages the user has sent in this session (the focus counts its age in them).
    #[serde(default)]
    pub turns: u64,
    /// What the conversation is about, for follow-ups.
    #[serde(default, skip_serializing_if = "Focus::is_empty")]
    pub focus: Focus,
}

/// What the conversation is about, for follow-ups ("and the deck?", "is it up?"): the last
/// request answered and the values the user named, each with the turn it came from. Sensitive
/// values never enter it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Focus {
    /// The last request answered that takes a value a follow-up can change.
    #[serde(default)]
    pub intent: Option<String>,
    /// The user's turn that request came from.
    #[serde(default)]
    pub intent_turn: u64,
    /// The values named, most recent first, one per slot name.
    #[serde(default)]
    pub values: Vec<FocusValue>,
    /// The intents the last message was torn between, when the reply asked which was meant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<Choice>,
}

impl Focus {
    pub fn is_empty(&self) -> bool {
        self.intent.is_none() && self.values.is_empty() && self.choice.is_none()
    }
}

/// "Did you mean to remove a service or to list the Registry?": the message that was torn and
/// the intents offered, for the answer that picks one ("the first", "remove it").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The intents offered, in the order offered.
    pub intents: Vec<String>,
    /// The message that was torn between them, to run with the one picked.
    pub text: String,
    /// The user's turn it was said in.
    pub turn: u64,
}

/// A value the user named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FocusValue {
    /// The slot it filled.
    pub slot: String,
    /// The slot's type (`droplet`, `integer`, …): a follow-up's slot of another name but the
    /// same type may take a droplet.
    pub kind: String,
    pub value: serde_json::Value,
    /// The user's turn it was named in.
    pub turn: u64,
}

/// Request ids remembered per session.
pub const ANSWERED_KEPT: usize = 16;

/// A reply kept under the request id of the turn that got it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnsweredRequest {
    pub request_id: String,
    /// The message the request carried: a reused id with another message is refused.
    #[serde(default)]
    pub said: String,
    pub text: String,
    pub intent: String,
    pub trace_id: String,
    pub timestamp: String,
    #[serde(default)]
    pub other_channel_text: Option<String>,
    /// sha256 of the message as it arrived (`said` may be masked): a retry must carry the same.
    #[serde(default)]
    pub said_digest: Option<String>,
}

impl AnsweredRequest {
    /// Whether `text` is the message this request carried.
    pub fn carried(&self, text: &str) -> bool {
        match &self.said_digest {
            Some(digest) => *digest == message_digest(text),
            None => self.said == text,
        }
    }
}

/// The sha256 (hex) of a message, to recognise a retry without keeping its words.
pub fn message_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Session {
    pub fn new(id: &str) -> Self {
        Session { id: id.to_owned(), ..Session::default() }
    }

    /// Appends a message, dropping the oldest beyond `limit`.
    pub fn push(&mut self, message: Message, limit: usize) {
        self.history.push_back(message);
        while self.history.len() > limit.max(1) {
            self.history.pop_front();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Exclusive access to one session for the length of a turn.
pub trait SessionLease: Send {
    fn session(&mut self) -> &mut Session;
    /// Stores the working copy. Dropping the lease without committing discards it.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>>;
}

pub trait SessionStore: Send + Sync {
    /// Waits until no other turn holds the session, then leases it. A missing or expired
    /// session is leased as a new, empty one with this id.
    fn lease(&self, id: &str) -> BoxFuture<'_, Result<Box<dyn SessionLease>, StoreError>>;

    /// The history and idle limits this store keeps.
    fn limits(&self) -> SessionLimits;

    /// Every live (not expired) session, with how long each has been idle. Waits for turns in
    /// flight, so what it returns is committed state.
    fn list(&self) -> BoxFuture<'_, Result<Vec<(Session, Duration)>, StoreError>>;

    /// One live session by its exact id.
    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<(Session, Duration)>, StoreError>>;

    /// Forgets one session (after any turn in flight on it). Returns whether it existed.
    fn delete(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Forgets every session. Returns how many there were.
    fn clear(&self) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Whether the store answers right now (for `/health`, checked in the background).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// `memory` or `redis`, for `/dependencies`.
    fn kind(&self) -> &'static str;

    /// How many sessions the store holds, cheaply (for the `sessions_active` gauge); the memory
    /// store may include expired ones its sweeper has not removed yet.
    fn count(&self) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Keeps a message that was not understood well (the oldest go beyond the limit).
    fn note_missed(&self, missed: MissedMessage) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The missed messages kept and still within their age limit, newest first.
    fn missed(&self) -> BoxFuture<'_, Result<Vec<MissedMessage>, StoreError>>;

    /// Keeps a turn with its droplet answers (the oldest go beyond `recorded_turns`).
    fn record_turn(&self, turn: RecordedTurn) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The turns kept, oldest first.
    fn recorded(&self) -> BoxFuture<'_, Result<Vec<RecordedTurn>, StoreError>>;
}

/// Limits shared by every store.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Messages kept per session (user and assistant both count).
    pub max_history: usize,
    /// Idle time after which a session is forgotten.
    pub idle_timeout: Duration,
    /// How many messages that were not understood well are kept, and how long.
    pub missed: MissedLimits,
    /// How many answered turns are kept with their droplet answers (replays, recordings).
    pub recorded_turns: usize,
    /// How many conversations the in-process store holds at once; past it, the ones idle longest
    /// are forgotten first (Redis bounds its own memory with `maxmemory`).
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_history: 10,
            idle_timeout: Duration::from_secs(30 * 60),
            missed: MissedLimits::default(),
            recorded_turns: 500,
            max_sessions: 100_000,
        }
    }
}
