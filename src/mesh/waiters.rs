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

/// How many replies with no waiter are held at once: past it the oldest goes. A waiter comes
/// within moments of its receipt, so only replies nobody asked for pile up.
pub const EARLY_REPLIES_HELD: usize = 256;

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
                state.early.retain(|_, (at, _)| at.elapsed() < EARLY_REPLY_HOLD);
                if state.early.len() >= EARLY_REPLIES_HELD {
                    let oldest = state.early.iter().min_by_key(|(_, (at, _))| *at).map(|(id, _)| id.clone());
                    if let Some(oldest) = oldest {
                        state.early.remove(&oldest);
                    }
                }
                state.early.insert(in_reply_to.to_owned(), (Instant::now(), envelope));
                false
            }
        }
    }

    /// Replies held with no waiter.
    pub fn held(&self) -> usize {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).early.len()
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

    #[tokio::test(start_paused = true)]
    async fn replies_nobody_waits_for_are_bounded_in_number_and_time() {
        let waiters = Waiters::default();
        for i in 0..1000 {
            waiters.deliver(&format!("unasked-{i}"), json!({"padding": "x".repeat(1000)}));
        }
        assert_eq!(waiters.held(), EARLY_REPLIES_HELD, "the oldest go past the cap");
        assert_eq!(
            waiters.register("unasked-999").await.expect("the newest is kept")["padding"].as_str().map(str::len),
            Some(1000)
        );
        tokio::time::advance(EARLY_REPLY_HOLD + Duration::from_secs(1)).await;
        waiters.deliver("late", json!({}));
        assert_eq!(waiters.held(), 1, "the expired ones went when the next came");
    }
}
