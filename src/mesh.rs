//! Talking to the mesh through the Orchestrator (droplet 10), MESH.md §6.
//!
//! Droplet 10 does not proxy: `POST /send` relays a payload to the target's `/message` and
//! returns a receipt, never the target's data. So a droplet query is sent, a waiter is
//! registered under the receipt's trace id, and the answer — if the target sends one back — arrives
//! at our `POST /message` as a `response` envelope with `payload.in_reply_to`, which
//! [`Waiters::deliver`] hands to the waiting query. No answer in time is the honest outcome
//! `Dispatched`, not an error. Replies that beat the receipt are held for [`EARLY_REPLY_HOLD`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome};

/// How long a reply that arrived before its waiter is kept.
pub const EARLY_REPLY_HOLD: Duration = Duration::from_secs(30);
/// HTTP timeout towards `/send`: droplet 10 itself waits 10 s for the target.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(12);

/// Where and how to reach the Orchestrator.
#[derive(Clone)]
pub struct OrchestratorConfig {
    /// e.g. `http://127.0.0.1:8010`
    pub base_url: String,
    /// How we get bearer tokens for droplet 10 (static, minted or fetched).
    pub credentials: Arc<crate::credentials::OrchestratorCredentials>,
    /// Our droplet id, sent as `X-Source` and `route_back`.
    pub our_id: i64,
    /// How long a query waits for the target's reply.
    pub reply_timeout: Duration,
}

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

    fn forget(&self, trace_id: &str) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).waiting.remove(trace_id);
    }
}

/// A failed call to the Orchestrator, already in the words a reply can use.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshError {
    pub kind: FailureKind,
    pub message: String,
}

/// HTTP client for droplet 10.
#[derive(Clone)]
pub struct OrchestratorClient {
    http: reqwest::Client,
    config: OrchestratorConfig,
}

impl OrchestratorClient {
    pub fn new(config: OrchestratorConfig) -> Self {
        let http = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().unwrap_or_else(|_| reqwest::Client::new());
        OrchestratorClient { http, config }
    }

    pub fn config(&self) -> &OrchestratorConfig {
        &self.config
    }

    /// `POST /send?target_droplet_id=N&message_type=T` with `body`; returns the relay's trace id.
    pub async fn send(
        &self,
        target: i64,
        message_type: &str,
        body: &Value,
        trace_id: &str,
        target_name: &str,
    ) -> Result<String, MeshError> {
        let trace_id =
            uuid::Uuid::parse_str(trace_id).map(|u| u.to_string()).unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
        // a 401 renews the token once (minted and fetched tokens expire)
        for renew in [false, true] {
            let token = self.config.credentials.token(renew).await.map_err(|e| MeshError {
                kind: FailureKind::Refused,
                message: format!("There is no token for the Orchestrator: {e}."),
            })?;
            match self.send_once(target, message_type, body, &trace_id, target_name, token).await {
                Ok(relay_trace_id) => return Ok(relay_trace_id),
                Err(SendFailure::CredentialsRefused) if !renew => continue,
                Err(SendFailure::CredentialsRefused) => break,
                Err(SendFailure::Other(error)) => return Err(error),
            }
        }
        Err(MeshError { kind: FailureKind::Refused, message: "The Orchestrator refused our credentials.".to_owned() })
    }

