//! Which mode carries each droplet call (MESH.md §6.4): droplet 10's own questions go native;
//! every other target uses `MESH_MODE`, unless `MESH_TARGET_MODES` names a mode for it.
//! Reads whose first attempt never reached anyone are retried once after a short pause;
//! commands never are, so a retried "register" cannot register twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{DirectBackend, NativeBackend, OrchestratorClient, OrchestratorSendBackend, ProxyBackend, Waiters};
use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome};
use crate::credentials::RegistryCredentials;
use crate::droplet_ids::ORCHESTRATOR;

/// Pause before the one retry of an unreachable read.
const READ_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How calls to droplets other than the Orchestrator travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshMode {
    /// Relay through droplet 10's `/send`, wait for the correlated reply (the default).
    OrchestratorSend,
    /// An Orchestrator that proxies synchronously.
    Proxy,
    /// Call the droplet's own API with our Registry token.
    Direct,
}

impl MeshMode {
    pub const CHOICES: &'static str = "orchestrator_send, proxy or direct";

    pub fn as_str(self) -> &'static str {
        match self {
            MeshMode::OrchestratorSend => OrchestratorSendBackend::NAME,
            MeshMode::Proxy => ProxyBackend::NAME,
            MeshMode::Direct => DirectBackend::NAME,
        }
    }
}

impl std::str::FromStr for MeshMode {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim().to_lowercase().as_str() {
            "orchestrator_send" => Ok(MeshMode::OrchestratorSend),
            "proxy" => Ok(MeshMode::Proxy),
            "direct" => Ok(MeshMode::Direct),
            _ => Err(()),
        }
    }
}

/// Everything the mesh modes need, built once at start-up.
pub struct MeshSetup {
    pub client: OrchestratorClient,
    pub waiters: Arc<Waiters>,
    pub mode: MeshMode,
    /// Per-target exceptions to `mode`.
    pub target_modes: HashMap<i64, MeshMode>,
    /// `PROXY_URL`; default `{ORCHESTRATOR_URL}/orchestrator/tasks`.
    pub proxy_url: Option<String>,
    /// `DIRECT_URLS`: base URLs for the direct mode.
    pub direct_urls: HashMap<i64, String>,
    pub registry: Option<Arc<RegistryCredentials>>,
}

impl MeshSetup {
    /// The router, built once: it keeps no configuration (each request carries what the turn's
    /// catalogue declares), so it serves every version the engine installs.
    pub fn into_router(self) -> MeshRouter {
        let our_id = self.client.config().our_id;
        let proxy_url = self
            .proxy_url
            .clone()
            .unwrap_or_else(|| format!("{}/orchestrator/tasks", self.client.config().base_url.trim_end_matches('/')));
        MeshRouter {
            send: OrchestratorSendBackend::new(self.client.clone(), self.waiters),
            proxy: ProxyBackend::new(&proxy_url, our_id),
            direct: DirectBackend::new(self.direct_urls, Some(self.client.clone()), self.registry, our_id),
            native: NativeBackend::new(self.client),
            mode: self.mode,
            target_modes: self.target_modes,
        }
    }
}

/// Sends each call the way its target is reached.
pub struct MeshRouter {
    mode: MeshMode,
    target_modes: HashMap<i64, MeshMode>,
    send: OrchestratorSendBackend,
    proxy: ProxyBackend,
    direct: DirectBackend,
    native: NativeBackend,
}

impl MeshRouter {
    fn backend_for(&self, droplet_id: i64) -> &dyn DropletBackend {
        if droplet_id == ORCHESTRATOR {
            return &self.native;
        }
        match self.target_modes.get(&droplet_id).copied().unwrap_or(self.mode) {
            MeshMode::OrchestratorSend => &self.send,
            MeshMode::Proxy => &self.proxy,
            MeshMode::Direct => &self.direct,
        }
    }
}

impl DropletBackend for MeshRouter {
    /// The mode most calls take; each call's own is in [`DropletBackend::route`].
    fn name(&self) -> &str {
        self.mode.as_str()
    }

    fn route(&self, request: &DropletRequest) -> &str {
        self.backend_for(request.droplet_id).name()
    }

    fn time_limit(&self, request: &DropletRequest) -> Duration {
        self.backend_for(request.droplet_id).time_limit(request)
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        let backend = self.backend_for(request.droplet_id);
        Box::pin(async move {
            let reads = request.method == "GET";
            let outcome = backend.call(request.clone()).await;
            if reads && matches!(outcome, Outcome::Failed { kind: FailureKind::Unreachable, .. }) {
                tokio::time::sleep(READ_RETRY_PAUSE).await;
                return backend.call(request).await;
            }
            outcome
        })
    }
}
