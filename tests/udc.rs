//! The UDC endpoints and bearer-token checks, over real HTTP, with RSA keys generated for this
//! test run (never real keys): every bad-token case gets 401 and nothing runs.

use crate::common;

use common::keys::{key_pair, keys_verifier, now, registry_claims, sign, AUDIENCE, ISSUER};

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use chat_orchestrator::api::AppState;
use chat_orchestrator::auth::{load_public_key, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

type Server = common::Running;

async fn start(verifier: Verifier) -> Server {
    let mut state = AppState::new(Arc::new(common::engine(vec![])), None, None);
    state.verifier = Arc::new(verifier);
    Server::start(state).await
}

trait Get {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Option<String>, Value);
}

impl Get for Server {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (status, challenge, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn health_is_public_and_shaped_like_the_fixture() {
    let server = start(Verifier::Open).await;
    let (status, _, health) = server.get("/health", None).await;
    assert_eq!(status, 200);
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/mesh/health_response.json")).expect("fixture is JSON");
    for key in ["id", "name", "steward", "status", "endpoint", "proof", "cost_usd", "yield_usd", "updated_at"] {
        assert!(health.get(key).is_some(), "missing {key}: {health}");
        if let Some(expected) = fixture.get(key) {
            assert_eq!(
                std::mem::discriminant(&health[key]),
                std::mem::discriminant(expected),
                "{key} has the fixture's type"
            );
        }
    }
    assert_eq!((health["id"].as_i64(), health["status"].as_str()), (Some(12), Some("active")));
    // development mode: the guarded endpoints answer without a token
    assert_eq!(server.get("/version", None).await.0, 200);
    let expected_proof = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(format!("12:{}", health["updated_at"].as_str().unwrap_or_default())))
    };
    assert_eq!(health["proof"], expected_proof.as_str());
}

#[tokio::test]
async fn a_valid_registry_token_opens_the_udc_endpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(dir.path(), "registry");
    let server = start(keys_verifier(&public)).await;
    let token = sign(&private, registry_claims());
    for path in ["/capabilities", "/state", "/dependencies", "/version"] {
        let (status, _, body) = server.get(path, Some(&token)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, _, capabilities) = server.get("/capabilities", Some(&token)).await;
    assert_eq!(capabilities["udc_version"], "1.0");
    assert_eq!(capabilities["dependencies"], json!(["orchestrator", "registry"]));
    let (_, _, state) = server.get("/state", Some(&token)).await;
    assert!(
        state["memory_mb"].as_u64().is_some_and(|m| m > 0) && state["requests_total"].as_u64().is_some_and(|n| n >= 2),
        "{state}"
    );
    let (_, _, dependencies) = server.get("/dependencies", Some(&token)).await;
    assert_eq!(dependencies["required"][0]["status"], "unavailable", "no mesh is configured: said honestly");
    assert_eq!(dependencies["backend"], "fallback-data");
    // a path-style key file works too
    let file = dir.path().join("registry.pub");
    assert!(load_public_key("REGISTRY_PUBLIC_KEY", file.to_str().expect("utf-8")).is_ok());
    assert!(load_public_key("REGISTRY_PUBLIC_KEY", &public.replace('\n', "\\n")).is_ok(), "\\n-escaped PEM");
}

#[tokio::test]
async fn every_bad_token_gets_401_with_a_bearer_challenge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(dir.path(), "registry");
    let (other_private, _) = key_pair(dir.path(), "impostor");
    let server = start(keys_verifier(&public)).await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = registry_claims();
        change(&mut claims);
        sign(&private, claims)
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("alg none", Some(format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&registry_claims())))),
        (
            "HS256 signed with the public key as secret",
            Some(
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &registry_claims(),
                    &EncodingKey::from_secret(public.as_bytes()),
                )
                .expect("sign"),
            ),
        ),
        ("signed by another key", Some(sign(&other_private, registry_claims()))),
        ("expired", Some(with(&|c| c["exp"] = json!(now() - 3600)))),
        ("not valid yet", Some(with(&|c| c["nbf"] = json!(now() + 3600)))),
        ("no exp", Some(with(&|c| c.as_object_mut().map(|o| o.remove("exp")).map(|_| ()).unwrap_or(())))),
        ("wrong issuer", Some(with(&|c| c["iss"] = json!("someone-else")))),
        ("wrong audience", Some(with(&|c| c["aud"] = json!("udc")))),
        ("no subject", Some(with(&|c| c.as_object_mut().map(|o| o.remove("sub")).map(|_| ()).unwrap_or(())))),
        ("empty subject", Some(with(&|c| c["sub"] = json!("")))),
        ("garbage", Some("not.a.jwt".to_owned())),
    ];
    for (case, token) in cases {
        let (status, challenge, body) = server.get("/state", token.as_deref()).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{case}");
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{case}");
    }
    // and /health stays public
    assert_eq!(server.get("/health", None).await.0, 200);
}

