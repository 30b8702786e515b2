//! The `proxy` mode (MESH.md §6.4, 3): for meshes whose Orchestrator proxies synchronously
//! (`SERVICES/orchestrator`).

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome};

/// The `proxy` mode (MESH.md §6.4, 3): an Orchestrator that proxies synchronously
/// (`SERVICES/orchestrator`: `POST /orchestrator/tasks {droplet_name, method, path, payload}` →
/// `{status, response_status, response_body}`).
pub struct ProxyBackend {
    http: reqwest::Client,
    url: String,
    our_id: i64,
}

impl ProxyBackend {
    pub const NAME: &'static str = "proxy";

    pub fn new(url: &str, our_id: i64) -> Self {
        ProxyBackend { http: crate::util::outgoing_http(None), url: url.to_owned(), our_id }
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
        let Some(answer) = crate::util::peer_json(response).await else {
            return Outcome::Failed { kind: FailureKind::BadResponse, message: crate::util::too_large("Orchestrator") };
        };
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
        // the proxy itself retries the target up to 3 times; the router retries an unreachable
        // proxy once for reads
        Box::pin(async move { self.call_once(&request).await })
    }
}
