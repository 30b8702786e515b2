//! HTTP client for droplet 10: the relay (`POST /send`), its own questions (`POST /message`)
//! and its Bearer GETs (`/droplets/{id}`, `/tasks`, ...). Every call carries our token (renewed
//! once after a 401/403), `X-Trace-ID` and `X-Source`, and ends in a [`Failure`] written so a
//! reply can show it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::backend::Failure;
use crate::backend::FailureKind;
use crate::credentials::OrchestratorCredentials;

/// Droplet 10 itself waits 10 s for the target of a relay, so `/send` gets at least this long.
pub const MIN_SEND_TIMEOUT: Duration = Duration::from_secs(12);
/// `ORCHESTRATOR_TIMEOUT`'s default: every call to droplet 10 but `/send`.
pub const DEFAULT_ORCHESTRATOR_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to reach the Orchestrator.
#[derive(Clone)]
pub struct OrchestratorConfig {
    /// e.g. `http://127.0.0.1:8010`
    pub base_url: String,
    /// How we get bearer tokens for droplet 10 (static, minted or fetched).
    pub credentials: Arc<OrchestratorCredentials>,
    /// Our droplet id, sent as `X-Source` and `route_back`.
    pub our_id: i64,
    /// How long a relayed query waits for the target's reply (`MESH_REPLY_TIMEOUT_MS`).
    pub reply_timeout: Duration,
    /// `ORCHESTRATOR_TIMEOUT`: HTTP timeout of every call but `/send`.
    pub timeout: Duration,
}

impl OrchestratorConfig {
    /// `/send` waits for droplet 10's own 10 s relay window.
    pub fn send_timeout(&self) -> Duration {
        self.timeout.max(MIN_SEND_TIMEOUT)
    }
}

/// HTTP client for droplet 10.
#[derive(Clone)]
pub struct OrchestratorClient {
    http: reqwest::Client,
    config: OrchestratorConfig,
}

