//! The `orchestrator_native` mode (MESH.md §6.4, 2), automatic when the target is droplet 10:
//! the questions it answers itself. An endpoint whose catalogue entry has a `native` form is
//! asked through `POST /message` (`query: droplet_list`, `command: create_task`, ...) and
//! answers with `payload.result`; any other `GET` is one of its Bearer routes (`/droplets`,
//! `/tasks`, `/metrics/summary`). Relaying a request to droplet 10 through its own `/send` would
//! only reach its `/message`, so there is no third way.

use futures::future::BoxFuture;

use super::OrchestratorClient;
use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome};

pub struct NativeBackend {
    client: OrchestratorClient,
}

impl NativeBackend {
    pub const NAME: &'static str = "orchestrator_native";

    pub fn new(client: OrchestratorClient) -> Self {
        NativeBackend { client }
    }

    async fn ask(&self, request: DropletRequest) -> Outcome {
        let native = request.declared.as_ref().and_then(|d| Some((d, d.native.as_ref()?)));
        let answer = match native {
            Some((declared, native)) => {
                let payload = match declared.render(&native.payload, &request) {
                    Ok(payload) => payload,
                    Err(error) => {
                        return Outcome::Failed {
                            kind: FailureKind::BadResponse,
                            message: format!(
                                "The question for the Orchestrator ({} {}) could not be built: {error}",
                                request.method, request.endpoint
                            ),
                        }
                    }
                };
                self.client.message(&native.message_type, payload, &request.trace_id).await
            }
            None if request.method == "GET" => {
                self.client.get(&request.endpoint, &request.params, &request.trace_id).await
            }
            None => {
                return Outcome::Failed {
                    kind: FailureKind::UnknownEndpoint,
                    message: format!(
                        "The Orchestrator has no native form of {} {}; add `native` to it in the catalogue.",
                        request.method, request.endpoint
                    ),
                }
            }
        };
        match answer {
            Ok(data) => Outcome::Data(data),
            Err(error) => error.into(),
        }
    }
}

impl DropletBackend for NativeBackend {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        Box::pin(self.ask(request))
    }
}
