//! The HTTP surface, declared with poem-openapi so the OpenAPI document is generated from the
//! same types the handlers use. Handlers translate HTTP to engine calls and back; they hold no
//! conversation logic.

pub mod admin;
mod analyze;
mod chat;
pub mod error;
pub mod frames;
pub mod limits;
mod mesh;
pub mod metrics;
pub mod playground;
mod process;
pub mod rate_limit;
mod sessions;
pub mod text;
pub mod udc;
pub mod validate;
pub mod ws;

use std::path::PathBuf;
use std::sync::Arc;

use poem_openapi::{OpenApiService, Tags};

pub use admin::{AdminApi, AdminToken};
pub use chat::ChatApi;
pub use playground::PlaygroundApi;
pub use sessions::SessionsApi;

use crate::engine::Engine;
use crate::reload::Reloader;

#[derive(Tags)]
pub enum ApiTags {
    /// Talking to the assistant.
    Chat,
    /// Running configuration and reloads (bearer `ADMIN_TOKEN`).
    Admin,
    /// Stored conversations (bearer `ADMIN_TOKEN`).
    Sessions,
    /// The endpoints every droplet of the mesh serves (MESH.md §3).
    Udc,
}

/// What the endpoints share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub reloader: Arc<Reloader>,
    pub admin_token: AdminToken,
    /// Flips to `true` when the server starts shutting down, so WebSockets close cleanly.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    pub ws_timing: ws::WsTiming,
    pub rate_limits: rate_limit::RateLimits,
    /// Checks the mesh's bearer tokens (or lets everything through in development).
    pub verifier: Arc<crate::auth::Verifier>,
    pub health: Arc<udc::Health>,
    pub stats: Arc<crate::stats::Stats>,
    pub deployment: udc::Deployment,
    /// Queries waiting for a relayed answer (fed by `POST /message`).
    pub waiters: Arc<crate::mesh::Waiters>,
    /// The Orchestrator, when `ORCHESTRATOR_URL` is set.
    pub orchestrator: Option<crate::mesh::OrchestratorClient>,
    /// Registration and heartbeats, shown by `/dependencies`.
    pub lifecycle: Option<Arc<crate::lifecycle::Lifecycle>>,
    /// `METRICS_TOKEN`: a static bearer token Prometheus may scrape `/metrics` with.
    pub metrics_token: Option<Arc<str>>,
    /// `MESH_RELAY_ALLOW`: where unauthenticated relays to `/message` may come from.
    pub relay_allow: Arc<[ipnet::IpNet]>,
    /// Header-read and idle timeouts and the bound on open connections.
    pub connection_limits: crate::connections::ConnectionLimits,
    /// The open connections, for the middleware that tells each when it is being answered.
    pub connections: Arc<crate::connections::Registry>,
}

impl AppState {
    /// `config_root` is where reloads read the configuration (`None`: the embedded copy).
    pub fn new(engine: Arc<Engine>, config_root: Option<PathBuf>, admin_token: Option<String>) -> Self {
        let reloader = Arc::new(Reloader::new(engine.clone(), config_root));
        AppState {
            engine,
            reloader,
            admin_token: AdminToken(admin_token.map(Arc::from)),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            ws_timing: ws::WsTiming::default(),
            rate_limits: rate_limit::RateLimits::seed_defaults(),
            verifier: Arc::new(crate::auth::Verifier::Open),
            health: Arc::new(udc::Health::new(Vec::new())),
            stats: Arc::new(crate::stats::Stats::new()),
            deployment: udc::Deployment { environment: "development".to_owned(), deployed_by: "unknown".to_owned() },
            waiters: Arc::new(crate::mesh::Waiters::default()),
            orchestrator: None,
            lifecycle: None,
            metrics_token: None,
            relay_allow: Arc::from(Vec::new()),
            connection_limits: crate::connections::ConnectionLimits::default(),
            connections: Arc::default(),
        }
    }
}

/// The documented API. `spec()` on it prints the OpenAPI document without serving.
#[allow(clippy::type_complexity)]
pub fn service(
    state: &AppState,
) -> OpenApiService<
    (
        ChatApi,
        analyze::AnalyzeApi,
        AdminApi,
        SessionsApi,
        PlaygroundApi,
        udc::UdcApi,
        process::ProcessApi,
        mesh::MeshApi,
    ),
    (),
> {
    let apis = (
        ChatApi { engine: state.engine.clone(), limit: state.rate_limits.chat.clone() },
        analyze::AnalyzeApi { engine: state.engine.clone(), limit: state.rate_limits.chat.clone() },
        AdminApi { reloader: state.reloader.clone() },
        SessionsApi { sessions: state.engine.sessions().clone() },
        PlaygroundApi {
            reloader: state.reloader.clone(),
            development: state.deployment.environment == "development",
            secured: !state.verifier.is_open(),
        },
        udc::UdcApi {
            engine: state.engine.clone(),
            health: state.health.clone(),
            stats: state.stats.clone(),
            deployment: state.deployment.clone(),
            lifecycle: state.lifecycle.clone(),
        },
        process::ProcessApi { engine: state.engine.clone(), limit: state.rate_limits.process.clone() },
        mesh::MeshApi {
            engine: state.engine.clone(),
            verifier: state.verifier.clone(),
            waiters: state.waiters.clone(),
            orchestrator: state.orchestrator.clone(),
            relay_allow: state.relay_allow.clone(),
            limit: state.rate_limits.relay.clone(),
        },
    );
    OpenApiService::new(apis, "Chat Orchestrator (droplet 12)", env!("CARGO_PKG_VERSION")).description(
        "A declarative conversation engine: stewards describe each intent as a YAML pipeline \
         and write replies as templates; this API runs them.",
    )
}
