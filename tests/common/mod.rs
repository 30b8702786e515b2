//! Shared test harness: the shipped configuration and engines over it.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::backend::{DropletBackend, DropletRequest, Outcome, SampleBackend};
use chat_orchestrator::config::{self, CompiledConfig, ConfigFiles};
use chat_orchestrator::engine::{BackendFactory, Engine, Reply, Turn};
use chat_orchestrator::fixture::{Fault, FaultInjector};
use chat_orchestrator::session::{Channel, MemoryStore, SessionLimits};
use futures::future::BoxFuture;

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

/// An engine and its session store, for tests that look at what was stored.
pub fn engine_and_store(
    config: Arc<CompiledConfig>,
    factory: BackendFactory,
    limits: SessionLimits,
) -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(limits));
    (Engine::new(config, factory, store.clone()), store)
}

pub fn engine_with(config: Arc<CompiledConfig>, faults: Vec<Fault>, limits: SessionLimits) -> Engine {
    engine_and_store(config, FaultInjector::factory(faults), limits).0
}

pub fn engine(faults: Vec<Fault>) -> Engine {
    engine_with(compiled(), faults, SessionLimits::default())
}

/// A droplet that is slow on one endpoint: it answers after `delay` (an hour: never, so the
/// engine's own timeout must end the call).
pub struct Slow {
    inner: SampleBackend,
    droplet: i64,
    endpoint: String,
    delay: Duration,
}

impl Slow {
    pub fn factory(droplet: i64, endpoint: &str, delay: Duration) -> BackendFactory {
        let endpoint = endpoint.to_owned();
        Box::new(move |config| {
            let inner = SampleBackend::new(config.catalogue.clone(), config.templates.clone());
            Arc::new(Slow { inner, droplet, endpoint: endpoint.clone(), delay })
        })
    }
}

/// A droplet that never answers one endpoint.
pub struct Hanging;

impl Hanging {
    pub fn factory(droplet: i64, endpoint: &str) -> BackendFactory {
        Slow::factory(droplet, endpoint, Duration::from_secs(3600))
    }
}

impl DropletBackend for Slow {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        if request.droplet_id == self.droplet && request.endpoint == self.endpoint {
            let delay = self.delay;
            let inner = self.inner.call(request);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                inner.await
            })
        } else {
            self.inner.call(request)
        }
    }
}

pub async fn say(engine: &Engine, session: &str, channel: Channel, text: &str) -> Reply {
    engine
        .handle(Turn {
            session_id: Some(session.to_owned()),
            channel,
            text: text.to_owned(),
            metadata: Default::default(),
            trace_id: "test-trace".to_owned(),
            preview_other_channel: false,
        })
        .await
        .expect("the memory store never fails")
}
