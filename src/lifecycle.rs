//! Being a droplet: register with the Registry and the Orchestrator, heartbeat both, leave on
//! shutdown (MESH.md §5).
//!
//! Each side runs its own loop in the background; start-up never waits for the mesh. A failed
//! step retries with backoff (5 s doubling to 300 s). A 401 refreshes the Registry token once; a
//! 404 on a heartbeat means "not registered" and re-registers. Heartbeats carry real figures from
//! [`Stats`]. Secrets are never logged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::credentials::{OrchestratorCredentials, RegistryCredentials};
use crate::identity::Identity;
use crate::stats::{rss_mb, Stats};
use crate::util::utc_timestamp;

/// Where the mesh is and how often to tell it we are alive.
#[derive(Clone)]
pub struct LifecycleConfig {
    /// The Registry (`REGISTRY_URL`) and its tokens (`DROPLET_SECRET` as `X-Registry-Key`),
    /// shared with the `direct` mesh mode; without it the Registry side does nothing.
    pub registry_credentials: Option<Arc<RegistryCredentials>>,
    /// `ORCHESTRATOR_URL` and how to get its tokens; without a URL the Orchestrator side does
    /// nothing.
    pub orchestrator_url: Option<String>,
    pub orchestrator_credentials: Arc<OrchestratorCredentials>,
    pub identity: Identity,
    pub registry_heartbeat: Duration,
    pub orchestrator_heartbeat: Duration,
    /// First retry delay; doubles up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// `REGISTRY_TIMEOUT` and `ORCHESTRATOR_TIMEOUT`: HTTP timeout of each call.
    pub registry_timeout: Duration,
    pub orchestrator_timeout: Duration,
}

pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the lifecycle has achieved, for logs and `/dependencies`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, poem_openapi::Object)]
pub struct LifecycleState {
    /// Registered with the Registry (`REGISTRY_URL`).
    pub registry_registered: bool,
    /// Registered in droplet 10's directory (`ORCHESTRATOR_URL`).
    pub orchestrator_registered: bool,
    /// Time of the last accepted Registry heartbeat (every 30 s).
    pub last_registry_heartbeat: Option<String>,
    /// Time of the last accepted Orchestrator heartbeat (every 60 s).
    pub last_orchestrator_heartbeat: Option<String>,
    /// The last failed step and why; it is retried with backoff.
    pub last_error: Option<String>,
}

pub struct Lifecycle {
    http: reqwest::Client,
    config: LifecycleConfig,
    stats: Arc<Stats>,
    state: Mutex<LifecycleState>,
}

/// One failed exchange, with the status when there was one.
struct Failure {
    status: Option<u16>,
    message: String,
}

impl Lifecycle {
    pub fn new(config: LifecycleConfig, stats: Arc<Stats>) -> Arc<Lifecycle> {
        Arc::new(Lifecycle {
            http: crate::util::outgoing_http(None),
            config,
            stats,
            state: Mutex::new(LifecycleState::default()),
        })
    }

