//! Sessions in Redis, shared by every replica (`REDIS_URL`).
//!
//! The lease contract is kept across processes with a per-session lock: `SET lock token NX PX`
//! takes it (a turn on another replica waits, polling with backoff), and the commit is one Lua
//! script that writes the session only if this lease still holds the lock, then releases it.
//! So two turns of one session arriving on two replicas run one after the other and neither
//! loses a message; a replica killed mid-turn leaves a lock that expires after [`LOCK_TTL`], and
//! its uncommitted turn changes nothing. Idle expiry is the session key's own TTL.

use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{MissedMessage, RecordedTurn, Session, SessionLease, SessionLimits, SessionStore, StoreError};

/// How long a lease may live: longer than any turn (droplet calls time out well before).
pub const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a turn waits for another turn on the same session before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(35);

/// Write the session and release the lock, only while the lock is still ours.
const COMMIT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// Release the lock only if it is still ours (it may have expired and been taken by another).
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

pub struct RedisStore {
    connection: ConnectionManager,
    limits: SessionLimits,
    /// Key prefix, so several deployments (or tests) can share one Redis.
    prefix: String,
}

impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> Self {
        StoreError::Unavailable(format!("redis: {error}"))
    }
}

impl RedisStore {
    /// Connects lazily: start-up never waits for Redis, and a Redis that comes back later is
    /// used again without a restart.
    pub fn connect(url: &str, prefix: &str, limits: SessionLimits) -> Result<RedisStore, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Unavailable(format!("REDIS_URL is not usable: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let connection = client.get_connection_manager_lazy(config)?;
        Ok(RedisStore { connection, limits, prefix: prefix.to_owned() })
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}session:{id}", self.prefix)
    }

    /// Puts `entry` first in the list at `key`, keeping `kept` entries; the list expires
    /// `MISSED_MESSAGES_DAYS` after its last write (neither list is kept longer).
    async fn push_bounded(&self, key: &str, entry: &impl serde::Serialize, kept: usize) -> Result<(), StoreError> {
        let entry = serde_json::to_string(entry)
            .map_err(|e| StoreError::Unavailable(format!("an entry for {key} could not be written: {e}")))?;
        let mut connection = self.connection.clone();
        redis::pipe()
            .lpush(key, entry)
            .ltrim(key, 0, kept.saturating_sub(1) as isize)
            .pexpire(key, self.limits.missed.max_age.as_millis().min(i64::MAX as u128) as i64)
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// The first `kept` entries of the list at `key`, newest first; an entry another version
    /// wrote and this one cannot read is skipped, not fatal.
    async fn read_list<T: serde::de::DeserializeOwned>(&self, key: &str, kept: usize) -> Result<Vec<T>, StoreError> {
        let mut connection = self.connection.clone();
        let entries: Vec<String> = connection.lrange(key, 0, kept.saturating_sub(1) as isize).await?;
        Ok(entries.iter().filter_map(|e| serde_json::from_str(e).ok()).collect())
    }

    /// The list of answered turns, newest first, shared by every replica.
    fn recorded_key(&self) -> String {
        format!("{}recorded", self.prefix)
    }

    /// The list of missed messages, newest first, shared by every replica.
    fn missed_key(&self) -> String {
        format!("{}missed", self.prefix)
    }

    fn lock_key(&self, id: &str) -> String {
        format!("{}lock:{id}", self.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        self.limits.idle_timeout.as_millis().max(1) as u64
    }

    /// Takes the session's lock, waiting for a turn elsewhere to finish. Returns the token.
    async fn lock(&self, id: &str) -> Result<String, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let key = self.lock_key(id);
        let mut connection = self.connection.clone();
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_TTL.as_millis() as u64)
                .query_async(&mut connection)
                .await?;
            if taken.is_some() {
                return Ok(token);
            }
            if started.elapsed() >= LOCK_WAIT {
                return Err(StoreError::Unavailable(format!("session {id} stayed busy for {} s", LOCK_WAIT.as_secs())));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn release(connection: &mut ConnectionManager, lock_key: &str, token: &str) -> Result<(), StoreError> {
        let _: i64 = Script::new(RELEASE).key(lock_key).arg(token).invoke_async(connection).await?;
        Ok(())
    }

    /// A stored session and how long it has been idle, if it exists.
    async fn read(
        &self,
        connection: &mut ConnectionManager,
        key: &str,
    ) -> Result<Option<(Session, Duration)>, StoreError> {
        let (raw, remaining): (Option<String>, i64) = redis::pipe().get(key).pttl(key).query_async(connection).await?;
        let Some(raw) = raw else { return Ok(None) };
        let session: Session = super::stored::decode(&raw)
            .map_err(|e| StoreError::Unavailable(format!("session {key} in Redis is not readable: {e}")))?;
        let idle = self.limits.idle_timeout.saturating_sub(Duration::from_millis(remaining.max(0) as u64));
        Ok(Some((session, idle)))
    }

    async fn session_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}session:*", self.prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut iter: redis::AsyncIter<'_, String> = connection.scan_match(&pattern).await?;
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            keys.push(key?);
        }
        keys.sort();
        Ok(keys)
    }
}

