//! Contract tests against a fake Orchestrator that speaks droplet 10's wire format (MESH.md §6):
//! `/send` relays and returns a receipt; the target's answer comes back to our `/message` as a
//! correlated `response` envelope — or never comes.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_orchestrator::api::AppState;
use chat_orchestrator::backend::{DropletBackend, DropletRequest, FailureKind, Outcome};
use chat_orchestrator::engine::Engine;
use chat_orchestrator::mesh::{MeshMode, MeshSetup, OrchestratorClient, OrchestratorConfig, Waiters};
use chat_orchestrator::session::{MemoryStore, SessionLimits};
use poem::web::{Data, Json, Query};
use poem::{handler, EndpointExt, Route};
use serde_json::{json, Value};

/// What the fake does with a relayed query.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// The target answers through the Orchestrator with data.
    Answer,
    /// Relayed, but the target never answers.
    Silent,
    /// Droplet 10 itself answers this status (502: target refused, 504: target timeout).
    Status(u16),
}

#[derive(Clone, Default)]
struct Fake {
    sent: Arc<Mutex<Vec<(Value, Value, Value)>>>, // (query, headers, body)
    behaviour: Arc<Mutex<Option<Behaviour>>>,
    our_base: Arc<Mutex<String>>,
    direct_base: Arc<Mutex<String>>,
}

#[derive(serde::Deserialize)]
struct SendQuery {
    target_droplet_id: i64,
    message_type: String,
}

#[handler]
async fn fake_send(
    Query(query): Query<SendQuery>,
    Json(body): Json<Value>,
    request: &poem::Request,
    Data(fake): Data<&Fake>,
) -> poem::Response {
    use poem::IntoResponse;
    let headers = json!({
        "authorization": request.header("authorization"),
        "x-trace-id": request.header("x-trace-id"),
        "x-source": request.header("x-source"),
    });
    fake.sent.lock().expect("lock").push((
        json!({"target_droplet_id": query.target_droplet_id, "message_type": query.message_type}),
        headers,
        body.clone(),
    ));
    let behaviour = fake.behaviour.lock().expect("lock").unwrap_or(Behaviour::Answer);
    if let Behaviour::Status(code) = behaviour {
        let status = poem::http::StatusCode::from_u16(code).expect("status");
        return Json(json!({"status": "error", "error": {"code": "RELAY_FAILED", "message": "target failed"}}))
            .with_status(status)
            .into_response();
    }
    let relay = uuid::Uuid::new_v4().to_string();
    if behaviour == Behaviour::Answer && (query.message_type == "query" || query.message_type == "command") {
        // the target droplet answers through the Orchestrator, which relays it to our /message
        let (base, relay, target) =
            (fake.our_base.lock().expect("lock").clone(), relay.clone(), query.target_droplet_id);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let reply = json!({
                "udc_version": "1.0", "trace_id": uuid::Uuid::new_v4().to_string(), "source": "droplet-10", "target": "droplet-12",
                "message_type": "response", "timestamp": "2025-11-20T14:07:03.410222",
                "payload": {"in_reply_to": relay, "origin": target.to_string(),
                            "data": [{"id": 1, "name": "Relayed Registry", "host": "drop1.example", "status": "active"}]}
            });
            let _ = reqwest::Client::new().post(format!("{base}/message")).json(&reply).send().await;
        });
    }
    Json(json!({"sent": true, "target_droplet": "Registry", "target_droplet_id": query.target_droplet_id,
                "message_delivered_at": "2025-11-20T14:07:01.882090", "trace_id": relay}))
    .into_response()
}

struct Mesh {
    fake: Fake,
    client: OrchestratorClient,
    engine: Arc<Engine>,
    /// Dropping it stops the fake Orchestrator.
    _fake_stop: tokio::sync::oneshot::Sender<()>,
    ours: common::Running,
}

