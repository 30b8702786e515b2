//! The UDC endpoints every droplet serves (MESH.md §3): `/health` (public, from memory, no
//! outbound call), and `/capabilities`, `/state`, `/dependencies`, `/version` behind the mesh's
//! bearer token. Shapes follow the fixtures in `shared/contracts/fixtures/`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::{ErrorBody, ErrorCode};
use super::ApiTags;
use crate::auth::{AuthError, Caller};
use crate::engine::Engine;
use crate::stats::{rss_mb, Stats};
use crate::util::utc_timestamp;

/// What `/health` reports, kept current in the background so the endpoint does no work.
pub struct Health {
    store_ok: AtomicBool,
    /// The Orchestrator's `/health` at the last probe; `None` when none is configured.
    orchestrator_ok: std::sync::Mutex<Option<bool>>,
    /// The Registry's `/health` at the last probe; `None` when `REGISTRY_URL` is not set.
    registry_ok: std::sync::Mutex<Option<bool>>,
    /// Set while the server drains before exiting.
    pub draining: AtomicBool,
    /// Said on every `/health` answer (e.g. authentication is off).
    pub warnings: Vec<String>,
}

impl Health {
    pub fn new(warnings: Vec<String>) -> Self {
        Health {
            store_ok: AtomicBool::new(true),
            orchestrator_ok: std::sync::Mutex::new(None),
            registry_ok: std::sync::Mutex::new(None),
            draining: AtomicBool::new(false),
            warnings,
        }
    }

    pub fn store_ok(&self) -> bool {
        self.store_ok.load(Ordering::Relaxed)
    }

