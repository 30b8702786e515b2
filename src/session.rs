//! Conversation state between turns, behind the [`SessionStore`] seam.
//!
//! A turn *leases* its session: the store hands out a working copy and holds every other turn of
//! the same session until the lease is committed or dropped. So two concurrent turns on one
//! session run one after the other and neither loses the other's messages, and a turn that is
//! rejected or fails before commit changes nothing. [`MemoryStore`] is the default; a shared
//! store (Redis) implements the same trait for several replicas.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub text: String,
    /// The intent that handled the turn (assistant messages).
    pub intent: Option<String>,
    /// RFC 3339 UTC.
    pub at: String,
}

/// An action waiting for the user to supply missing slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub intent: String,
    /// Index of the `extract` step to resume at.
    pub step: usize,
    /// Slots filled so far.
    pub slots: serde_json::Map<String, serde_json::Value>,
    /// The pipeline's fingerprint when the question was asked: after a reload that changed the
    /// pipeline, the answer no longer fits and the action is dropped.
    #[serde(default)]
    pub fingerprint: u64,
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

    /// Sessions currently stored (expired ones may still count until swept).
    fn len(&self) -> usize;

    /// The history and idle limits this store keeps.
    fn limits(&self) -> SessionLimits;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live (not expired) session, with how long each has been idle. Waits for turns in
    /// flight, so what it returns is committed state.
    fn list(&self) -> BoxFuture<'_, Result<Vec<(Session, Duration)>, StoreError>>;

    /// One live session by its exact id.
    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<(Session, Duration)>, StoreError>>;

    /// Forgets one session (after any turn in flight on it). Returns whether it existed.
    fn delete(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Forgets every session. Returns how many there were.
    fn clear(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
}

/// Limits shared by every store.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Messages kept per session (user and assistant both count).
    pub max_history: usize,
    /// Idle time after which a session is forgotten.
    pub idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { max_history: 10, idle_timeout: Duration::from_secs(30 * 60) }
    }
}

struct Slot {
    session: Option<Session>,
    last_active: Instant,
}

type SlotHandle = Arc<tokio::sync::Mutex<Slot>>;

/// Sessions in this process's memory.
pub struct MemoryStore {
    slots: Mutex<HashMap<String, SlotHandle>>,
    limits: SessionLimits,
}

impl MemoryStore {
    pub fn new(limits: SessionLimits) -> Self {
        MemoryStore { slots: Mutex::new(HashMap::new()), limits }
    }

    fn handle(&self, id: &str) -> SlotHandle {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot { session: None, last_active: Instant::now() })))
            .clone()
    }

    /// Forgets idle sessions and never-committed slots that no turn is using. Run periodically.
    pub fn sweep(&self) -> usize {
        let timeout = self.limits.idle_timeout;
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = slots.len();
        slots.retain(|_, handle| {
            // Another owner means a turn took the handle and is about to lock it: keep it, or
            // that turn would commit into a slot no longer in the map.
            if Arc::strong_count(handle) > 1 {
                return true;
            }
            match handle.try_lock() {
                Ok(slot) => slot.session.is_some() && slot.last_active.elapsed() < timeout,
                Err(_) => true,
            }
        });
        before - slots.len()
    }

    /// Runs [`MemoryStore::sweep`] every `every` until the store is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                match weak.upgrade() {
                    Some(store) => {
                        let removed = store.sweep();
                        if removed > 0 {
                            tracing::debug!(removed, "expired sessions swept");
                        }
                    }
                    None => break,
                }
            }
        })
    }
}

struct MemoryLease {
    guard: tokio::sync::OwnedMutexGuard<Slot>,
    working: Session,
}

impl SessionLease for MemoryLease {
    fn session(&mut self) -> &mut Session {
        &mut self.working
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        let MemoryLease { mut guard, working } = *self;
        guard.session = Some(working);
        guard.last_active = Instant::now();
        Box::pin(async { Ok(()) })
    }
}