/// Droplet 10's own `POST /message` (MESH.md §6.1): only messages addressed to it, answered
/// with `payload.result`; anything else is an HTTP 200 error envelope.
#[handler]
async fn fake_message(Json(envelope): Json<Value>, Data(fake): Data<&Fake>) -> poem::Response {
    use poem::IntoResponse;
    fake.sent.lock().expect("lock").push((json!({"path": "/message"}), json!({}), envelope.clone()));
    let trace_id = envelope["trace_id"].as_str().unwrap_or_default().to_owned();
    if uuid::Uuid::parse_str(&trace_id).is_err() || envelope["payload"].as_object().is_none() {
        let body = json!({"detail": [{"loc": ["body", "trace_id"], "msg": "value is not a valid uuid", "type": "type_error.uuid"}]});
        return Json(body).with_status(poem::http::StatusCode::UNPROCESSABLE_ENTITY).into_response();
    }
    let reply = |message_type: &str, payload: Value| {
        Json(json!({"udc_version": "1.0", "trace_id": trace_id, "source": "droplet-10", "target": envelope["source"],
                    "message_type": message_type, "timestamp": "2025-11-20T14:06:00.512884+00:00", "payload": payload}))
        .into_response()
    };
    if envelope["target"] != json!("10") && envelope["target"] != json!(10) {
        return reply(
            "error",
            json!({"status": "error", "error": {"code": "INVALID_REQUEST", "message": "Message not addressed to orchestrator"}}),
        );
    }
    let payload = &envelope["payload"];
    let result = match (envelope["message_type"].as_str(), payload["command"].as_str(), payload["query"].as_str()) {
        (Some("command"), Some("create_task"), _) => json!({"task_id": "task-0100", "status": "pending",
            "title": payload["task_data"]["title"], "priority": payload["task_data"]["priority"]}),
        (Some("command"), Some("create_task_failing"), _) => {
            return reply(
                "response",
                json!({"received": true, "processed_at": "2025-11-20T14:06:00.512400",
                                             "result": null, "error": "task_data.title is required"}),
            )
        }
        (Some("query"), _, Some("droplet_list")) => {
            json!({"query": "droplet_list", "droplets": [{"id": 6, "name": "Voice", "status": "active"}]})
        }
        _ => json!({"acknowledged": true}),
    };
    reply(
        "response",
        json!({"received": true, "processed_at": "2025-11-20T14:06:00.512400", "result": result, "error": null}),
    )
}

/// Droplet 10's Bearer directory and task routes: `GET /droplets/{id}`, `GET /tasks`.
#[handler]
async fn fake_directory(request: &poem::Request, Data(fake): Data<&Fake>) -> poem::Response {
    use poem::IntoResponse;
    let path = request.uri().path().to_owned();
    fake.sent.lock().expect("lock").push((
        json!({"path": path, "query": request.uri().query()}),
        json!({"authorization": request.header("authorization")}),
        Value::Null,
    ));
    if request.header("authorization") != Some("Bearer orchestrator-test-token") {
        return Json(json!({"detail": "Not authenticated"}))
            .with_status(poem::http::StatusCode::UNAUTHORIZED)
            .into_response();
    }
    let envelope = |payload: Value| {
        Json(json!({"udc_version": "1.0", "trace_id": uuid::Uuid::new_v4().to_string(), "source": "droplet-10",
                    "target": "droplet-12", "message_type": "response", "timestamp": "2025-11-20T14:06:00Z", "payload": payload}))
        .into_response()
    };
    let direct_base = fake.direct_base.lock().expect("lock").clone();
    match path.as_str() {
        "/droplets/14" => envelope(
            json!({"droplet": {"id": 14, "name": "Visibility Deck", "status": "active", "endpoint": direct_base}}),
        ),
        "/tasks" => envelope(
            json!({"tasks": [{"task_id": "task-0777", "title": "Live task from droplet 10", "status": "pending", "priority": 2}], "total": 1}),
        ),
        _ => Json(json!({"status": "error", "error": {"code": "NOT_FOUND", "message": "Resource not found"}}))
            .with_status(poem::http::StatusCode::NOT_FOUND)
            .into_response(),
    }
}

async fn fake_orchestrator(fake: Fake) -> (tokio::sync::oneshot::Sender<()>, String) {
    let app = Route::new()
        .at("/send", poem::post(fake_send))
        .at("/orchestrator/tasks", poem::post(fake_proxy))
        .at("/message", poem::post(fake_message))
        .at("/droplets/:id", poem::get(fake_directory))
        .at("/tasks", poem::get(fake_directory))
        .at(
            "/slow",
            poem::get(poem::endpoint::make(|_| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Json(json!({"late": true}))
            })),
        )
        .at("/health", poem::get(poem::endpoint::make_sync(|_| Json(json!({"id": 10, "status": "active"})))))
        .data(fake);
    let (base, stop) = common::serve_fake(app).await;
    (stop, base)
}

