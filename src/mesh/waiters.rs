//! Queries waiting for the answer a target droplet relays back to our `POST /message`.
//!
//! Droplet 10's `/send` returns only a receipt; the target's answer, if it sends one, arrives
//! later as a `response` envelope whose `payload.in_reply_to` is the receipt's trace id.
//! [`Waiters::deliver`] hands it to the query waiting on that id. Replies that beat the receipt
//! are held for [`EARLY_REPLY_HOLD`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long a reply that arrived before its waiter is kept.
pub const EARLY_REPLY_HOLD: Duration = Duration::from_secs(30);

/// Queries waiting for their relayed answer, by the relay's trace id.
#[derive(Default)]
pub struct Waiters {
    state: Mutex<WaiterState>,
}

#[derive(Default)]
struct WaiterState {
    waiting: HashMap<String, oneshot::Sender<Value>>,
    early: HashMap<String, (Instant, Value)>,
}

impl Waiters {
    /// Waits for the reply to `trace_id` (taking one that already arrived).
    pub fn register(&self, trace_id: &str) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.early.retain(|_, (at, _)| at.elapsed() < EARLY_REPLY_HOLD);
        match state.early.remove(trace_id) {
            Some((_, reply)) => {
                let _ = tx.send(reply);
            }
            None => {
                state.waiting.insert(trace_id.to_owned(), tx);
            }
        }
        rx
    }

    /// Hands a `response`/`error` envelope to its waiter; holds it a while if none waits yet.
    /// Returns whether a waiter took it.
    pub fn deliver(&self, in_reply_to: &str, envelope: Value) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match state.waiting.remove(in_reply_to) {
            Some(waiter) => waiter.send(envelope).is_ok(),
            None => {
                state.early.insert(in_reply_to.to_owned(), (Instant::now(), envelope));
                false
            }
        }
    }

    pub(super) fn forget(&self, trace_id: &str) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).waiting.remove(trace_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn replies_find_their_waiters_even_when_they_come_first() {
        let waiters = Waiters::default();
        let waiting = waiters.register("relay-1");
        assert!(waiters.deliver("relay-1", json!({"payload": {"data": 1}})));
        assert_eq!(waiting.await.expect("delivered")["payload"]["data"], 1);

        assert!(!waiters.deliver("relay-2", json!({"early": true})), "no waiter yet: held");
        assert_eq!(waiters.register("relay-2").await.expect("held reply")["early"], true);
    }
}