impl SessionStore for MemoryStore {
    fn lease(&self, id: &str) -> BoxFuture<'_, Result<Box<dyn SessionLease>, StoreError>> {
        let handle = self.handle(id);
        let id = id.to_owned();
        let timeout = self.limits.idle_timeout;
        Box::pin(async move {
            let guard = handle.lock_owned().await;
            let working = match &guard.session {
                Some(session) if guard.last_active.elapsed() < timeout => session.clone(),
                _ => Session::new(&id),
            };
            Ok(Box::new(MemoryLease { guard, working }) as Box<dyn SessionLease>)
        })
    }

    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or_else(|poisoned| poisoned.into_inner().len())
    }

    fn limits(&self) -> SessionLimits {
        self.limits
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<(Session, Duration)>, StoreError>> {
        let handles: Vec<SlotHandle> = self.snapshot().into_iter().map(|(_, h)| h).collect();
        let timeout = self.limits.idle_timeout;
        Box::pin(async move {
            let mut live = Vec::new();
            for handle in handles {
                let slot = handle.lock().await;
                if let Some(session) = slot.session.as_ref().filter(|_| slot.last_active.elapsed() < timeout) {
                    live.push((session.clone(), slot.last_active.elapsed()));
                }
            }
            live.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
            Ok(live)
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<(Session, Duration)>, StoreError>> {
        let handle = self.existing(id);
        let timeout = self.limits.idle_timeout;
        Box::pin(async move {
            let Some(handle) = handle else { return Ok(None) };
            let slot = handle.lock().await;
            Ok(slot
                .session
                .as_ref()
                .filter(|_| slot.last_active.elapsed() < timeout)
                .map(|session| (session.clone(), slot.last_active.elapsed())))
        })
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let handle = self.existing(id);
        let timeout = self.limits.idle_timeout;
        let id = id.to_owned();
        Box::pin(async move {
            let Some(handle) = handle else { return Ok(false) };
            let mut slot = handle.lock().await;
            let existed = slot.session.take().is_some() && slot.last_active.elapsed() < timeout;
            drop(slot);
            self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&id);
            Ok(existed)
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let ids: Vec<String> = self.snapshot().into_iter().map(|(id, _)| id).collect();
            let mut deleted = 0;
            for id in ids {
                if self.delete(&id).await? {
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
    }
}

impl MemoryStore {
    /// The slot handles as they are now; locking them happens after the map's lock is released.
    fn snapshot(&self) -> Vec<(String, SlotHandle)> {
        let slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.iter().map(|(id, handle)| (id.clone(), handle.clone())).collect()
    }

    fn existing(&self, id: &str) -> Option<SlotHandle> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Message {
        Message { role: Role::User, text: text.into(), intent: None, at: String::new() }
    }

    #[tokio::test]
    async fn uncommitted_leases_change_nothing() {
        let store = MemoryStore::new(SessionLimits::default());
        let mut lease = store.lease("s").await.expect("lease");
        lease.session().push(message("lost"), 10);
        drop(lease);
        let mut again = store.lease("s").await.expect("lease");
        assert!(again.session().history.is_empty());
    }

    #[tokio::test]
    async fn history_is_capped() {
        let mut session = Session::new("s");
        for i in 0..15 {
            session.push(message(&i.to_string()), 10);
        }
        assert_eq!(session.history.len(), 10);
        assert_eq!(session.history.front().map(|m| m.text.as_str()), Some("5"));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire() {
        let limits = SessionLimits { max_history: 10, idle_timeout: Duration::from_secs(60) };
        let store = MemoryStore::new(limits);
        let mut lease = store.lease("s").await.expect("lease");
        lease.session().push(message("hi"), 10);
        lease.commit().await.expect("commit");

        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(store.lease("s").await.expect("lease").session().history.len(), 1, "still fresh");

        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.lease("s").await.expect("lease").session().history.is_empty(), "expired");
        assert_eq!(store.sweep(), 1);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn concurrent_turns_on_one_session_keep_every_message() {
        let store = Arc::new(MemoryStore::new(SessionLimits { max_history: 1000, ..SessionLimits::default() }));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut lease = store.lease("shared").await.expect("lease");
                tokio::task::yield_now().await; // let other turns pile up on the lock
                lease.session().push(message(&i.to_string()), 1000);
                lease.commit().await.expect("commit");
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(store.lease("shared").await.expect("lease").session().history.len(), 50);
    }
}
