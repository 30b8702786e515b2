//! Registration and heartbeats against a fake Registry and a fake Orchestrator that speak the
//! mesh's wire formats (MESH.md §5), including a token refresh on 401 and a re-registration
//! after a 404; and leaving on shutdown.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_orchestrator::credentials::{OrchestratorCredentials, RegistryCredentials};
use chat_orchestrator::lifecycle::{Lifecycle, LifecycleConfig};
use chat_orchestrator::stats::Stats;
use poem::web::{Data, Json};
use poem::{handler, EndpointExt, IntoResponse, Route};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Value>>>,
    /// Statuses to answer next on a path, before answering normally.
    scripted: Arc<Mutex<Vec<(String, u16)>>>,
    tokens_issued: Arc<Mutex<u32>>,
}

#[handler]
async fn everything(request: &poem::Request, body: poem::Body, Data(fake): Data<&Fake>) -> poem::Response {
    let path = request.uri().path().to_owned();
    let body: Value = serde_json::from_slice(&body.into_bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    fake.calls.lock().expect("lock").push(json!({
        "path": path, "query": request.uri().query(), "body": body,
        "authorization": request.header("authorization"), "registry_key": request.header("x-registry-key"),
        "trace": request.header("x-trace-id"),
    }));
    let scripted = {
        let mut scripted = fake.scripted.lock().expect("lock");
        scripted.iter().position(|(p, _)| *p == path).map(|i| scripted.remove(i).1)
    };
    if let Some(status) = scripted {
        return Json(json!({"detail": "scripted"}))
            .with_status(poem::http::StatusCode::from_u16(status).expect("status"))
            .into_response();
    }
    match path.as_str() {
        "/auth/token" => {
            let mut issued = fake.tokens_issued.lock().expect("lock");
            *issued += 1;
            // the Registry answers `token`; droplet 10's /auth/token answers `access_token`
            Json(json!({"token": format!("registry-token-{issued}"), "droplet_id": "12", "algorithm": "RS256",
                        "access_token": format!("orchestrator-token-{issued}"), "token_type": "bearer", "expires_in": 86400}))
            .into_response()
        }
        "/droplets/register" => {
            Json(json!({"payload": {"status": "new"}})).with_status(poem::http::StatusCode::CREATED).into_response()
        }
        _ => Json(json!({"status": "ok"})).into_response(),
    }
}

async fn start(fake: Fake) -> (String, tokio::sync::oneshot::Sender<()>) {
    common::serve_fake(Route::new().at("/*path", poem::post(everything).get(everything)).data(fake)).await
}

fn identity() -> chat_orchestrator::identity::Identity {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = chat_orchestrator::config::ConfigFiles::from_dir(root).expect("readable");
    chat_orchestrator::config::load(&files).expect("valid").identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_heartbeats_recovers_and_leaves() {
    let fake = Fake::default();
    // the first Registry heartbeat meets an expired token; the first Orchestrator heartbeat
    // finds us forgotten
    fake.scripted
        .lock()
        .expect("lock")
        .extend([("/registry/heartbeat".to_owned(), 401), ("/droplets/12/heartbeat".to_owned(), 404)]);
    let (base, _stop) = start(fake.clone()).await;
    let lifecycle = Lifecycle::new(
        LifecycleConfig {
            registry_credentials: Some(Arc::new(RegistryCredentials::new(
                &base,
                12,
                Some("test-registry-key".to_owned()),
                Duration::from_secs(2),
            ))),
            orchestrator_url: Some(base.clone()),
            orchestrator_credentials: Arc::new(OrchestratorCredentials::Static("test-orchestrator-token".to_owned())),
            identity: identity(),
            registry_heartbeat: Duration::from_millis(60),
            orchestrator_heartbeat: Duration::from_millis(60),
            backoff: Duration::from_millis(20),
            registry_timeout: Duration::from_secs(2),
            orchestrator_timeout: Duration::from_secs(2),
        },
        Arc::new(Stats::new()),
    );
    lifecycle.spawn();
    tokio::time::sleep(Duration::from_millis(700)).await;
    lifecycle.leave().await;

    let calls = fake.calls.lock().expect("lock").clone();
    let paths: Vec<&str> = calls.iter().filter_map(|c| c["path"].as_str()).collect();
    let first =
        |path: &str| calls.iter().find(|c| c["path"] == path).unwrap_or_else(|| panic!("no call to {path}: {paths:?}"));

    let token = first("/auth/token");
    assert_eq!(
        (token["query"].as_str(), token["registry_key"].as_str()),
        (Some("droplet_id=12"), Some("test-registry-key"))
    );

    let register = first("/registry/register");
    assert_eq!(register["authorization"], "Bearer registry-token-1");
    assert_eq!(register["registry_key"], "test-registry-key");
    assert_eq!(
        (register["body"]["id"].as_str(), register["body"]["fqdn"].as_str()),
        (Some("droplet-12"), Some("drop12.fullpotential.ai"))
    );

    // the 401 made it fetch a second token and retry the heartbeat with it
    let heartbeats: Vec<&Value> = calls.iter().filter(|c| c["path"] == "/registry/heartbeat").collect();
    assert!(heartbeats.len() >= 2, "{paths:?}");
    assert_eq!(heartbeats[1]["authorization"], "Bearer registry-token-2");
    assert_eq!(heartbeats[1]["body"]["status"], "active");

    let orch_register = first("/droplets/register");
    assert_eq!(orch_register["authorization"], "Bearer test-orchestrator-token");
    assert_eq!(orch_register["body"]["message_type"], "command");
    assert_eq!(orch_register["body"]["payload"]["droplet_id"], 12, "an integer, as droplet 10 checks it");
    assert_eq!(orch_register["body"]["payload"]["endpoint"], "https://drop12.fullpotential.ai");
    // the 404 on the heartbeat led to a second registration
    assert!(paths.iter().filter(|p| **p == "/droplets/register").count() >= 2, "{paths:?}");
    let beat = first("/droplets/12/heartbeat");
    assert_eq!(beat["body"]["message_type"], "command", "never `heartbeat`, which droplet 10 refuses");
    assert!(beat["body"]["payload"]["metrics"]["memory_mb"].as_u64().is_some_and(|m| m > 0));

    // leaving: deactivate at the Orchestrator, then the best-effort deregister
    assert!(paths.contains(&"/droplets/12/deactivate"), "{paths:?}");
    assert_eq!(first("/deregister")["body"], json!({"id": "droplet-12", "reason": "graceful_shutdown"}));
    let state = lifecycle.state();
    assert!(state.registry_registered && state.orchestrator_registered, "{state:?}");
}

#[tokio::test]
async fn an_unreachable_mesh_never_blocks_and_is_retried() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let lifecycle = Lifecycle::new(
        LifecycleConfig {
            registry_credentials: Some(Arc::new(RegistryCredentials::new(
                &format!("http://{dead}"),
                12,
                None,
                Duration::from_secs(2),
            ))),
            orchestrator_url: Some(format!("http://{dead}")),
            orchestrator_credentials: Arc::new(OrchestratorCredentials::None),
            identity: identity(),
            registry_heartbeat: Duration::from_secs(30),
            orchestrator_heartbeat: Duration::from_secs(60),
            backoff: Duration::from_millis(20),
            registry_timeout: Duration::from_secs(2),
            orchestrator_timeout: Duration::from_secs(2),
        },
        Arc::new(Stats::new()),
    );
    let started = std::time::Instant::now();
    lifecycle.spawn(); // returns at once
    assert!(started.elapsed() < Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = lifecycle.state();
    assert!(!state.registry_registered && !state.orchestrator_registered);
    assert!(state.last_error.is_some_and(|e| e.contains("unreachable")));
    let leaving = std::time::Instant::now();
    lifecycle.leave().await;
    assert!(leaving.elapsed() <= Duration::from_millis(2500), "leaving is bounded");
}

#[tokio::test]
async fn orchestrator_tokens_can_be_minted_or_fetched() {
    // fetched: POST /auth/token {droplet_id, secret_key}, cached until an hour before expiry
    let fake = Fake::default();
    let (base, _stop) = start(fake.clone()).await;
    let fetched = OrchestratorCredentials::fetch(&base, 12, "orchestrator-secret", Duration::from_secs(2));
    assert_eq!(fetched.token(false).await.expect("token").as_deref(), Some("orchestrator-token-1"));
    assert_eq!(fetched.token(false).await.expect("cached").as_deref(), Some("orchestrator-token-1"));
    assert_eq!(fetched.token(true).await.expect("renewed").as_deref(), Some("orchestrator-token-2"));
    let calls = fake.calls.lock().expect("lock").clone();
    assert_eq!(calls[0]["body"], json!({"droplet_id": 12, "secret_key": "orchestrator-secret"}));

    // minted: RS256 with our private key; droplet_id is the integer droplet 10 compares
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("orchestrator.key");
    let public = dir.path().join("orchestrator.pub");
    assert!(std::process::Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl")
        .status
        .success());
    assert!(std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl")
        .status
        .success());
    let minted = OrchestratorCredentials::mint(key.to_str().expect("utf-8"), 12, "chat-team").expect("a private key");
    let token = minted.token(false).await.expect("signed").expect("a token");
    let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(&std::fs::read(&public).expect("read")).expect("public key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("verifies").claims;
    assert_eq!((claims["droplet_id"].as_i64(), claims["steward"].as_str()), (Some(12), Some("chat-team")));
    assert!(OrchestratorCredentials::mint("-----BEGIN PRIVATE KEY-----\\nnope\\n-----END PRIVATE KEY-----", 12, "x")
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_show_the_registry_probe_and_the_lifecycle() {
    use chat_orchestrator::api::AppState;
    use chat_orchestrator::backend::SampleBackend;
    use chat_orchestrator::engine::Engine;
    use chat_orchestrator::session::{MemoryStore, SessionLimits};

    let fake = Fake::default();
    let (base, _stop) = start(fake.clone()).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let mut answers = Vec::new();
    for registry in [base.clone(), format!("http://{dead}")] {
        let lifecycle = Lifecycle::new(
            LifecycleConfig {
                registry_credentials: Some(Arc::new(RegistryCredentials::new(
                    &registry,
                    12,
                    Some("test-registry-key".to_owned()),
                    Duration::from_secs(2),
                ))),
                orchestrator_url: None,
                orchestrator_credentials: Arc::new(OrchestratorCredentials::None),
                identity: identity(),
                registry_heartbeat: Duration::from_secs(30),
                orchestrator_heartbeat: Duration::from_secs(60),
                backoff: Duration::from_millis(50),
                registry_timeout: Duration::from_secs(2),
                orchestrator_timeout: Duration::from_secs(2),
            },
            Arc::new(Stats::new()),
        );
        lifecycle.spawn();
        let engine = Engine::new(
            common::compiled(),
            Arc::new(SampleBackend),
            Arc::new(MemoryStore::new(SessionLimits::default())),
        );
        let mut state = AppState::new(Arc::new(engine), None, None);
        state.health.spawn_registry_probe(registry, Duration::from_millis(50));
        state.lifecycle = Some(lifecycle);
        let ours = common::Running::start(state).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        answers.push(ours.get_json("/dependencies").await);
    }
    let registry_status = |answer: &Value| {
        answer["required"].as_array().and_then(|r| r.iter().find(|d| d["id"] == 1)).map(|d| d["status"].clone())
    };
    let (up, down) = (&answers[0], &answers[1]);
    assert_eq!(registry_status(up), Some(json!("connected")), "{up}");
    assert_eq!(up["lifecycle"]["registry_registered"], true, "{up}");
    assert_eq!(registry_status(down), Some(json!("unavailable")), "{down}");
    assert_eq!(down["lifecycle"]["registry_registered"], false, "{down}");
    assert!(down["lifecycle"]["last_error"].as_str().unwrap_or_default().starts_with("registry:"), "{down}");
    assert!(down["missing"].as_array().is_some_and(|m| m.contains(&json!("registry"))), "{down}");
}