#[tokio::test]
async fn an_orchestrator_token_passes_the_second_anchor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, registry_public) = key_pair(dir.path(), "registry");
    let (orchestrator_private, orchestrator_public) = key_pair(dir.path(), "orchestrator");
    let verifier = Verifier::Keys {
        registry: load_public_key("REGISTRY_PUBLIC_KEY", &registry_public).expect("key"),
        orchestrator: Some(load_public_key("ORCHESTRATOR_PUBLIC_KEY", &orchestrator_public).expect("key")),
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        max_lifetime: chat_orchestrator::auth::DEFAULT_MAX_LIFETIME,
    };
    let caller = verifier
        .verify(Some(&sign(
            &orchestrator_private,
            json!({"droplet_id": 10, "steward": "x", "permissions": ["read"], "iat": now(), "exp": now() + 60}),
        )))
        .expect("orchestrator anchor");
    assert_eq!(caller.droplet, Some(10));
    assert!(
        verifier.verify(Some(&sign(&orchestrator_private, json!({"droplet_id": 10, "exp": now() - 3600})))).is_err(),
        "expired"
    );
}

#[test]
fn production_refuses_to_start_without_a_registry_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-orchestrator"))
        .args(["serve"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ENVIRONMENT", "production")
        .env_remove("REGISTRY_PUBLIC_KEY")
        .env("PORT", "0")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("REGISTRY_PUBLIC_KEY"), "{stderr}");
}

#[tokio::test]
async fn health_reports_error_while_the_session_store_is_down() {
    use chat_orchestrator::session::{RedisStore, SessionLimits};
    let store =
        Arc::new(RedisStore::connect("redis://127.0.0.1:1", "down:", SessionLimits::default()).expect("valid URL"));
    let engine = Arc::new(chat_orchestrator::engine::Engine::new(
        common::compiled(),
        Arc::new(chat_orchestrator::backend::SampleBackend),
        store,
    ));
    let state = AppState::new(engine.clone(), None, None);
    state.health.spawn_store_check(engine, std::time::Duration::from_millis(50));
    let server = Server::start(state).await;
    let base = server.base.clone();
    let mut health = Value::Null;
    for _ in 0..100 {
        health = reqwest::get(format!("{base}/health")).await.expect("request").json().await.expect("json");
        if health["status"] == "error" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(health["status"], "error", "{health}");
    assert!(health["warnings"].to_string().contains("redis session store is unreachable"), "{health}");
}

async fn process(server: &Server, token: Option<&str>, envelope: &Value) -> (u16, Value) {
    let mut request = server.client.post(format!("{}/api/process", server.base)).json(envelope);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn voice_turns_come_back_as_response_envelopes_in_plain_speech() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(dir.path(), "registry");
    let server = start(keys_verifier(&public)).await;
    // the Voice droplet's own token: a droplet may only send its own turns
    let token = sign(&private, common::keys::claims_for("6"));
    let request: Value =
        serde_json::from_str(include_str!("fixtures/mesh/envelope_voice_process.json")).expect("fixture");
    let expected: Value =
        serde_json::from_str(include_str!("fixtures/mesh/envelope_response_route_back.json")).expect("fixture");

    assert_eq!(process(&server, None, &request).await.0, 401, "JWT required");
    let (status, reply) = process(&server, Some(&token), &request).await;
    assert_eq!(status, 200, "{reply}");
    for key in expected.as_object().expect("object").keys() {
        assert!(reply.get(key).is_some(), "missing {key}: {reply}");
    }
    assert_eq!((reply["source"].as_str(), reply["target"].as_str()), (Some("12"), Some("6")));
    assert_eq!(reply["trace_id"], request["trace_id"]);
    assert_eq!(reply["message_type"], "response");
    assert_eq!(reply["payload"]["session_id"], "droplet_6_voice-user-311");
    let spoken = reply["payload"]["response"].as_str().unwrap_or_default();
    assert!(spoken.contains("Orchestrator") && chat_orchestrator::speech::is_speakable(spoken), "{spoken}");

    // a two-turn conversation by voice: the same user keeps one session
    let ask = |text: &str, source: &str| {
        json!({"trace_id": "voice-t", "source": source, "target": "12", "message_type": "query",
        "route_back": source, "payload": {"message": text, "metadata": {"user_id": "caller-9"}}})
    };
    let (_, first) = process(&server, Some(&token), &ask("register a new service", "6")).await;
    assert!(
        first["payload"]["response"].as_str().unwrap_or_default().contains("What should the service be called?"),
        "{first}"
    );
    // 18 is Voice's old id: normalised to 6, so it is the same session and is answered to 6
    let (_, second) = process(&server, Some(&token), &ask("Spoken", "18")).await;
    assert_eq!(second["target"], "6");
    assert!(second["payload"]["response"].as_str().unwrap_or_default().contains("Spoken"), "{second}");
    let (_, third) = process(&server, Some(&token), &ask("eight", "6")).await;
    assert!(third["payload"]["response"].as_str().unwrap_or_default().contains("Shall I go ahead?"), "{third}");
    let (_, fourth) = process(&server, Some(&token), &ask("yes", "6")).await;
    let done = fourth["payload"]["response"].as_str().unwrap_or_default();
    assert!(done.contains("Spoken is now registered with id 8"), "{fourth}");
    assert!(!done.contains("colon"), "a voice user is never asked to say punctuation");
}

#[tokio::test]
async fn relayed_and_chat_envelopes_and_bad_ones() {
    let server = start(Verifier::Open).await;
    let relay: Value =
        serde_json::from_str(include_str!("fixtures/mesh/envelope_orchestrator_relay.json")).expect("fixture");
    // the relay is addressed to "droplet-12", with route_back inside the payload
    let (status, reply) = process(&server, None, &relay).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["target"], "6", "answered to the voice droplet, not to the relay");

    let chat: Value = serde_json::from_str(include_str!("fixtures/mesh/envelope_chat_message.json")).expect("fixture");
    let (status, reply) = process(&server, None, &chat).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["payload"]["session_id"], "dash-session-77", "a droplet's own session id is kept");
    assert_eq!(reply["target"], "2");

    for (bad, why) in [
        (json!([1, 2]), "must be a JSON object"),
        (json!({"source": "6", "message_type": "query", "payload": {"message": "hi"}}), "trace_id"),
        (json!({"trace_id": "t", "source": "6", "message_type": "query", "payload": {}}), "payload.message"),
        (
            json!({"trace_id": "t", "source": "6", "target": "14", "message_type": "query", "payload": {"message": "hi"}}),
            "not to droplet 12",
        ),
        (json!({"trace_id": "t", "source": "6", "message_type": "query", "payload": "text"}), "payload"),
    ] {
        let (status, error) = process(&server, None, &bad).await;
        assert_eq!(status, 400, "{why}: {error}");
        assert_eq!(error["error"]["code"], "INVALID_REQUEST");
        assert!(error["error"]["message"].as_str().unwrap_or_default().contains(why), "{why}: {error}");
    }
}