struct RedisLease {
    connection: ConnectionManager,
    working: Session,
    lock_key: String,
    session_key: String,
    token: String,
    ttl_ms: u64,
    committed: bool,
}

impl SessionLease for RedisLease {
    fn session(&mut self) -> &mut Session {
        &mut self.working
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        self.committed = true;
        Box::pin(async move {
            let value = super::stored::encode(&self.working)
                .map_err(|e| StoreError::Unavailable(format!("session cannot be stored: {e}")))?;
            let mut connection = self.connection.clone();
            let written: i64 = Script::new(COMMIT)
                .key(&self.lock_key)
                .key(&self.session_key)
                .arg(&self.token)
                .arg(value)
                .arg(self.ttl_ms)
                .invoke_async(&mut connection)
                .await?;
            if written == 1 {
                Ok(())
            } else {
                Err(StoreError::Unavailable(
                    "the session lease expired before the turn finished; nothing was stored".to_owned(),
                ))
            }
        })
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // not committed: give the lock back now rather than after its TTL
        let (mut connection, lock_key, token) = (self.connection.clone(), self.lock_key.clone(), self.token.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = RedisStore::release(&mut connection, &lock_key, &token).await;
            });
        }
    }
}

impl SessionStore for RedisStore {
    fn lease(&self, id: &str) -> BoxFuture<'_, Result<Box<dyn SessionLease>, StoreError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let token = self.lock(&id).await?;
            let mut connection = self.connection.clone();
            let session_key = self.session_key(&id);
            let lock_key = self.lock_key(&id);
            let working = match self.read(&mut connection, &session_key).await {
                Ok(found) => found.map(|(session, _)| session).unwrap_or_else(|| Session::new(&id)),
                Err(error) => {
                    let _ = RedisStore::release(&mut connection, &lock_key, &token).await;
                    return Err(error);
                }
            };
            let lease = RedisLease {
                connection,
                working,
                lock_key,
                session_key,
                token,
                ttl_ms: self.ttl_ms(),
                committed: false,
            };
            Ok(Box::new(lease) as Box<dyn SessionLease>)
        })
    }

    fn limits(&self) -> SessionLimits {
        self.limits
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<(Session, Duration)>, StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut live = Vec::new();
            for key in self.session_keys().await? {
                if let Some(found) = self.read(&mut connection, &key).await? {
                    live.push(found);
                }
            }
            live.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
            Ok(live)
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<(Session, Duration)>, StoreError>> {
        let key = self.session_key(id);
        Box::pin(async move {
            let mut connection = self.connection.clone();
            self.read(&mut connection, &key).await
        })
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, Result<bool, StoreError>> {
        let id = id.to_owned();
        Box::pin(async move {
            // after any turn in flight, like the memory store
            let token = self.lock(&id).await?;
            let mut connection = self.connection.clone();
            let removed: i64 = connection.del(self.session_key(&id)).await?;
            RedisStore::release(&mut connection, &self.lock_key(&id), &token).await?;
            Ok(removed > 0)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: String = redis::cmd("PING").query_async(&mut connection).await?;
            Ok(())
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn count(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        // keys expire with their sessions, so counting them is exact
        Box::pin(async move { Ok(self.session_keys().await?.len()) })
    }

    fn clear(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let mut deleted = 0;
            for key in self.session_keys().await? {
                let id = key.trim_start_matches(&format!("{}session:", self.prefix)).to_owned();
                if self.delete(&id).await? {
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
    }

    fn note_missed(&self, missed: MissedMessage) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let limits = self.limits.missed;
            let key = self.missed_key();
            self.push_bounded(&key, &missed, limits.kept).await?;
            let mut connection = self.connection.clone();
            // the oldest go when they pass the age limit (a few per write keeps up with any rate)
            for _ in 0..8 {
                let oldest: Option<String> = connection.lindex(&key, -1).await?;
                let expired = oldest
                    .and_then(|entry| serde_json::from_str::<MissedMessage>(&entry).ok())
                    .is_some_and(|m| !m.is_recent(limits.max_age));
                if !expired {
                    break;
                }
                let _: Option<String> = connection.rpop(&key, None).await?;
            }
            Ok(())
        })
    }

    fn record_turn(&self, turn: RecordedTurn) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.push_bounded(&self.recorded_key(), &turn, self.limits.recorded_turns).await })
    }

    fn recorded(&self) -> BoxFuture<'_, Result<Vec<RecordedTurn>, StoreError>> {
        Box::pin(async move {
            let mut turns: Vec<RecordedTurn> = self.read_list(&self.recorded_key(), self.limits.recorded_turns).await?;
            turns.reverse();
            Ok(turns)
        })
    }

    fn missed(&self) -> BoxFuture<'_, Result<Vec<MissedMessage>, StoreError>> {
        Box::pin(async move {
            let limits = self.limits.missed;
            let kept: Vec<MissedMessage> = self.read_list(&self.missed_key(), limits.kept).await?;
            Ok(kept.into_iter().filter(|m| m.is_recent(limits.max_age)).collect())
        })
    }
}