    pub fn state(&self) -> LifecycleState {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut LifecycleState)) {
        change(&mut self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    /// Starts the Registry and Orchestrator loops (each only if configured).
    pub fn spawn(self: &Arc<Self>) {
        if self.config.registry_credentials.is_some() {
            let me = self.clone();
            tokio::spawn(async move { me.registry_loop().await });
        }
        if self.config.orchestrator_url.is_some() {
            let me = self.clone();
            tokio::spawn(async move { me.orchestrator_loop().await });
        }
    }

    async fn registry_loop(self: Arc<Self>) {
        let mut backoff = self.config.backoff;
        let mut registered = false;
        loop {
            let step = if registered { self.registry_heartbeat().await } else { self.registry_register().await };
            match step {
                Ok(()) => {
                    registered = true;
                    backoff = self.config.backoff;
                    tokio::time::sleep(self.config.registry_heartbeat).await;
                }
                Err(failure) => {
                    if failure.status == Some(404) {
                        registered = false; // unknown to the Registry: register again
                    }
                    self.update(|s| s.last_error = Some(format!("registry: {}", failure.message)));
                    tracing::warn!(error = %failure.message, retry_in_s = backoff.as_secs(), "registry step failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn orchestrator_loop(self: Arc<Self>) {
        let mut backoff = self.config.backoff;
        let mut registered = false;
        loop {
            let step =
                if registered { self.orchestrator_heartbeat().await } else { self.orchestrator_register().await };
            match step {
                Ok(()) => {
                    registered = true;
                    backoff = self.config.backoff;
                    tokio::time::sleep(self.config.orchestrator_heartbeat).await;
                }
                Err(failure) => {
                    if failure.status == Some(404) {
                        registered = false;
                    }
                    self.update(|s| s.last_error = Some(format!("orchestrator: {}", failure.message)));
                    tracing::warn!(error = %failure.message, retry_in_s = backoff.as_secs(), "orchestrator step failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn registry_url(&self, path: &str) -> String {
        let base = self.config.registry_credentials.as_ref().map(|c| c.base_url()).unwrap_or_default();
        format!("{base}{path}")
    }

    fn orchestrator_url(&self, path: &str) -> String {
        format!("{}{path}", self.config.orchestrator_url.as_deref().unwrap_or_default().trim_end_matches('/'))
    }

    /// A Registry call with both headers; a 401 refreshes the token and retries once.
    async fn registry_post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let Some(credentials) = &self.config.registry_credentials else {
            return Err(Failure { status: None, message: "no Registry credentials".to_owned() });
        };
        for attempt in 0..2 {
            let token = credentials
                .token(attempt > 0)
                .await
                .map_err(|e| Failure { status: None, message: format!("no Registry token: {e}") })?;
            let mut request = self
                .http
                .post(self.registry_url(path))
                .timeout(self.config.registry_timeout)
                .bearer_auth(&token)
                .header("X-Trace-ID", uuid::Uuid::new_v4().to_string())
                .header("X-Source", self.config.identity.id.to_string())
                .json(body);
            if let Some(key) = credentials.key() {
                request = request.header("X-Registry-Key", key);
            }
            match send(request).await {
                Err(Failure { status: Some(401), .. }) if attempt == 0 => continue,
                other => return other,
            }
        }
        Err(Failure { status: Some(401), message: "the Registry refused a fresh token".to_owned() })
    }

    fn droplet_name(&self) -> String {
        format!("droplet-{}", self.config.identity.id)
    }

    fn host(&self) -> String {
        self.config
            .identity
            .endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned()
    }

    async fn registry_register(&self) -> Result<(), Failure> {
        let me = &self.config.identity;
        let body = json!({
            "id": self.droplet_name(), "droplet_id": self.droplet_name(), "fqdn": self.host(), "host": self.host(),
            "name": me.name, "steward": me.steward, "endpoint": me.endpoint, "role": "chat-orchestrator",
            "version": env!("CARGO_PKG_VERSION"), "status": "active", "capabilities": me.features,
            "metadata": {"name": me.name, "steward": me.steward, "version": env!("CARGO_PKG_VERSION"), "udc_version": me.udc_version, "endpoint": me.endpoint},
        });
        self.registry_post("/registry/register", &body).await?;
        self.update(|s| s.registry_registered = true);
        tracing::info!("registered with the Registry");
        Ok(())
    }

    async fn registry_heartbeat(&self) -> Result<(), Failure> {
        let body = json!({
            "id": self.droplet_name(), "droplet_id": self.droplet_name(), "host": self.host(), "status": "active",
            "metadata": {
                "name": self.config.identity.name, "version": env!("CARGO_PKG_VERSION"), "udc_version": self.config.identity.udc_version,
                "cpu_percent": self.stats.cpu_percent(), "memory_mb": rss_mb(), "uptime_seconds": self.stats.uptime().as_secs(),
            },
        });
        self.registry_post("/registry/heartbeat", &body).await?;
        self.update(|s| s.last_registry_heartbeat = Some(utc_timestamp()));
        Ok(())
    }

    fn envelope(&self, payload: Value) -> Value {
        json!({
            "udc_version": "1.0", "trace_id": uuid::Uuid::new_v4().to_string(), "source": self.config.identity.id.to_string(),
            "target": crate::droplet_ids::ORCHESTRATOR.to_string(), "message_type": "command", "timestamp": utc_timestamp(), "payload": payload,
        })
    }

    /// An Orchestrator call with our token; a 401 renews the token and retries once.
    async fn orchestrator_post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        for renew in [false, true] {
            let token = self
                .config
                .orchestrator_credentials
                .token(renew)
                .await
                .map_err(|e| Failure { status: None, message: format!("no Orchestrator token: {e}") })?;
            let mut request = self
                .http
                .post(self.orchestrator_url(path))
                .timeout(self.config.orchestrator_timeout)
                .header("X-Trace-ID", body["trace_id"].as_str().unwrap_or_default())
                .header("X-Source", self.config.identity.id.to_string())
                .json(body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            match send(request).await {
                Err(Failure { status: Some(401), .. }) if !renew => continue,
                other => return other,
            }
        }
        Err(Failure { status: Some(401), message: "the Orchestrator refused a renewed token".to_owned() })
    }

    async fn orchestrator_register(&self) -> Result<(), Failure> {
        let me = &self.config.identity;
        let body = self.envelope(json!({
            "droplet_id": me.id, "name": me.name, "steward": me.steward,
            "endpoint": me.endpoint.trim_end_matches('/'), "capabilities": me.features,
        }));
        self.orchestrator_post("/droplets/register", &body).await?;
        self.update(|s| s.orchestrator_registered = true);
        tracing::info!("registered with the Orchestrator");
        Ok(())
    }

    async fn orchestrator_heartbeat(&self) -> Result<(), Failure> {
        // "command", never "heartbeat": droplet 10's envelope check refuses that type
        let body = self.envelope(json!({
            "status": "active",
            "metrics": {
                "cpu_percent": self.stats.cpu_percent(), "memory_mb": rss_mb(),
                "requests_total": self.stats.requests_total(), "errors_last_hour": self.stats.errors_last_hour(),
            },
        }));
        self.orchestrator_post(&format!("/droplets/{}/heartbeat", self.config.identity.id), &body).await?;
        self.update(|s| s.last_orchestrator_heartbeat = Some(utc_timestamp()));
        Ok(())
    }

    /// On graceful shutdown: deactivate at the Orchestrator, then a best-effort Registry
    /// deregister; two seconds at most, outcomes ignored.
    pub async fn leave(&self) {
        let work = async {
            if self.config.orchestrator_url.is_some() {
                let body = self.envelope(json!({}));
                let _ =
                    self.orchestrator_post(&format!("/droplets/{}/deactivate", self.config.identity.id), &body).await;
            }
            if self.config.registry_credentials.is_some() {
                let body = json!({"id": self.droplet_name(), "reason": "graceful_shutdown"});
                let _ = self.registry_post("/deregister", &body).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), work).await.is_err() {
            tracing::warn!("leaving the mesh took longer than 2 s; heartbeat expiry will do the rest");
        }
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Value, Failure> {
    let response = request.send().await.map_err(|e| Failure { status: None, message: format!("unreachable: {e}") })?;
    let status = response.status();
    let body = crate::util::peer_json(response).await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(Failure { status: Some(status.as_u16()), message: format!("answered {status}") })
    }
}