#[tokio::test]
async fn with_a_registry_key_chat_and_websocket_need_a_token_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(dir.path(), "registry");
    let server = start(keys_verifier(&public)).await;
    let token = sign(&private, registry_claims());
    let chat = |token: Option<String>| {
        let mut request = server.client.post(format!("{}/api/chat", server.base)).json(&json!({"message": "hello"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let refused = chat(None).await.expect("request");
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    assert_eq!(chat(Some(token.clone())).await.expect("request").status().as_u16(), 200);

    let ws = format!("ws://{}/ws", server.address);
    assert!(tokio_tungstenite::connect_async(ws.as_str()).await.is_err(), "no token: the upgrade is refused");
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{ws}?token={token}")).await.expect("token in the query");
    use futures::StreamExt;
    let welcome = socket.next().await.expect("frame").expect("ok");
    assert!(welcome.to_text().unwrap_or_default().contains("welcome"));
}

#[tokio::test]
async fn metrics_need_a_registry_token_or_the_metrics_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(dir.path(), "registry");
    let mut state = AppState::new(Arc::new(common::engine(vec![])), None, None);
    state.verifier = Arc::new(keys_verifier(&public));
    state.metrics_token = Some(Arc::from("scrape-test-token"));
    let server = Server::start(state).await;
    let scrape = |token: Option<&str>| {
        let mut request = server.client.get(format!("{}/metrics", server.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
            (status, challenge, response.text().await.unwrap_or_default())
        }
    };
    let (status, challenge, body) = scrape(None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    // the one error body every endpoint answers with (MESH.md §3)
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(
        (body["status"].as_str(), body["error"]["code"].as_str()),
        (Some("error"), Some("UNAUTHORIZED")),
        "{body}"
    );
    assert!(body["timestamp"].is_string() && body["error"]["details"].is_object(), "{body}");
    assert_eq!(scrape(Some("wrong")).await.0, 401);
    let (status, _, text) = scrape(Some("scrape-test-token")).await;
    assert_eq!(status, 200);
    assert!(text.contains("http_requests_total"), "{text}");
    assert_eq!(scrape(Some(&sign(&private, registry_claims()))).await.0, 200);
}