    /// `Some(reachable)` when an Orchestrator is configured.
    pub fn orchestrator_ok(&self) -> Option<bool> {
        *self.orchestrator_ok.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Some(reachable)` when a Registry is configured.
    pub fn registry_ok(&self) -> Option<bool> {
        *self.registry_ok.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Probes the Orchestrator's `GET {base}/health` every `every`; `/dependencies` reads the
    /// last answer.
    pub fn spawn_orchestrator_probe(
        self: &Arc<Self>,
        base_url: String,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_probe(base_url, every, |health| &health.orchestrator_ok)
    }

    /// Probes the Registry's `GET {base}/health` every `every`.
    pub fn spawn_registry_probe(self: &Arc<Self>, base_url: String, every: Duration) -> tokio::task::JoinHandle<()> {
        self.spawn_probe(base_url, every, |health| &health.registry_ok)
    }

    fn spawn_probe(
        self: &Arc<Self>,
        base_url: String,
        every: Duration,
        slot: fn(&Health) -> &std::sync::Mutex<Option<bool>>,
    ) -> tokio::task::JoinHandle<()> {
        let health = Arc::downgrade(self);
        let http = crate::util::outgoing_http(Some(Duration::from_secs(3)));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                let url = format!("{}/health", base_url.trim_end_matches('/'));
                let ok = http.get(&url).send().await.is_ok_and(|r| r.status().is_success());
                let Some(health) = health.upgrade() else { break };
                *slot(&health).lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(ok);
            }
        })
    }

    /// Pings the session store every `every`; `/health` reads the last answer.
    pub fn spawn_store_check(self: &Arc<Self>, engine: Arc<Engine>, every: Duration) -> tokio::task::JoinHandle<()> {
        let health = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                let ok = tokio::time::timeout(Duration::from_secs(2), engine.sessions().ping())
                    .await
                    .is_ok_and(|r| r.is_ok());
                let Some(health) = health.upgrade() else { break };
                if health.store_ok.swap(ok, Ordering::Relaxed) != ok {
                    if ok {
                        tracing::info!("session store reachable again");
                    } else {
                        tracing::error!("session store unreachable: /health reports error");
                    }
                }
            }
        })
    }
}

/// The build and deployment this process is.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub environment: String,
    pub deployed_by: String,
}

/// `Authorization: Bearer <jwt>` signed by the Registry (RS256; MESH.md §4).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_mesh_token")]
pub struct MeshAuth(pub Caller);

async fn check_mesh_token(request: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let verifier = request.data::<Arc<super::AppState>>().map(|state| &state.verifier).ok_or_else(|| {
        poem::Error::from_string("no verifier configured", poem::http::StatusCode::INTERNAL_SERVER_ERROR)
    })?;
    verifier
        .verify(Some(&bearer.token))
        .map_err(|error: AuthError| poem::Error::from_string(error.to_string(), poem::http::StatusCode::UNAUTHORIZED))
}

/// `/health`: identity, status and proof (the fixture `health_response.json`).
#[derive(Debug, Object)]
pub struct HealthBody {
    pub id: i64,
    pub name: String,
    pub steward: String,
    /// `active` (taking turns), `inactive` (draining before exit) or `error` (a required part —
    /// the session store — is broken).
    pub status: String,
    pub endpoint: String,
    /// sha256 hex of `"{id}:{updated_at}"`.
    pub proof: String,
    pub cost_usd: f64,
    pub yield_usd: f64,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// Things an operator must know, e.g. that authentication is off.
    #[oai(skip_serializing_if_is_empty)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Object)]
pub struct CapabilitiesBody {
    pub version: String,
    pub features: Vec<String>,
    /// Names of the droplets this one needs.
    pub dependencies: Vec<String>,
    pub udc_version: String,
    /// `build_date`, `commit_hash`, `supported_sources`.
    pub metadata: Value,
}

#[derive(Debug, Object)]
pub struct StateBody {
    /// CPU use of this process, percent of one core, sampled every few seconds.
    pub cpu_percent: f64,
    /// Resident memory.
    pub memory_mb: u64,
    pub uptime_seconds: u64,
    pub requests_total: u64,
    pub requests_per_minute: u64,
    /// Responses with a 5xx status in the last hour.
    pub errors_last_hour: u64,
    /// When this process started (RFC 3339 UTC).
    pub last_restart: String,
}

#[derive(Debug, Object)]
pub struct DependencyStatus {
    pub id: i64,
    pub name: String,
    /// `connected`, `available` or `unavailable`.
    pub status: String,
}

#[derive(Debug, Object)]
pub struct DependenciesBody {
    pub required: Vec<DependencyStatus>,
    pub optional: Vec<DependencyStatus>,
    /// Names of required droplets that cannot be used.
    pub missing: Vec<String>,
    /// Where droplet data comes from (`fallback-data`: the bundled samples, no mesh configured).
    pub backend: String,
    /// The session store: `{kind: memory|redis, status}`.
    pub session_store: Value,
    /// Registration and heartbeats with the Registry and the Orchestrator; absent when neither
    /// is configured.
    pub lifecycle: Option<crate::lifecycle::LifecycleState>,
    /// The language model: provider, model, how the last call went, calls and tokens by
    /// purpose; absent when none is configured (rules answer alone).
    pub llm: Option<Box<crate::llm::LlmStats>>,
}

#[derive(Debug, Object)]
pub struct VersionBody {
    pub version: String,
    pub build_date: String,
    pub commit_hash: String,
    pub environment: String,
    pub deployed_by: String,
}

macro_rules! guarded_response {
    ($name:ident, $handler:ident, $handler_name:literal, $ok:ty) => {
        #[derive(ApiResponse)]
        #[oai(bad_request_handler = $handler_name)]
        pub enum $name {
            #[oai(status = 200)]
            Ok(Json<$ok>),
            /// Missing or invalid bearer token (RS256, signed by the Registry).
            #[oai(status = 401)]
            Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
        }

        fn $handler(error: poem::Error) -> $name {
            $name::Unauthorized(
                Json(ErrorBody::new(ErrorCode::Unauthorized, error.to_string(), json!({}))),
                "Bearer".to_owned(),
            )
        }
    };
}

guarded_response!(CapabilitiesResponse, capabilities_auth, "capabilities_auth", CapabilitiesBody);
guarded_response!(StateResponse, state_auth, "state_auth", StateBody);
guarded_response!(DependenciesResponse, dependencies_auth, "dependencies_auth", DependenciesBody);
guarded_response!(VersionResponse, version_auth, "version_auth", VersionBody);

pub struct UdcApi {
    pub engine: Arc<Engine>,
    pub health: Arc<Health>,
    pub stats: Arc<Stats>,
    pub deployment: Deployment,
    pub lifecycle: Option<Arc<crate::lifecycle::Lifecycle>>,
}

const BUILD_DATE: &str = env!("CHAT_ORCHESTRATOR_BUILD_DATE");
const COMMIT_HASH: &str = env!("CHAT_ORCHESTRATOR_COMMIT");

#[OpenApi]
impl UdcApi {
    /// Health (public): answered from memory, no outbound call.
    #[oai(path = "/health", method = "get", tag = "ApiTags::Udc")]
    async fn health(&self) -> Json<HealthBody> {
        let runtime = self.engine.runtime();
        let me = &runtime.config.identity;
        let status = if self.health.draining.load(Ordering::Relaxed) {
            "inactive"
        } else if !self.health.store_ok() {
            "error"
        } else {
            "active"
        };
        let updated_at = utc_timestamp();
        let proof = hex::encode(Sha256::digest(format!("{}:{updated_at}", me.id)));
        let mut warnings = self.health.warnings.clone();
        if !self.health.store_ok() {
            warnings.push(format!("the {} session store is unreachable", self.engine.sessions().kind()));
        }
        Json(HealthBody {
            id: me.id,
            name: me.name.clone(),
            steward: me.steward.clone(),
            status: status.to_owned(),
            endpoint: me.endpoint.clone(),
            proof,
            cost_usd: 0.0,
            yield_usd: 0.0,
            updated_at,
            warnings,
        })
    }

    /// What this droplet can do.
    #[oai(path = "/capabilities", method = "get", tag = "ApiTags::Udc")]
    async fn capabilities(&self, _auth: MeshAuth) -> CapabilitiesResponse {
        let runtime = self.engine.runtime();
        let me = &runtime.config.identity;
        let names =
            me.required.iter().filter_map(|id| runtime.config.catalogue.by_id(*id)).map(|d| d.key.clone()).collect();
        CapabilitiesResponse::Ok(Json(CapabilitiesBody {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            features: me.features.clone(),
            dependencies: names,
            udc_version: me.udc_version.clone(),
            metadata: json!({"build_date": BUILD_DATE, "commit_hash": COMMIT_HASH, "supported_sources": me.supported_sources}),
        }))
    }

    /// Process figures: CPU, memory, uptime, request and error counts.
    #[oai(path = "/state", method = "get", tag = "ApiTags::Udc")]
    async fn state(&self, _auth: MeshAuth) -> StateResponse {
        StateResponse::Ok(Json(StateBody {
            cpu_percent: self.stats.cpu_percent(),
            memory_mb: rss_mb(),
            uptime_seconds: self.stats.uptime().as_secs(),
            requests_total: self.stats.requests_total(),
            requests_per_minute: self.stats.requests_last_minute(),
            errors_last_hour: self.stats.errors_last_hour(),
            last_restart: self.stats.started_at.clone(),
        }))
    }

    /// The droplets this one depends on, and how reachable they are.
    #[oai(path = "/dependencies", method = "get", tag = "ApiTags::Udc")]
    async fn dependencies(&self, _auth: MeshAuth) -> DependenciesResponse {
        let runtime = self.engine.runtime();
        let config = &runtime.config;
        // droplets are reached through the Orchestrator: when it answers its /health, it is
        // `connected` and the others `available`; without one (bundled samples) nothing is. The
        // Registry, when configured, is probed itself.
        let orchestrator_up = self.health.orchestrator_ok() == Some(true);
        let registry_probe = self.health.registry_ok();
        let status_of = |id: &i64| DependencyStatus {
            id: *id,
            name: config.catalogue.by_id(*id).map(|d| d.name.clone()).unwrap_or_else(|| format!("droplet {id}")),
            status: match (*id, registry_probe, orchestrator_up) {
                (1, Some(true), _) | (10, _, true) => "connected",
                (1, Some(false), _) => "unavailable",
                (_, _, true) => "available",
                _ => "unavailable",
            }
            .to_owned(),
        };
        let required: Vec<DependencyStatus> = config.identity.required.iter().map(status_of).collect();
        let missing = required
            .iter()
            .filter(|d| d.status == "unavailable")
            .filter_map(|d| config.catalogue.by_id(d.id).map(|droplet| droplet.key.clone()))
            .collect();
        DependenciesResponse::Ok(Json(DependenciesBody {
            optional: config.identity.optional.iter().map(status_of).collect(),
            required,
            missing,
            backend: self.engine.backend().name().to_owned(),
            session_store: json!({
                "kind": self.engine.sessions().kind(),
                "status": if self.health.store_ok() { "connected" } else { "unavailable" },
            }),
            lifecycle: self.lifecycle.as_ref().map(|lifecycle| lifecycle.state()),
            llm: self.engine.llm().map(|llm| Box::new(llm.stats())),
        }))
    }

    /// Build and deployment.
    #[oai(path = "/version", method = "get", tag = "ApiTags::Udc")]
    async fn version(&self, _auth: MeshAuth) -> VersionResponse {
        VersionResponse::Ok(Json(VersionBody {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            build_date: BUILD_DATE.to_owned(),
            commit_hash: COMMIT_HASH.to_owned(),
            environment: self.deployment.environment.clone(),
            deployed_by: self.deployment.deployed_by.clone(),
        }))
    }
}
