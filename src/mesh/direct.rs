//! The `direct` mode (MESH.md §6.4, 4; off by default): call the target droplet's own HTTP API,
//! `{base}{path}`, with our Registry token, the pattern of `H/droplet-2/3-INTEGRATION_GUIDE.md`.
//! A droplet's base URL comes from `DIRECT_URLS`, else from droplet 10's directory
//! (`GET /droplets/{id}` → `endpoint`), looked up once and remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::Value;

use super::orchestrator::query_value;
use super::OrchestratorClient;
use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome};
use crate::credentials::RegistryCredentials;

pub struct DirectBackend {
    http: reqwest::Client,
    /// Configured base URLs by droplet id (`DIRECT_URLS`).
    configured: HashMap<i64, String>,
    /// Base URLs learnt from the Orchestrator's directory.
    discovered: Mutex<HashMap<i64, String>>,
    directory: Option<OrchestratorClient>,
    registry: Option<Arc<RegistryCredentials>>,
    our_id: i64,
}

impl DirectBackend {
    pub const NAME: &'static str = "direct";

    pub fn new(
        configured: HashMap<i64, String>,
        directory: Option<OrchestratorClient>,
        registry: Option<Arc<RegistryCredentials>>,
        our_id: i64,
    ) -> Self {
        DirectBackend {
            http: crate::util::outgoing_http(None),
            configured,
            discovered: Mutex::new(HashMap::new()),
            directory,
            registry,
            our_id,
        }
    }

    async fn base_url(&self, request: &DropletRequest) -> Result<String, Outcome> {
        if let Some(url) = self.configured.get(&request.droplet_id) {
            return Ok(url.clone());
        }
        if let Some(url) = self.discovered.lock().unwrap_or_else(|p| p.into_inner()).get(&request.droplet_id) {
            return Ok(url.clone());
        }
        let name = &request.droplet_name;
        let Some(directory) = &self.directory else {
            return Err(Outcome::Failed {
                kind: FailureKind::UnknownTarget,
                message: format!("No address is configured for the {name} (DIRECT_URLS)."),
            });
        };
        let entry = directory
            .get(&format!("/droplets/{}", request.droplet_id), &serde_json::Map::new(), &request.trace_id)
            .await
            .map_err(|error| Outcome::Failed {
                kind: if error.kind == FailureKind::UnknownEndpoint { FailureKind::UnknownTarget } else { error.kind },
                message: format!("The address of the {name} could not be looked up: {}", error.message),
            })?;
        let droplet = entry.get("droplet").unwrap_or(&entry);
        let url =
            droplet["endpoint"].as_str().filter(|url| url.starts_with("http")).ok_or_else(|| Outcome::Failed {
                kind: FailureKind::UnknownTarget,
                message: format!("The Orchestrator's directory has no address for the {name}."),
            })?;
        let url = url.trim_end_matches('/').to_owned();
        self.discovered.lock().unwrap_or_else(|p| p.into_inner()).insert(request.droplet_id, url.clone());
        Ok(url)
    }

    async fn call_direct(&self, request: DropletRequest) -> Outcome {
        let base = match self.base_url(&request).await {
            Ok(base) => base,
            Err(outcome) => return outcome,
        };
        let name = &request.droplet_name;
        let url = format!("{base}{}", request.endpoint);
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        // a 401 renews the Registry token once
        for renew in [false, true] {
            let mut call = self
                .http
                .request(method.clone(), &url)
                .timeout(request.timeout)
                .header("X-Trace-ID", &request.trace_id)
                .header("X-Source", self.our_id.to_string());
            if method == reqwest::Method::GET {
                let query: Vec<(String, String)> =
                    request.params.iter().map(|(k, v)| (k.clone(), query_value(v))).collect();
                call = call.query(&query);
            } else {
                call = call.json(&request.body.clone().unwrap_or_else(|| Value::Object(request.params.clone())));
            }
            if let Some(registry) = &self.registry {
                match registry.token(renew).await {
                    Ok(token) => call = call.bearer_auth(token),
                    Err(error) => {
                        return Outcome::Failed {
                            kind: FailureKind::Refused,
                            message: format!("There is no Registry token to call the {name} with: {error}."),
                        }
                    }
                }
            }
            let response = match call.send().await {
                Ok(response) => response,
                Err(error) if error.is_timeout() => return Outcome::timeout(name, request.timeout),
                Err(_) => {
                    return Outcome::Failed {
                        kind: FailureKind::Unreachable,
                        message: format!("The {name} could not be reached."),
                    }
                }
            };
            let status = response.status().as_u16();
            if status == 401 && !renew && self.registry.is_some() {
                continue;
            }
            let Some(bytes) = crate::util::body_within(response, crate::util::MAX_PEER_ANSWER_BYTES).await else {
                return Outcome::Failed { kind: FailureKind::BadResponse, message: crate::util::too_large(name) };
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return match status {
                200..=299 => Outcome::Data(data),
                401 | 403 => Outcome::Failed {
                    kind: FailureKind::Refused,
                    message: format!("The {name} refused our credentials."),
                },
                404 => Outcome::Failed {
                    kind: FailureKind::UnknownEndpoint,
                    message: format!("The {name} has nothing at {}.", request.endpoint),
                },
                status => Outcome::Failed {
                    kind: FailureKind::Refused,
                    message: format!("The {name} answered with status {status}."),
                },
            };
        }
        Outcome::Failed { kind: FailureKind::Refused, message: format!("The {name} refused our credentials.") }
    }
}

impl DropletBackend for DirectBackend {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        Box::pin(self.call_direct(request))
    }
}
