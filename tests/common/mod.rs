//! Shared test harness: the shipped configuration, an engine over it, and a fake for the droplets
//! outside this machine that can be told to time out, refuse, or only dispatch a call.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::backend::{DropletBackend, DropletRequest, FailureKind, Outcome, SampleBackend};
use chat_orchestrator::config::{self, CompiledConfig, ConfigFiles};
use chat_orchestrator::engine::{BackendFactory, Engine, Reply, Turn};
use chat_orchestrator::session::{Channel, MemoryStore, SessionLimits};
use futures::future::BoxFuture;
use serde::Deserialize;

/// The configuration in this repository, read from disk as the server reads it.
pub fn repo_files() -> ConfigFiles {
    ConfigFiles::from_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("repository configuration is readable")
}

/// The shipped configuration, compiled once per test binary (it is immutable).
pub fn compiled() -> Arc<CompiledConfig> {
    static COMPILED: std::sync::OnceLock<Arc<CompiledConfig>> = std::sync::OnceLock::new();
    COMPILED
        .get_or_init(|| match config::load(&repo_files()) {
            Ok(compiled) => Arc::new(compiled),
            Err(error) => panic!("shipped configuration does not load:\n{}", error.render()),
        })
        .clone()
}

/// How a faked droplet answers one call.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub droplet: i64,
    pub endpoint: String,
    pub outcome: FaultKind,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Never answers: the engine's timeout must cut it off.
    Timeout,
    Unreachable,
    Refused,
    /// Relayed by the Orchestrator, no answer came back (MESH.md §6.4).
    Dispatched,
}

/// The bundled sample data, except for the calls a test makes fail.
pub struct FaultyBackend {
    inner: SampleBackend,
    faults: Vec<Fault>,
}

impl DropletBackend for FaultyBackend {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        let fault = self
            .faults
            .iter()
            .find(|f| f.droplet == request.droplet_id && f.endpoint == request.endpoint)
            .map(|f| f.outcome);
        match fault {
            None => self.inner.call(request),
            Some(FaultKind::Timeout) => Box::pin(async {
                // longer than any call's timeout: the engine must give up on its own
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Outcome::Data(serde_json::json!({"late": true}))
            }),
            Some(FaultKind::Unreachable) => Box::pin(async move {
                Outcome::Failed {
                    kind: FailureKind::Unreachable,
                    message: format!("The {} could not be reached.", request.droplet_name),
                }
            }),
            Some(FaultKind::Refused) => Box::pin(async move {
                Outcome::Failed {
                    kind: FailureKind::Refused,
                    message: format!("The {} refused the request (HTTP 502).", request.droplet_name),
                }
            }),
            Some(FaultKind::Dispatched) => Box::pin(async {
                Outcome::Dispatched { relay_trace_id: "00000000-0000-4000-8000-000000000000".to_owned() }
            }),
        }
    }
}

pub fn engine_with(config: Arc<CompiledConfig>, faults: Vec<Fault>, limits: SessionLimits) -> Engine {
    engine_and_store(config, faults, limits).0
}

/// An engine and its session store, for tests that look at what was stored.
pub fn engine_and_store(
    config: Arc<CompiledConfig>,
    faults: Vec<Fault>,
    limits: SessionLimits,
) -> (Engine, Arc<MemoryStore>) {
    let factory: BackendFactory = Box::new(move |config| {
        let inner = SampleBackend::new(config.catalogue.clone(), config.templates.clone());
        Arc::new(FaultyBackend { inner, faults: faults.clone() })
    });
    let store = Arc::new(MemoryStore::new(limits));
    (Engine::new(config, factory, store.clone(), limits.max_history), store)
}

pub fn engine(faults: Vec<Fault>) -> Engine {
    engine_with(compiled(), faults, SessionLimits::default())
}

pub async fn say(engine: &Engine, session: &str, channel: Channel, text: &str) -> Reply {
    engine
        .handle(Turn {
            session_id: Some(session.to_owned()),
            channel,
            text: text.to_owned(),
            metadata: Default::default(),
            trace_id: "test-trace".to_owned(),
        })
        .await
        .expect("the memory store never fails")
}
