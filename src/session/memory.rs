//! Sessions in this process's memory: the default store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::{MissedMessage, RecordedTurn, Session, SessionLease, SessionLimits, SessionStore, StoreError};

struct Slot {
    session: Option<Session>,
    last_active: Instant,
}

type SlotHandle = Arc<tokio::sync::Mutex<Slot>>;

/// Sessions in this process's memory.
pub struct MemoryStore {
    slots: Mutex<HashMap<String, SlotHandle>>,
    limits: SessionLimits,
    /// Messages not understood well, newest first.
    missed: Mutex<VecDeque<MissedMessage>>,
    /// Answered turns, oldest first.
    recorded: Mutex<VecDeque<RecordedTurn>>,
}

impl MemoryStore {
    /// Sessions held, live or expired but not yet swept.
    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or_else(|poisoned| poisoned.into_inner().len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn new(limits: SessionLimits) -> Self {
        MemoryStore {
            slots: Mutex::new(HashMap::new()),
            limits,
            missed: Mutex::new(VecDeque::new()),
            recorded: Mutex::new(VecDeque::new()),
        }
    }

    fn handle(&self, id: &str) -> SlotHandle {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !slots.contains_key(id) && slots.len() >= self.limits.max_sessions.max(1) {
            self.make_room(&mut slots);
        }
        slots
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Slot { session: None, last_active: Instant::now() })))
            .clone()
    }

    /// At the session cap: forgets the expired ones, and if that is not enough, the idle-longest
    /// hundredth of those no turn is using (one scan makes room for many new sessions).
    fn make_room(&self, slots: &mut HashMap<String, SlotHandle>) {
        let timeout = self.limits.idle_timeout;
        let mut idle: Vec<(String, Instant)> = Vec::new();
        slots.retain(|id, handle| {
            if Arc::strong_count(handle) > 1 {
                return true;
            }
            match handle.try_lock() {
                Ok(slot) if slot.session.is_none() || slot.last_active.elapsed() >= timeout => false,
                Ok(slot) => {
                    idle.push((id.clone(), slot.last_active));
                    true
                }
                Err(_) => true,
            }
        });
        let cap = self.limits.max_sessions.max(1);
        if slots.len() < cap {
            return;
        }
        let forget = (slots.len() + 1 - cap).max(cap / 100).min(idle.len());
        idle.sort_by_key(|(_, last_active)| *last_active);
        for (id, _) in idle.into_iter().take(forget) {
            slots.remove(&id);
        }
        metrics::counter!("sessions_evicted_total").increment(forget as u64);
        tracing::warn!(
            forgotten = forget,
            cap,
            "the session cap was reached: the conversations idle longest were forgotten"
        );
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

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn count(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        let count = self.len();
        Box::pin(async move { Ok(count) })
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

    fn note_missed(&self, missed: MissedMessage) -> BoxFuture<'_, Result<(), StoreError>> {
        let limits = self.limits.missed;
        let mut list = self.missed_list();
        list.push_front(missed);
        list.truncate(limits.kept);
        while list.back().is_some_and(|m| !m.is_recent(limits.max_age)) {
            list.pop_back();
        }
        Box::pin(async { Ok(()) })
    }

    fn record_turn(&self, turn: RecordedTurn) -> BoxFuture<'_, Result<(), StoreError>> {
        let kept = self.limits.recorded_turns;
        let mut list = self.recorded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        list.push_back(turn);
        while list.len() > kept {
            list.pop_front();
        }
        Box::pin(async { Ok(()) })
    }

    fn recorded(&self) -> BoxFuture<'_, Result<Vec<RecordedTurn>, StoreError>> {
        let turns: Vec<RecordedTurn> =
            self.recorded.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect();
        Box::pin(async move { Ok(turns) })
    }

    fn missed(&self) -> BoxFuture<'_, Result<Vec<MissedMessage>, StoreError>> {
        let max_age = self.limits.missed.max_age;
        let recent: Vec<MissedMessage> = self.missed_list().iter().filter(|m| m.is_recent(max_age)).cloned().collect();
        Box::pin(async move { Ok(recent) })
    }
}

impl MemoryStore {
    fn missed_list(&self) -> std::sync::MutexGuard<'_, VecDeque<MissedMessage>> {
        self.missed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

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
    use crate::session::{Message, Role};

    fn message(text: &str) -> Message {
        Message { role: Role::User, text: text.into(), intent: None, at: "".into() }
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
        assert_eq!(session.history.front().map(|m| m.text.as_ref()), Some("5"));
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_cap_the_conversations_idle_longest_are_forgotten() {
        let store = MemoryStore::new(SessionLimits { max_sessions: 3, ..SessionLimits::default() });
        for id in ["a", "b", "c"] {
            let mut lease = store.lease(id).await.expect("lease");
            lease.session().turns = 1;
            lease.commit().await.expect("commit");
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // "a" speaks again: "b" is now the one idle longest
        let mut lease = store.lease("a").await.expect("lease");
        lease.session().turns = 2;
        lease.commit().await.expect("commit");
        tokio::time::advance(Duration::from_secs(1)).await;
        store.lease("d").await.expect("lease").commit().await.expect("commit");
        assert_eq!(store.len(), 3, "one forgotten to make room");
        assert_eq!(store.lease("a").await.expect("lease").session().turns, 2, "the one just heard from stays");
        assert_eq!(store.lease("b").await.expect("lease").session().turns, 0, "the one idle longest went");
        for id in ["e", "f", "g", "h"] {
            store.lease(id).await.expect("lease").commit().await.expect("commit");
            assert!(store.len() <= 3, "{} sessions held", store.len());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire() {
        let limits =
            SessionLimits { max_history: 10, idle_timeout: Duration::from_secs(60), ..SessionLimits::default() };
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