    async fn send_once(
        &self,
        target: i64,
        message_type: &str,
        body: &Value,
        trace_id: &str,
        target_name: &str,
        token: Option<String>,
    ) -> Result<String, SendFailure> {
        let mut request = self
            .http
            .post(format!("{}/send", self.config.base_url.trim_end_matches('/')))
            .query(&[("target_droplet_id", target.to_string()), ("message_type", message_type.to_owned())])
            .header("X-Trace-ID", trace_id)
            .header("X-Source", self.config.our_id.to_string())
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let failed = |kind, message: String| SendFailure::Other(MeshError { kind, message });
        let response = request.send().await.map_err(|error| {
            if error.is_timeout() {
                failed(
                    FailureKind::Timeout,
                    format!("The Orchestrator did not answer within {} s.", SEND_TIMEOUT.as_secs()),
                )
            } else {
                failed(FailureKind::Unreachable, "The Orchestrator could not be reached.".to_owned())
            }
        })?;
        let status = response.status().as_u16();
        let receipt: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 if receipt["sent"] == json!(true) => {
                Ok(receipt["trace_id"].as_str().unwrap_or(trace_id).to_owned())
            }
            200..=299 => {
                Err(failed(FailureKind::BadResponse, "The Orchestrator did not confirm the delivery.".to_owned()))
            }
            404 => {
                Err(failed(FailureKind::UnknownTarget, format!("The Orchestrator does not know the {target_name}.")))
            }
            502 => Err(failed(FailureKind::Refused, format!("The {target_name} refused the relayed request."))),
            504 => {
                Err(failed(FailureKind::Timeout, format!("The {target_name} did not answer the Orchestrator in time.")))
            }
            401 | 403 => Err(SendFailure::CredentialsRefused),
            _ => Err(failed(FailureKind::BadResponse, format!("The Orchestrator answered with status {status}."))),
        }
    }
}

/// Why one `/send` attempt failed: refused credentials are worth one renewal, anything else is final.
enum SendFailure {
    CredentialsRefused,
    Other(MeshError),
}

/// The `orchestrator_send` mode of the query step: relay, then wait for the correlated reply.
pub struct OrchestratorSendBackend {
    client: OrchestratorClient,
    waiters: Arc<Waiters>,
}

impl OrchestratorSendBackend {
    pub const NAME: &'static str = "orchestrator-send";

    pub fn new(client: OrchestratorClient, waiters: Arc<Waiters>) -> Self {
        OrchestratorSendBackend { client, waiters }
    }

    async fn query(&self, request: DropletRequest) -> Outcome {
        let reads = request.method == "GET";
        let body = json!({
            "action": request.endpoint,
            "method": request.method,
            "data": request.body.clone().unwrap_or_else(|| Value::Object(request.params.clone())),
            "route_back": self.client.config.our_id.to_string(),
        });
        let message_type = if reads { "query" } else { "command" };
        let mut sent =
            self.client.send(request.droplet_id, message_type, &body, &request.trace_id, &request.droplet_name).await;
        // a read may be retried once after a transport failure; a command never is, so a
        // registration cannot happen twice
        if reads && matches!(&sent, Err(e) if matches!(e.kind, FailureKind::Unreachable | FailureKind::Timeout)) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sent = self
                .client
                .send(request.droplet_id, message_type, &body, &request.trace_id, &request.droplet_name)
                .await;
        }
        let relay = match sent {
            Ok(relay) => relay,
            Err(error) => return Outcome::Failed { kind: error.kind, message: error.message },
        };
        let reply = self.waiters.register(&relay);
        match tokio::time::timeout(self.client.config.reply_timeout, reply).await {
            Ok(Ok(envelope)) => reply_outcome(&envelope, &request.droplet_name),
            _ => {
                self.waiters.forget(&relay);
                Outcome::Dispatched { relay_trace_id: relay }
            }
        }
    }
}

/// `response` → its `payload.data` (or the payload); `error` → a failure with its message.
fn reply_outcome(envelope: &Value, droplet_name: &str) -> Outcome {
    let payload = &envelope["payload"];
    if envelope["message_type"] == "error" {
        let message = payload["error"]["message"].as_str().unwrap_or("it gave no reason");
        return Outcome::Failed {
            kind: FailureKind::Refused,
            message: format!("The {droplet_name} answered with an error: {message}"),
        };
    }
    Outcome::Data(payload.get("data").cloned().unwrap_or_else(|| payload.clone()))
}

impl DropletBackend for OrchestratorSendBackend {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        Box::pin(self.query(request))
    }
}