/// How the mesh under test is set up.
struct Options {
    behaviour: Behaviour,
    /// Another Orchestrator address (a dead port) instead of the fake.
    orchestrator_url: Option<String>,
    mode: MeshMode,
    target_modes: Vec<(i64, MeshMode)>,
    direct_urls: Vec<(i64, String)>,
    registry: Option<Arc<chat_orchestrator::credentials::RegistryCredentials>>,
    /// Base URL the fake directory gives for droplet 14.
    direct_base: String,
}

impl Options {
    fn new(behaviour: Behaviour) -> Self {
        Options {
            behaviour,
            orchestrator_url: None,
            mode: MeshMode::OrchestratorSend,
            target_modes: Vec::new(),
            direct_urls: Vec::new(),
            registry: None,
            direct_base: String::new(),
        }
    }
}

async fn mesh(behaviour: Behaviour, orchestrator_url: Option<String>) -> Mesh {
    mesh_with(Options { orchestrator_url, ..Options::new(behaviour) }).await
}

async fn mesh_with(options: Options) -> Mesh {
    let fake = Fake::default();
    *fake.behaviour.lock().expect("lock") = Some(options.behaviour);
    *fake.direct_base.lock().expect("lock") = options.direct_base.clone();
    let (fake_stop, fake_base) = fake_orchestrator(fake.clone()).await;
    let waiters = Arc::new(Waiters::default());
    let config = common::compiled();
    let client = OrchestratorClient::new(OrchestratorConfig {
        base_url: options.orchestrator_url.unwrap_or(fake_base),
        credentials: Arc::new(chat_orchestrator::credentials::OrchestratorCredentials::Static(
            "orchestrator-test-token".to_owned(),
        )),
        our_id: 12,
        reply_timeout: Duration::from_millis(500),
        timeout: Duration::from_secs(2),
    });
    let router = MeshSetup {
        client: client.clone(),
        waiters: waiters.clone(),
        mode: options.mode,
        target_modes: options.target_modes.into_iter().collect(),
        proxy_url: None,
        direct_urls: options.direct_urls.into_iter().collect(),
        registry: options.registry,
    }
    .into_router();
    let engine = Arc::new(Engine::new(config, Arc::new(router), Arc::new(MemoryStore::new(SessionLimits::default()))));
    let mut state = AppState::new(engine.clone(), None, None);
    state.waiters = waiters;
    state.health.spawn_orchestrator_probe(client.config().base_url.clone(), Duration::from_millis(50));
    let state_client = client.clone();
    state.orchestrator = Some(client);
    let ours = common::Running::start(state).await;
    *fake.our_base.lock().expect("lock") = ours.base.clone();
    Mesh { fake, client: state_client, engine, _fake_stop: fake_stop, ours }
}

async fn chat(mesh: &Mesh, message: &str) -> Value {
    mesh.ours.post_json("/api/chat", &json!({"message": message, "trace": true})).await
}

