//! The `orchestrator_send` mode (MESH.md §6.4, 1), the default towards droplet 10: relay the
//! request with `POST /send`, then wait for the correlated reply at our `/message`. No reply in
//! time is the honest outcome `Dispatched`, not an error.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{OrchestratorClient, Waiters};
use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome};

pub struct OrchestratorSendBackend {
    client: OrchestratorClient,
    waiters: Arc<Waiters>,
}

impl OrchestratorSendBackend {
    pub const NAME: &'static str = "orchestrator_send";

    pub fn new(client: OrchestratorClient, waiters: Arc<Waiters>) -> Self {
        OrchestratorSendBackend { client, waiters }
    }

    async fn query(&self, request: DropletRequest) -> Outcome {
        let config = self.client.config();
        let body = json!({
            "action": request.endpoint,
            "method": request.method,
            "data": request.body.clone().unwrap_or_else(|| Value::Object(request.params.clone())),
            "route_back": config.our_id.to_string(),
        });
        let message_type = if request.method == "GET" { "query" } else { "command" };
        let sent =
            self.client.send(request.droplet_id, message_type, &body, &request.trace_id, &request.droplet_name).await;
        let relay = match sent {
            Ok(relay) => relay,
            Err(error) => return error.into(),
        };
        let reply = self.waiters.register(&relay);
        match tokio::time::timeout(config.reply_timeout, reply).await {
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

    /// The relay may take droplet 10's whole 10 s window, then the reply wait follows: the
    /// pipeline's per-call timeout cannot shorten the mesh's own latency.
    fn time_limit(&self, _request: &DropletRequest) -> Duration {
        let config = self.client.config();
        config.send_timeout() + config.reply_timeout + Duration::from_secs(1)
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        Box::pin(self.query(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