/// The `proxy` mode (MESH.md §6.4, 3): an Orchestrator that proxies synchronously
/// (`SERVICES/orchestrator`: `POST /orchestrator/tasks {droplet_name, method, path, payload}` →
/// `{status, response_status, response_body}`).
pub struct ProxyBackend {
    http: reqwest::Client,
    url: String,
    our_id: i64,
}

impl ProxyBackend {
    pub const NAME: &'static str = "orchestrator-proxy";

    pub fn new(url: &str, our_id: i64) -> Self {
        let http = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().unwrap_or_else(|_| reqwest::Client::new());
        ProxyBackend { http, url: url.to_owned(), our_id }
    }

    async fn call_once(&self, request: &DropletRequest) -> Outcome {
        let body = json!({
            "droplet_name": request.droplet_name,
            "method": request.method,
            "path": request.endpoint,
            "payload": request.body.clone().or_else(|| (!request.params.is_empty()).then(|| Value::Object(request.params.clone()))),
            "meta": {"trace_id": request.trace_id, "source": self.our_id.to_string()},
        });
        let name = &request.droplet_name;
        let response = match self
            .http
            .post(&self.url)
            .json(&body)
            .timeout(request.timeout.max(Duration::from_secs(1)))
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                return Outcome::timeout(&format!("Orchestrator (asking the {name})"), request.timeout)
            }
            Err(_) => {
                return Outcome::Failed {
                    kind: FailureKind::Unreachable,
                    message: "The Orchestrator could not be reached.".to_owned(),
                }
            }
        };
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let target_status = answer["response_status"].as_u64().unwrap_or(0);
        match (status, answer["status"].as_str()) {
            (200, Some("success")) if (200..300).contains(&target_status) => {
                Outcome::Data(answer.get("response_body").cloned().unwrap_or(Value::Null))
            }
            (200, Some("timeout")) => {
                Outcome::Failed { kind: FailureKind::Timeout, message: format!("The {name} did not answer in time.") }
            }
            (200, _) => Outcome::Failed {
                kind: FailureKind::Refused,
                message: format!("The {name} answered with status {target_status}."),
            },
            (400, _) if answer["detail"]["error"]["code"] == "DROPLET_NOT_FOUND" => Outcome::Failed {
                kind: FailureKind::UnknownTarget,
                message: format!("The Orchestrator does not know the {name}."),
            },
            _ => Outcome::Failed {
                kind: FailureKind::BadResponse,
                message: format!("The Orchestrator answered with status {status}."),
            },
        }
    }
}

impl DropletBackend for ProxyBackend {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let outcome = self.call_once(&request).await;
            // the proxy itself retries the target; we retry only a read whose proxy was unreachable
            if request.method == "GET" && matches!(outcome, Outcome::Failed { kind: FailureKind::Unreachable, .. }) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return self.call_once(&request).await;
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_find_their_waiters_even_when_they_come_first() {
        let waiters = Waiters::default();
        let waiting = waiters.register("relay-1");
        assert!(waiters.deliver("relay-1", json!({"payload": {"data": 1}})));
        assert_eq!(waiting.await.expect("delivered")["payload"]["data"], 1);

        assert!(!waiters.deliver("relay-2", json!({"early": true})), "no waiter yet: held");
        assert_eq!(waiters.register("relay-2").await.expect("held reply")["early"], true);
    }

    #[test]
    fn error_envelopes_become_failures() {
        let outcome = reply_outcome(
            &json!({"message_type": "error", "payload": {"error": {"message": "no such snapshot"}}}),
            "Visibility Deck",
        );
        assert_eq!(
            outcome,
            Outcome::Failed {
                kind: FailureKind::Refused,
                message: "The Visibility Deck answered with an error: no such snapshot".into()
            }
        );
        assert_eq!(
            reply_outcome(&json!({"message_type": "response", "payload": {"data": {"a": 1}}}), "x"),
            Outcome::Data(json!({"a": 1}))
        );
    }
}