/// A command, read back and then agreed to: the reply to the "yes".
async fn chat_and_agree(mesh: &Mesh, message: &str) -> Value {
    let asked = chat(mesh, message).await;
    assert_eq!(asked["trace"]["dialogue"]["state"], "confirming", "{asked}");
    assert_eq!(asked["trace"]["calls"], json!([]), "nothing is sent before consent: {asked}");
    let session = asked["session_id"].as_str().unwrap_or_default();
    mesh.ours.post_json("/api/chat", &json!({"message": "yes", "session_id": session, "trace": true})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_relayed_and_the_correlated_answer_is_used() {
    let mesh = mesh(Behaviour::Answer, None).await;
    let reply = chat(&mesh, "show the registry").await;
    assert!(reply["response"].as_str().unwrap_or_default().contains("Relayed Registry"), "{reply}");
    assert_eq!(reply["trace"]["backend"], "orchestrator_send");
    assert_eq!(reply["trace"]["calls"][0]["outcome"], "data");
    assert_eq!(reply["trace"]["calls"][0]["via"], "orchestrator_send");

    let sent = mesh.fake.sent.lock().expect("lock").clone();
    let (query, headers, body) = &sent[0];
    assert_eq!(query, &json!({"target_droplet_id": 1, "message_type": "query"}));
    assert_eq!(body, &json!({"action": "/getAll", "method": "GET", "data": {}, "route_back": "12"}));
    assert_eq!(headers["authorization"], "Bearer orchestrator-test-token");
    assert_eq!(headers["x-source"], "12");
    assert!(
        uuid::Uuid::parse_str(headers["x-trace-id"].as_str().unwrap_or_default()).is_ok(),
        "a UUID trace id goes to droplet 10"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_sent_once_as_a_command() {
    let mesh = mesh(Behaviour::Answer, None).await;
    let reply = chat_and_agree(&mesh, "register a new service name:Meshy id:31").await;
    assert_eq!(reply["trace"]["calls"][0]["method"], "POST");
    let sent = mesh.fake.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "a command is never retried");
    assert_eq!(sent[0].0["message_type"], "command");
    assert_eq!(sent[0].2["data"], json!({"name": "Meshy", "id": 31}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_in_time_is_reported_as_dispatched() {
    let mesh = mesh(Behaviour::Silent, None).await;
    let reply = chat(&mesh, "show the registry").await;
    assert_eq!(reply["trace"]["calls"][0]["outcome"], "dispatched");
    assert!(reply["response"].as_str().unwrap_or_default().contains("no answer came back"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_failures_and_a_dead_orchestrator_give_clear_replies_in_time() {
    for (behaviour, expected) in [
        (Behaviour::Status(502), "refused"),
        (Behaviour::Status(504), "did not answer"),
        (Behaviour::Status(500), "answered with status 500"),
    ] {
        let mesh = mesh(behaviour, None).await;
        let reply = chat(&mesh, "show the registry").await;
        assert_eq!(reply["trace"]["calls"][0]["outcome"], "failed", "{reply}");
        assert!(reply["response"].as_str().unwrap_or_default().contains(expected), "{expected}: {reply}");
    }
    // refused credentials: the token is renewed once and the send tried again, then the reply says why
    let refusing = mesh(Behaviour::Status(401), None).await;
    let reply = chat(&refusing, "show the registry").await;
    assert!(reply["response"].as_str().unwrap_or_default().contains("refused our credentials"), "{reply}");
    assert_eq!(refusing.fake.sent.lock().expect("lock").len(), 2, "one send, one retry with a renewed token");
    // nothing listens: unreachable, retried once (a read), answered well within the timeouts
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let mesh = mesh(Behaviour::Answer, Some(format!("http://127.0.0.1:{dead_port}"))).await;
    let started = std::time::Instant::now();
    let reply = chat(&mesh, "show the registry").await;
    assert!(reply["response"].as_str().unwrap_or_default().contains("could not be reached"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_turn_relayed_to_message_is_queued_then_answered_through_send() {
    let mesh = mesh(Behaviour::Silent, None).await;
    let relay: Value =
        serde_json::from_str(include_str!("fixtures/mesh/envelope_orchestrator_relay.json")).expect("fixture");
    let ack: Value = mesh
        .ours
        .client
        .post(format!("{}/message", mesh.ours.base))
        .json(&relay)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!((ack["received"].as_bool(), ack["result"].as_str()), (Some(true), Some("queued")));
    assert_eq!(ack["trace_id"], relay["trace_id"]);

    let mut delivered = None;
    for _ in 0..50 {
        if let Some(found) =
            mesh.fake.sent.lock().expect("lock").iter().find(|(q, _, _)| q["message_type"] == "response").cloned()
        {
            delivered = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (query, _, body) = delivered.expect("the answer went back through /send");
    assert_eq!(query, json!({"target_droplet_id": 6, "message_type": "response"}));
    assert_eq!(body["in_reply_to"], relay["trace_id"]);
    assert_eq!(body["session_id"], "droplet_6_voice-user-311");
    assert_eq!(body["origin"], "12");
    assert!(chat_orchestrator::speech::is_speakable(body["response"].as_str().unwrap_or_default()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_heartbeat_and_send_endpoints() {
    let mesh = mesh(Behaviour::Silent, None).await;
    let post = |path: &str, body: Value| {
        let request = mesh.ours.client.post(format!("{}{path}", mesh.ours.base)).json(&body);
        async move {
            let response = request.send().await.expect("request");
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // events are acknowledged; envelopes for someone else are refused
    let (status, ack) =
        post("/message", json!({"trace_id": "reg-1", "source": "registry", "message_type": "event", "payload": {}}))
            .await;
    assert_eq!((status, ack["result"].as_str()), (200, Some("success")));
    let (status, _) = post(
        "/message",
        json!({"trace_id": "t", "source": "6", "target": "14", "message_type": "query", "payload": {"message": "hi"}}),
    )
    .await;
    assert_eq!(status, 400);

    let (status, beat) = post(
        "/heartbeat",
        json!({"trace_id": "hb-1", "source": "6", "target": "12", "message_type": "event",
        "timestamp": "2025-11-20T14:00:00Z", "payload": {"status": "active", "metrics": {}}}),
    )
    .await;
    assert_eq!(status, 200, "{beat}");
    assert_eq!(beat["payload"]["received"], true);
    assert_eq!(beat["payload"]["next_heartbeat_deadline"], 1763647260.0);
    assert_eq!((beat["source"].as_str(), beat["target"].as_str()), (Some("12"), Some("6")));

    let (status, receipt) = post(
        "/send",
        json!({"target": "6", "message_type": "event", "payload": {"event": "session_closed"}, "priority": "normal"}),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        (receipt["sent"].as_bool(), receipt["target"].as_str(), receipt["result"].as_str()),
        (Some(true), Some("6"), Some("success"))
    );
    let sent = mesh.fake.sent.lock().expect("lock").clone();
    assert!(sent.iter().any(|(q, _, b)| q["message_type"] == "event" && b["event"] == "session_closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_reflect_the_orchestrator_probe() {
    let up = mesh(Behaviour::Silent, None).await;
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let down = mesh(Behaviour::Silent, Some(format!("http://127.0.0.1:{dead_port}"))).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let get = |m: &Mesh| m.ours.client.get(format!("{}/dependencies", m.ours.base)).send();
    let up: Value = get(&up).await.expect("request").json().await.expect("json");
    assert_eq!(
        up["required"],
        json!([{"id": 10, "name": "Orchestrator", "status": "connected"}, {"id": 1, "name": "Registry", "status": "available"}])
    );
    assert_eq!(up["missing"], json!([]));
    assert_eq!(up["backend"], "orchestrator_send");
    let down: Value = get(&down).await.expect("request").json().await.expect("json");
    assert_eq!(down["missing"], json!(["orchestrator", "registry"]));
}

/// A synchronously proxying Orchestrator (`SERVICES/orchestrator`), answering per droplet name.
#[handler]
async fn fake_proxy(Json(body): Json<Value>, Data(fake): Data<&Fake>) -> poem::Response {
    use poem::IntoResponse;
    fake.sent.lock().expect("lock").push((json!({}), json!({}), body.clone()));
    match body["droplet_name"].as_str() {
        Some("Registry") => Json(json!({"task_id": "t1", "status": "success", "target_url": "https://drop1.example/getAll",
            "response_status": 200, "response_body": {"droplets": [{"id": 1, "name": "Proxied Registry", "status": "active"}]},
            "retry_count": 0, "duration_ms": 12}))
        .into_response(),
        Some("Visibility Deck") => Json(json!({"task_id": "t2", "status": "timeout", "response_status": null, "response_body": null,
            "retry_count": 3, "duration_ms": 30000}))
        .into_response(),
        _ => Json(json!({"detail": {"status": "error", "error": {"code": "DROPLET_NOT_FOUND", "message": "unknown droplet"}}}))
            .with_status(poem::http::StatusCode::BAD_REQUEST)
            .into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_mode_uses_a_synchronous_answer_and_reports_its_failures() {
    let mesh = mesh_with(Options { mode: MeshMode::Proxy, ..Options::new(Behaviour::Silent) }).await;
    let registry = chat(&mesh, "show the registry").await;
    assert!(registry["response"].as_str().unwrap_or_default().contains("Proxied Registry"), "{registry}");
    assert_eq!(registry["trace"]["backend"], "proxy");
    assert_eq!(registry["trace"]["calls"][0]["via"], "proxy");
    let sent = mesh.fake.sent.lock().expect("lock").clone();
    assert_eq!(sent[0].2["path"], "/getAll");
    assert_eq!(sent[0].2["meta"]["source"], "12");

    let overview = chat(&mesh, "system overview").await;
    assert!(overview["response"].as_str().unwrap_or_default().contains("did not answer in time"), "{overview}");
    let dashboard = chat(&mesh, "dashboard metrics").await;
    assert!(dashboard["response"].as_str().unwrap_or_default().contains("does not know the Dashboard"), "{dashboard}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_for_droplet_10_are_asked_natively_not_relayed() {
    let mesh = mesh(Behaviour::Answer, None).await;
    let reply = chat_and_agree(&mesh, "create a task title:Rotate the keys priority:2").await;
    assert!(reply["response"].as_str().unwrap_or_default().contains("task-0100"), "{reply}");
    assert_eq!(reply["trace"]["calls"][0]["via"], "orchestrator_native");
    let sent = mesh.fake.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "one call, and no /send: {sent:?}");
    let (route, _, envelope) = &sent[0];
    assert_eq!(route["path"], "/message");
    assert_eq!((envelope["source"].as_str(), envelope["target"].as_str()), (Some("12"), Some("10")));
    assert_eq!(envelope["message_type"], "command");
    assert!(uuid::Uuid::parse_str(envelope["trace_id"].as_str().unwrap_or_default()).is_ok());
    assert_eq!(envelope["payload"]["command"], "create_task");
    assert_eq!(envelope["payload"]["task_data"]["title"], "Rotate the keys");
    assert_eq!(envelope["payload"]["task_data"]["priority"], 2, "a whole-expression template keeps its type");

    // a GET without a native form is one of droplet 10's Bearer routes, envelope unwrapped
    let backend = backend_of(&mesh);
    let tasks = backend.call(request(10, "Orchestrator", "/tasks", "GET")).await;
    assert_eq!(
        tasks,
        Outcome::Data(
            json!({"tasks": [{"task_id": "task-0777", "title": "Live task from droplet 10", "status": "pending", "priority": 2}], "total": 1})
        )
    );
    assert_eq!(backend.route(&request(10, "Orchestrator", "/tasks", "GET")), "orchestrator_native");
    let bearer = mesh.fake.sent.lock().expect("lock").iter().rev().find(|(q, _, _)| q["path"] == "/tasks").cloned();
    assert_eq!(bearer.expect("GET /tasks").1["authorization"], "Bearer orchestrator-test-token");

    // a slow Orchestrator: ORCHESTRATOR_TIMEOUT (2 s here) ends the call with a clear reason
    let started = std::time::Instant::now();
    let slow = backend.call(request(10, "Orchestrator", "/slow", "GET")).await;
    assert_eq!(
        slow,
        Outcome::Failed {
            kind: FailureKind::Timeout,
            message: "The Orchestrator did not answer within 2 seconds.".into()
        }
    );
    assert!(started.elapsed() < Duration::from_secs(4), "one attempt, no retry of a timeout: {:?}", started.elapsed());

    // droplet 10's errors arrive as HTTP 200 envelopes: they still become failures with its reason
    let client = mesh.client.clone();
    let error = client
        .message("command", json!({"command": "create_task_failing"}), "not-a-uuid")
        .await
        .expect_err("an error result");
    assert_eq!(error.message, "The Orchestrator could not answer: task_data.title is required");
}

/// A droplet reached directly: its own `/auth/token` stands in for the Registry's, and it
/// wants that token on every other route.
#[handler]
async fn fake_droplet(request: &poem::Request, Data(calls): Data<&Arc<Mutex<Vec<Value>>>>) -> poem::Response {
    use poem::IntoResponse;
    let path = request.uri().path().to_owned();
    calls.lock().expect("lock").push(json!({
        "path": path, "authorization": request.header("authorization"),
        "x-registry-key": request.header("x-registry-key"), "x-trace-id": request.header("x-trace-id"),
    }));
    if path == "/auth/token" {
        if request.header("x-registry-key") != Some("test-droplet-secret") {
            return Json(json!({"detail": "Invalid registry key"}))
                .with_status(poem::http::StatusCode::UNAUTHORIZED)
                .into_response();
        }
        return Json(json!({"token": "registry-test-token", "droplet_id": 12, "algorithm": "RS256"})).into_response();
    }
    if request.header("authorization") != Some("Bearer registry-test-token") {
        return Json(json!({"detail": "Not authenticated"}))
            .with_status(poem::http::StatusCode::UNAUTHORIZED)
            .into_response();
    }
    match path.as_str() {
        "/getAll" => {
            Json(json!([{"id": 1, "name": "Directly Reached Registry", "host": "drop1.example", "status": "active"}]))
                .into_response()
        }
        "/system" => {
            Json(json!({"cpu_percent": 3.5, "memory_mb": 128, "uptime_seconds": 60, "status": "directly-reached"}))
                .into_response()
        }
        "/snapshots" => Json(json!({"snapshots": [], "total": 0})).into_response(),
        // a status that is not text: not the `health` shape the catalogue declares
        "/health" => Json(json!({"status": 5, "name": "Registry"})).into_response(),
        _ => poem::http::StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_mode_calls_droplets_with_the_registry_token_per_target() {
    let calls: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Route::new().at("/*path", fake_droplet).data(calls.clone());
    let (droplet_base, _stop) = common::serve_fake(app).await;
    let registry = Arc::new(chat_orchestrator::credentials::RegistryCredentials::new(
        &droplet_base,
        12,
        Some("test-droplet-secret".to_owned()),
        Duration::from_secs(2),
    ));
    let mesh = mesh_with(Options {
        // the default stays the relay; three droplets are reached directly
        target_modes: vec![(1, MeshMode::Direct), (14, MeshMode::Direct), (16, MeshMode::Direct)],
        direct_urls: vec![(1, droplet_base.clone())],
        registry: Some(registry),
        direct_base: droplet_base.clone(),
        ..Options::new(Behaviour::Answer)
    })
    .await;

    let registry_reply = chat(&mesh, "show the registry").await;
    assert!(
        registry_reply["response"].as_str().unwrap_or_default().contains("Directly Reached Registry"),
        "{registry_reply}"
    );
    assert_eq!(registry_reply["trace"]["backend"], "orchestrator_send", "the mode most calls take");
    assert_eq!(registry_reply["trace"]["calls"][0]["via"], "direct");
    let seen = calls.lock().expect("lock").clone();
    assert_eq!(seen[0]["path"], "/auth/token");
    assert_eq!(seen[0]["x-registry-key"], "test-droplet-secret");
    assert_eq!(seen[1]["path"], "/getAll");
    assert_eq!(seen[1]["authorization"], "Bearer registry-test-token");

    // droplet 14's address is looked up once in droplet 10's directory
    let overview = chat(&mesh, "system overview").await;
    assert!(overview["response"].as_str().unwrap_or_default().contains("| CPU | 3.5% |"), "{overview}");
    let lookups =
        |m: &Mesh| m.fake.sent.lock().expect("lock").iter().filter(|(q, _, _)| q["path"] == "/droplets/14").count();
    let first = lookups(&mesh);
    assert!((1..=2).contains(&first), "the step's two concurrent calls look it up at most once each: {first}");
    chat(&mesh, "system overview").await;
    assert_eq!(lookups(&mesh), first, "the address is remembered");
    assert!(
        mesh.fake.sent.lock().expect("lock").iter().all(|(q, _, _)| q.get("target_droplet_id").is_none()),
        "nothing relayed"
    );

    // an answer in a form the catalogue does not declare is a failed call that says so, is
    // noted in the trace with where it broke the shape, and is counted
    let health = chat(&mesh, "status of the registry").await;
    assert!(
        health["response"].as_str().unwrap_or_default().contains("The Registry answered in a form I did not expect."),
        "{health}"
    );
    assert_eq!(health["trace"]["calls"][0]["outcome"], "failed");
    assert_eq!(health["trace"]["calls"][0]["unexpected"], "at /status: expected text, got 5");
    let metrics = mesh.ours.client.get(format!("{}/metrics", mesh.ours.base)).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    assert!(
        metrics.contains(r#"droplet_answers_unexpected_total{droplet="Registry",endpoint="/health"} 1"#),
        "{metrics}"
    );

    // a droplet the directory does not know gets a clear reply
    let onboarding = chat(&mesh, "onboarding progress").await;
    assert_eq!(onboarding["trace"]["calls"][0]["outcome"], "failed", "{onboarding}");
    assert!(
        onboarding["trace"]["calls"][0]["error"].as_str().unwrap_or_default().contains("could not be looked up"),
        "{onboarding}"
    );
}

fn backend_of(mesh: &Mesh) -> Arc<dyn DropletBackend> {
    mesh.engine.backend().clone()
}

fn request(droplet_id: i64, name: &str, endpoint: &str, method: &str) -> DropletRequest {
    DropletRequest {
        droplet_id,
        droplet_name: name.to_owned(),
        endpoint: endpoint.to_owned(),
        method: method.to_owned(),
        params: serde_json::Map::new(),
        body: None,
        timeout: Duration::from_secs(2),
        trace_id: uuid::Uuid::new_v4().to_string(),
        // the Bearer GET routes of droplet 10 declare no native form
        declared: None,
    }
}

/// Answers every request with a redirect to the same path on `to`, as a misconfigured or hostile
/// host might.
#[handler]
async fn redirecting(request: &poem::Request, Data(to): Data<&String>) -> poem::Response {
    poem::Response::builder()
        .status(poem::http::StatusCode::TEMPORARY_REDIRECT)
        .header("location", format!("{to}{}", request.uri()))
        .finish()
}

/// Takes anything and says it worked, remembering what came.
#[handler]
async fn collecting(request: &poem::Request, Data(seen): Data<&Arc<Mutex<Vec<String>>>>) -> poem::Response {
    use poem::IntoResponse;
    seen.lock().expect("lock").push(format!("{} {}", request.method(), request.uri().path()));
    Json(json!({"success": true, "task_id": "task-999", "status": "pending", "id": 999, "message": "done elsewhere"}))
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_no_answer_and_a_command_is_never_posted_elsewhere() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (elsewhere, _stop_elsewhere) =
        common::serve_fake(Route::new().at("/*path", collecting).data(seen.clone())).await;
    let (redirector, _stop_redirector) =
        common::serve_fake(Route::new().at("/*path", redirecting).data(elsewhere.clone())).await;

    // the Orchestrator answers a task with 307: the task is not re-posted to the other host
    let mesh = mesh(Behaviour::Answer, Some(redirector.clone())).await;
    let task = chat_and_agree(&mesh, "create a task called Rotate the keys").await;
    assert_eq!(task["trace"]["calls"][0]["outcome"], "failed", "{task}");
    assert!(!task["response"].as_str().unwrap_or_default().contains("task-999"), "{task}");

    // a droplet reached directly answers a registration with 307: the same
    let mesh = mesh_with(Options {
        target_modes: vec![(1, MeshMode::Direct)],
        direct_urls: vec![(1, redirector.clone())],
        ..Options::new(Behaviour::Answer)
    })
    .await;
    let registered = chat_and_agree(&mesh, "register Billing with id 5").await;
    assert_eq!(registered["trace"]["calls"][0]["outcome"], "failed", "{registered}");
    assert_eq!(*seen.lock().expect("lock"), Vec::<String>::new(), "nothing reached the host redirected to");
}

/// Answers every request with a body of `size` bytes of valid JSON.
#[handler]
async fn oversized(Data(size): Data<&usize>) -> poem::Response {
    let padding = "x".repeat(*size);
    poem::Response::builder().content_type("application/json").body(format!(r#"{{"padding": "{padding}"}}"#))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_larger_than_the_cap_is_a_failed_call_read_no_further() {
    let size = chat_orchestrator::util::MAX_PEER_ANSWER_BYTES + 1;
    let (huge, _stop) = common::serve_fake(Route::new().at("/*path", oversized).data(size)).await;
    let mesh = mesh_with(Options {
        target_modes: vec![(1, MeshMode::Direct)],
        direct_urls: vec![(1, huge.clone())],
        ..Options::new(Behaviour::Answer)
    })
    .await;
    let reply = chat(&mesh, "show the registry").await;
    assert_eq!(reply["trace"]["calls"][0]["outcome"], "failed", "{reply}");
    let error = reply["trace"]["calls"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("larger than 2 MiB"), "{error}");
    // the Orchestrator's own answers are capped the same way
    let relayed = mesh_with(Options { orchestrator_url: Some(huge), ..Options::new(Behaviour::Answer) }).await;
    let reply = chat(&relayed, "show the registry").await;
    assert_eq!(reply["trace"]["calls"][0]["outcome"], "failed", "{reply}");
    assert!(reply["trace"]["calls"][0]["error"].as_str().unwrap_or_default().contains("larger than"), "{reply}");
}