/// An answer from droplet 10: status and JSON body (`Null` when it was not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl OrchestratorClient {
    pub fn new(config: OrchestratorConfig) -> Self {
        OrchestratorClient { http: crate::util::outgoing_http(None), config }
    }

    pub fn config(&self) -> &OrchestratorConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// Sends what `build` makes, with our token and headers; a 401/403 renews the token once.
    async fn authorized(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        trace_id: &str,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        for renew in [false, true] {
            let token = self.config.credentials.token(renew).await.map_err(|e| Failure {
                kind: FailureKind::Refused,
                message: format!("There is no token for the Orchestrator: {e}."),
            })?;
            let mut request = build(&self.http)
                .timeout(timeout)
                .header("X-Trace-ID", trace_id)
                .header("X-Source", self.config.our_id.to_string());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|error| {
                if error.is_timeout() {
                    Failure::timeout("Orchestrator", timeout)
                } else {
                    Failure { kind: FailureKind::Unreachable, message: "The Orchestrator could not be reached.".into() }
                }
            })?;
            let status = response.status().as_u16();
            if matches!(status, 401 | 403) && !renew {
                continue;
            }
            let Some(body) = crate::util::peer_json(response).await else {
                return Err(Failure {
                    kind: FailureKind::BadResponse,
                    message: crate::util::too_large("Orchestrator"),
                });
            };
            return Ok(Answer { status, body });
        }
        Err(Failure { kind: FailureKind::Refused, message: "The Orchestrator refused our credentials.".to_owned() })
    }

    /// `POST /send?target_droplet_id=N&message_type=T` with `body` (the payload itself, not an
    /// envelope); returns the relay's trace id, the key the target's reply will carry.
    pub async fn send(
        &self,
        target: i64,
        message_type: &str,
        body: &Value,
        trace_id: &str,
        target_name: &str,
    ) -> Result<String, Failure> {
        let trace_id = uuid_or_new(trace_id);
        let url = self.url("/send");
        let query = [("target_droplet_id", target.to_string()), ("message_type", message_type.to_owned())];
        let answer = self
            .authorized(|http| http.post(&url).query(&query).json(body), &trace_id, self.config.send_timeout())
            .await?;
        let failed = |kind, message: String| Err(Failure { kind, message });
        // the receipt is plain JSON; unwrap `payload` should a UDC middleware ever wrap it
        let receipt = if answer.body.get("payload").is_some() { &answer.body["payload"] } else { &answer.body };
        match answer.status {
            200..=299 if receipt["sent"] == json!(true) => {
                Ok(receipt["trace_id"].as_str().unwrap_or(&trace_id).to_owned())
            }
            200..=299 => failed(FailureKind::BadResponse, "The Orchestrator did not confirm the delivery.".to_owned()),
            404 => failed(FailureKind::UnknownTarget, format!("The Orchestrator does not know the {target_name}.")),
            502 => failed(FailureKind::Refused, format!("The {target_name} refused the relayed request.")),
            504 => failed(FailureKind::Timeout, format!("The {target_name} did not answer the Orchestrator in time.")),
            401 | 403 => failed(FailureKind::Refused, "The Orchestrator refused our credentials.".to_owned()),
            status => failed(FailureKind::BadResponse, format!("The Orchestrator answered with status {status}.")),
        }
    }

    /// `POST /message` to droplet 10 itself (MESH.md §6.1) with a `query` or `command` payload;
    /// returns the reply's `payload.result`, or the error its envelope carries.
    pub async fn message(&self, message_type: &str, payload: Value, trace_id: &str) -> Result<Value, Failure> {
        let trace_id = uuid_or_new(trace_id);
        let envelope = json!({
            "udc_version": "1.0",
            "trace_id": trace_id,
            "source": self.config.our_id.to_string(),
            "target": crate::droplet_ids::ORCHESTRATOR.to_string(),
            "message_type": message_type,
            "timestamp": crate::util::utc_timestamp(),
            "payload": payload,
        });
        let url = self.url("/message");
        let answer = self.authorized(|http| http.post(&url).json(&envelope), &trace_id, self.config.timeout).await?;
        let reply = &answer.body;
        if answer.status == 422 {
            // our envelope broke droplet 10's model: a bug on our side, said plainly
            return Err(Failure {
                kind: FailureKind::BadResponse,
                message: "The Orchestrator could not read our question (422).".to_owned(),
            });
        }
        if !(200..300).contains(&answer.status) {
            return Err(Failure {
                kind: FailureKind::BadResponse,
                message: format!("The Orchestrator answered with status {}.", answer.status),
            });
        }
        // an error comes back as HTTP 200 with an error envelope, or as `payload.error`
        let error = if reply["message_type"] == "error" { &reply["payload"] } else { &reply["payload"]["error"] };
        if !error.is_null() {
            let reason = error["message"]
                .as_str()
                .or_else(|| error["error"]["message"].as_str())
                .or_else(|| error.as_str())
                .unwrap_or("it gave no reason");
            return Err(Failure {
                kind: FailureKind::Refused,
                message: format!("The Orchestrator could not answer: {reason}"),
            });
        }
        match reply["payload"].get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(Failure {
                kind: FailureKind::BadResponse,
                message: "The Orchestrator's answer had no result.".to_owned(),
            }),
        }
    }

    /// A Bearer `GET` of one of droplet 10's own routes; envelopes are unwrapped to their payload.
    pub async fn get(
        &self,
        path: &str,
        params: &serde_json::Map<String, Value>,
        trace_id: &str,
    ) -> Result<Value, Failure> {
        let trace_id = uuid_or_new(trace_id);
        let url = self.url(path);
        let query: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), query_value(v))).collect();
        let answer = self.authorized(|http| http.get(&url).query(&query), &trace_id, self.config.timeout).await?;
        match answer.status {
            200..=299 => {
                let body = answer.body;
                Ok(if body.get("udc_version").is_some() && body.get("payload").is_some() {
                    body["payload"].clone()
                } else {
                    body
                })
            }
            404 => Err(Failure {
                kind: FailureKind::UnknownEndpoint,
                message: format!("The Orchestrator has nothing at {path}."),
            }),
            status => Err(Failure {
                kind: FailureKind::BadResponse,
                message: format!("The Orchestrator answered {path} with status {status}."),
            }),
        }
    }
}

/// Droplet 10 requires a UUID trace id; anything else is replaced by a fresh one.
fn uuid_or_new(trace_id: &str) -> String {
    uuid::Uuid::parse_str(trace_id).map(|u| u.to_string()).unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// A query-string value: strings as they are, anything else as JSON text.
pub(super) fn query_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
