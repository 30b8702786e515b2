//! The holes an adversarial run found, each kept as a test over real HTTP on 127.0.0.1 so it
//! stays closed: anonymous `/message`, sessions not bound to their caller, droplets posing as
//! others, ids and metadata nobody checked, and tokens that should not verify.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::api::rate_limit::RateLimits;
use chat_orchestrator::api::AppState;
use chat_orchestrator::auth::Verifier;
use common::keys::{claims_for, key_pair, keys_verifier, now, sign, AUDIENCE, ISSUER};
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

type Server = common::Running;

struct Secured {
    server: Server,
    engine: Arc<chat_orchestrator::engine::Engine>,
    private: String,
    _keys: tempfile::TempDir,
}

impl Secured {
    /// A server with a Registry key; `relay_allow` lists addresses whose relays need no token.
    async fn start(relay_allow: &[&str], process_per_minute: u32) -> Secured {
        let keys = tempfile::tempdir().expect("temp dir");
        let (private, public) = key_pair(keys.path(), "registry");
        let engine = Arc::new(common::engine(vec![]));
        let mut state = AppState::new(engine.clone(), None, None);
        state.verifier = Arc::new(keys_verifier(&public));
        state.rate_limits = RateLimits::seed_defaults().with_process(process_per_minute);
        // read as the server reads MESH_RELAY_ALLOW
        let list = relay_allow.join(", ");
        let settings = chat_orchestrator::settings::Settings::from_lookup(|name| {
            (name == "MESH_RELAY_ALLOW").then(|| list.clone())
        })
        .expect("settings");
        state.relay_allow = settings.mesh_relay_allow.into();
        Secured { server: Server::start(state).await, engine, private, _keys: keys }
    }

    fn token(&self, subject: &str) -> String {
        sign(&self.private, claims_for(subject))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.server.client.post(format!("{}{path}", self.server.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// How many sessions the store holds (committed turns).
    async fn sessions(&self) -> usize {
        self.engine.sessions().list().await.expect("memory store").len()
    }
}

fn relay(text: &str, user: &str, metadata: Value) -> Value {
    let mut metadata = metadata;
    metadata["user_id"] = json!(user);
    json!({"trace_id": "t-relay", "source": "6", "target": "12", "message_type": "query",
           "payload": {"message": text, "user_id": user, "metadata": metadata}})
}

/// Waits until a queued relayed turn has been committed (it runs in the background).
async fn settle(secured: &Secured, sessions: usize) {
    for _ in 0..100 {
        if secured.sessions().await >= sessions {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the relayed turn was never committed");
}

#[tokio::test]
async fn with_a_registry_key_only_the_orchestrator_may_relay() {
    let secured = Secured::start(&[], 50).await;
    let planted = relay("register a new service", "alice", json!({}));

    let (status, body) = secured.post("/message", None, &planted).await;
    assert_eq!(status, 401, "anonymous relay: {body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("MESH_RELAY_ALLOW"), "{body}");
    let (status, body) = secured.post("/message", Some(&secured.token("14")), &planted).await;
    assert_eq!(status, 403, "another droplet's token: {body}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(secured.sessions().await, 0, "nothing was planted");

    let (status, body) = secured.post("/message", Some(&secured.token("10")), &planted).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("queued")), "{body}");
    settle(&secured, 1).await;
    // replies to our own queries come the same way and are just as guarded
    let reply = json!({"trace_id": "r", "source": "10", "target": "12", "message_type": "response", "payload": {}});
    assert_eq!(secured.post("/message", None, &reply).await.0, 401);
}

#[tokio::test]
async fn an_allow_listed_orchestrator_relays_without_a_token() {
    let secured = Secured::start(&["127.0.0.0/8"], 50).await;
    let (status, body) = secured.post("/message", None, &relay("hello", "bob", json!({}))).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("queued")), "{body}");
    settle(&secured, 1).await;
    let elsewhere = Secured::start(&["10.0.0.10"], 50).await;
    assert_eq!(elsewhere.post("/message", None, &relay("hello", "bob", json!({}))).await.0, 401);
}

#[tokio::test]
async fn relayed_turns_are_checked_like_chat_turns_and_rate_limited() {
    let long_id = "x".repeat(20_000);
    let secured = Secured::start(&["127.0.0.1"], 100).await;
    for bad_id in ["*", "?", "[", "../x", "", "a\u{0}b", "a\nb", long_id.as_str()] {
        // Voice's sessions are made from the user id; other droplets name theirs in the metadata
        let as_voice = relay("hello", bad_id, json!({}));
        let mut as_dashboard = relay("hello", "eve", json!({"session_id": bad_id}));
        as_dashboard["source"] = json!("2");
        // (an empty user id is the anonymous user, a valid session)
        let envelopes = if bad_id.is_empty() { vec![as_dashboard] } else { vec![as_voice, as_dashboard] };
        for envelope in envelopes {
            let (status, body) = secured.post("/message", None, &envelope).await;
            assert_eq!(status, 422, "session id {:?}: {body}", bad_id.chars().take(10).collect::<String>());
        }
    }
    let secured = Secured::start(&["127.0.0.1"], 3).await;
    let big = relay("hello", "eve", json!({"blob": "y".repeat(20_000)}));
    let (status, body) = secured.post("/message", None, &big).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("payload.metadata"), "{body}");
    let small = relay("hi", "eve", json!({}));
    let statuses: Vec<u16> = futures::future::join_all((0..6).map(|_| secured.post("/message", None, &small)))
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert!(statuses.contains(&429), "a limit per sending address: {statuses:?}");
}

#[tokio::test]
async fn a_relayed_envelope_cannot_reach_a_chat_session() {
    // development mode: nobody is verified, and still the entry points are kept apart
    let engine = Arc::new(common::engine(vec![]));
    let server = Server::start(AppState::new(engine.clone(), None, None)).await;
    let server = &server;
    let chat = |text: &str| {
        let body = json!({"message": text, "session_id": "alice-chat"});
        async move { server.post_json("/api/chat", &body).await }
    };
    let asked = chat("register a new service called Billing").await;
    assert!(asked["response"].as_str().unwrap_or_default().contains("id"), "{asked}");

    // (a droplet other than Voice names its session in the metadata)
    let mut hijack = relay("id:999", "mallory", json!({"session_id": "alice-chat"}));
    hijack["source"] = json!("2");
    let response = server.client.post(format!("{}/message", server.base)).json(&hijack).send().await.expect("post");
    assert_eq!(response.status().as_u16(), 200);
    for _ in 0..100 {
        if engine.sessions().list().await.expect("store").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (alice, _) = engine.sessions().get("alice-chat").await.expect("store").expect("alice's session");
    let pending = alice.pending.expect("still waiting for the id");
    assert!(!pending.slots.contains_key("id"), "the relay did not fill Alice's id: {:?}", pending.slots);
    let next = chat("yes").await;
    assert!(!next["response"].as_str().unwrap_or_default().contains("999"), "{next}");
}

#[tokio::test]
async fn a_session_belongs_to_whoever_started_it() {
    let secured = Secured::start(&[], 50).await;
    let (alice, mallory) = (secured.token("alice"), secured.token("mallory"));
    let turn = |text: &str| json!({"message": text, "session_id": "alice-1", "trace": true});

    let (status, started) =
        secured.post("/api/chat", Some(&alice), &turn("register a new service called Zephyr")).await;
    assert_eq!(status, 200, "{started}");
    // Mallory sends Alice's session id: she reaches a session of her own, with nothing of Alice's
    let (status, hers) = secured.post("/api/chat", Some(&mallory), &turn("id:999")).await;
    assert_eq!(status, 200, "{hers}");
    assert_eq!(hers["session_id"], "alice-1", "the same answer as for an unknown session");
    assert!(!hers.to_string().contains("Zephyr"), "nothing of Alice's in the reply or trace: {hers}");

    // nor over the WebSocket
    let url = format!("ws://{}/ws?session_id=alice-1&token={mallory}", secured.server.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let _welcome = socket.next().await;
    let frame = json!({"type": "message", "content": "id:998"}).to_string();
    socket.send(tokio_tungstenite::tungstenite::Message::text(frame)).await.expect("send");
    loop {
        let message = socket.next().await.expect("a frame").expect("ok");
        let text = message.to_text().unwrap_or_default().to_owned();
        assert!(!text.contains("Zephyr"), "{text}");
        if text.contains("\"message\"") && !text.contains("\"typing\"") {
            break;
        }
    }

    let (_, own) = secured.post("/api/chat", Some(&alice), &turn("id:77")).await;
    let reply = own["response"].as_str().unwrap_or_default();
    assert!(reply.contains("Zephyr") && reply.contains("77"), "Alice's conversation is intact: {own}");
}

#[tokio::test]
async fn a_droplet_may_only_send_its_own_turns() {
    let secured = Secured::start(&[], 50).await;
    let as_voice = json!({"trace_id": "p1", "source": "6", "target": "12", "message_type": "query",
                          "payload": {"message": "hello", "user_id": "u1"}});
    let (status, body) = secured.post("/api/process", Some(&secured.token("14")), &as_voice).await;
    assert_eq!(status, 403, "droplet 14 posing as Voice: {body}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, body) = secured.post("/api/process", Some(&secured.token("6")), &as_voice).await;
    assert_eq!(status, 200, "Voice for its own users: {body}");

    let mut long = as_voice.clone();
    long["payload"]["metadata"] = json!({"session_id": "s".repeat(5_000)});
    long["source"] = json!("14");
    let (status, body) = secured.post("/api/process", Some(&secured.token("14")), &long).await;
    assert_eq!(status, 422, "{body}");
    let mut heavy = as_voice.clone();
    heavy["payload"]["metadata"] = json!({"blob": "z".repeat(50_000)});
    let (status, body) = secured.post("/api/process", Some(&secured.token("6")), &heavy).await;
    assert_eq!(status, 422, "{body}");
}

fn signed_with(private: &str, header: Header, claims: Value) -> String {
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(private.as_bytes()).expect("key")).expect("sign")
}

#[tokio::test]
async fn tokens_that_should_not_verify_do_not() {
    let keys = tempfile::tempdir().expect("temp dir");
    let (private, public) = key_pair(keys.path(), "registry");
    let verifier: Verifier = keys_verifier(&public);
    let claims = |iat: i64, exp: i64| json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "12", "iat": iat, "exp": exp});
    let reason = |token: &str| verifier.verify(Some(token)).map(|_| ()).map_err(|e| e.to_string());

    let mut critical = Header::new(Algorithm::RS256);
    critical.crit = Some(vec!["exp".to_owned()]);
    let error = reason(&signed_with(&private, critical, claims(now(), now() + 60))).expect_err("crit");
    assert!(error.contains("crit"), "{error}");
    let error = reason(&signed_with(&private, Header::new(Algorithm::RS256), claims(now() + 3600, now() + 7200)))
        .expect_err("iat");
    assert!(error.contains("future"), "{error}");
    let century = 100 * 365 * 24 * 3600;
    let error =
        reason(&signed_with(&private, Header::new(Algorithm::RS256), claims(now(), now() + century))).expect_err("exp");
    assert!(error.contains("JWT_MAX_LIFETIME"), "{error}");
    assert!(reason(&signed_with(&private, Header::new(Algorithm::RS256), claims(now(), now() + 3600))).is_ok());

    // one bearer parser: the scheme is case-insensitive on every route (RFC 7235)
    let mut state = AppState::new(Arc::new(common::engine(vec![])), None, None);
    state.verifier = Arc::new(keys_verifier(&public));
    state.metrics_token = Some(Arc::from("scrape-test-token"));
    let server = Server::start(state).await;
    let token = signed_with(&private, Header::new(Algorithm::RS256), claims(now(), now() + 3600));
    for path in ["/state", "/metrics"] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .header("authorization", format!("BEARER {token}"))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
}

#[tokio::test]
async fn what_a_user_typed_is_never_markup_nor_read_out_as_a_link() {
    let server = Server::default().await;
    let say = |text: &str, channel: &str, session: &str| {
        let body = json!({"message": text, "channel": channel, "session_id": session});
        let server = &server;
        async move { server.post_json("/api/chat", &body).await["response"].as_str().unwrap_or_default().to_owned() }
    };
    // chat: a value comes back as the characters typed, escaped for markdown
    let asked = say("register name:<img src=x onerror=alert(1)> id:61", "chat", "c1").await;
    assert!(asked.contains("\\<img src=x onerror=alert(1)\\>") && !asked.contains(" <img"), "{asked}");
    let asked = say("new task title:[click](https://evil.example/x)", "chat", "c2").await;
    assert!(asked.contains("\\[click\\]") && !asked.contains(" [click]"), "{asked}");

    // voice: no link, domain or scheme is read out, and no invisible character survives
    let spoken = say("register name:visit evil.example/login now id:62", "voice", "v1").await;
    assert!(spoken.contains("visit a web address now") && !spoken.contains("evil"), "{spoken}");
    let spoken = say("show the dashboard and see evil.example/login now", "voice", "v4").await;
    assert!(!spoken.contains("login") && !spoken.contains("example"), "no fragment read back: {spoken}");
    let spoken = say("register name:Acme\u{202E}\u{200B}™ id:63", "voice", "v2").await;
    assert!(chat_orchestrator::speech::is_speakable(&spoken) && spoken.contains("Acme"), "{spoken}");

    // an emoji-only name is asked again instead of leaving a hole in the sentence
    let spoken = say("register name:🎉🎉 id:64", "voice", "v3").await;
    assert!(spoken.contains("letters or digits"), "{spoken}");
    assert!(!spoken.contains(" is now registered"), "{spoken}");
}

#[tokio::test]
async fn a_message_of_invisible_characters_is_empty() {
    let server = Server::default().await;
    for message in ["\u{200B}\u{200B}", "\u{202E}", " \u{FEFF} "] {
        let response = server
            .client
            .post(format!("{}/api/chat", server.base))
            .json(&json!({"message": message}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 422, "{message:?}");
    }
}

/// A server whose connections wait at most `header` for headers and `idle` for a request, at
/// most `max` at once; its Registry answers `/getAll` after `slow`.
async fn limited(header: Duration, idle: Duration, max: usize, slow: Duration) -> Server {
    let factory = common::Slow::backend(1, "/getAll", slow);
    let (engine, _) = common::engine_and_store(common::compiled(), factory, Default::default());
    let mut state = AppState::new(Arc::new(engine), None, None);
    state.connection_limits = chat_orchestrator::connections::ConnectionLimits {
        header_read_timeout: header,
        body_read_timeout: header,
        idle_timeout: idle,
        write_timeout: idle,
        max_connections: max,
    };
    Server::start(state).await
}

/// Whether the server closed this connection within `within` (reads until end of stream).
async fn closed_within(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_and_cannot_starve_the_server() {
    use tokio::io::AsyncWriteExt;
    let server = limited(Duration::from_secs(1), Duration::from_secs(2), 8, Duration::ZERO).await;

    // an idle connection is closed after the idle timeout
    let mut idle = tokio::net::TcpStream::connect(server.address).await.expect("connect");
    assert!(closed_within(&mut idle, Duration::from_secs(6)).await, "idle connection left open");

    // headers trickled a byte at a time are cut at the header-read timeout, however steady
    let mut slow = tokio::net::TcpStream::connect(server.address).await.expect("connect");
    let started = std::time::Instant::now();
    let trickle = async {
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    trickle.await;
    assert!(started.elapsed() < Duration::from_secs(4), "a trickling client kept its connection");

    // more half-sent requests than the server takes connections: /health still answers
    let mut half_sent = Vec::new();
    for _ in 0..24 {
        let mut socket = tokio::net::TcpStream::connect(server.address).await.expect("connect");
        let _ = socket.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
        half_sent.push(socket);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
    let health = client.get(format!("{}/health", server.base)).send().await.expect("/health answers");
    assert_eq!(health.status().as_u16(), 200);
    drop(half_sent);

    // a body that stops half-way (headers complete, body promised and not sent) gets 408 at the
    // body timeout, and more of them than the bound does not stop /health either
    let mut stalled = Vec::new();
    for _ in 0..24 {
        let mut socket = tokio::net::TcpStream::connect(server.address).await.expect("connect");
        let head =
            "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\"";
        let _ = socket.write_all(head.as_bytes()).await;
        stalled.push(socket);
    }
    let health = client.get(format!("{}/health", server.base)).send().await.expect("/health answers");
    assert_eq!(health.status().as_u16(), 200);
    let mut first = stalled.swap_remove(0);
    let mut answer = String::new();
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(Duration::from_secs(5), first.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn a_turn_that_takes_longer_than_the_idle_timeout_is_not_cut() {
    let server = limited(Duration::from_secs(1), Duration::from_secs(1), 8, Duration::from_millis(2500)).await;
    let reply = server.post_json("/api/chat", &json!({"message": "list the registry"})).await;
    assert_eq!(reply["intent"], "list_registry", "{reply}");
}

#[tokio::test]
async fn a_number_is_not_a_string() {
    let server = Server::default().await;
    for (path, body) in [
        ("/api/analyze", json!({"message": 123})),
        ("/api/chat", json!({"message": 123})),
        ("/api/chat", json!({"message": "hello", "session_id": 123})),
        ("/api/chat", json!({"message": true})),
    ] {
        let response = server.client.post(format!("{}{path}", server.base)).json(&body).send().await.expect("post");
        let status = response.status().as_u16();
        let error: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{path} {body}: {error}");
        assert!(error.to_string().contains("a string is expected"), "{path} {body}: {error}");
    }
    let fine = server.post_json("/api/chat", &json!({"message": "hello", "session_id": "s-1"})).await;
    assert_eq!(fine["session_id"], "s-1");
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::default().await;
    let mut socket = tokio::net::TcpStream::connect(server.address).await.expect("connect");
    let handshake = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    socket.write_all(handshake.as_bytes()).await.expect("handshake");
    // RFC 6455 §5.1: a client must mask every frame; this one is not
    socket.write_all(b"\x81\x05hello").await.expect("frame");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let close_code = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = socket.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            received.extend_from_slice(&buffer[..n]);
            // skip the HTTP answer, then walk the server's (unmasked, short) frames
            let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let mut at = end + 4;
            while at + 2 <= received.len() {
                let (opcode, length) = (received[at] & 0x0f, (received[at + 1] & 0x7f) as usize);
                let (header, length) = match length {
                    126 if at + 4 <= received.len() => {
                        (4, u16::from_be_bytes([received[at + 2], received[at + 3]]) as usize)
                    }
                    126 => break,
                    length => (2, length),
                };
                if at + header + length > received.len() {
                    break;
                }
                if opcode == 0x8 && length >= 2 {
                    return Some(u16::from_be_bytes([received[at + header], received[at + header + 1]]));
                }
                at += header + length;
            }
        }
    })
    .await
    .expect("the server answers");
    assert_eq!(close_code, Some(1002), "closed as a protocol error");
}

#[tokio::test]
async fn a_retried_turn_gets_its_first_reply_and_runs_once() {
    let engine = Arc::new(common::engine(vec![]));
    let server = Server::start(AppState::new(engine.clone(), None, None)).await;
    let post = |body: Value, key: &str| {
        let key = key.to_owned();
        let server = &server;
        async move {
            let response = server
                .client
                .post(format!("{}/api/chat", server.base))
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .expect("post");
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // a first turn with no session: the retry finds the same new session and the same reply
    let first = json!({"message": "register name:Kite id:91", "trace": true});
    let (_, asked) = post(first.clone(), "key-1").await;
    let (_, again) = post(first, "key-1").await;
    assert_eq!(asked["session_id"], again["session_id"], "{asked} / {again}");
    assert_eq!(asked["response"], again["response"]);
    assert_eq!(again["trace"]["intent"]["source"], "replayed", "{again}");

    // the consent, sent twice at once and once more later: one registration, one reply
    let session = asked["session_id"].as_str().expect("session id").to_owned();
    let yes = json!({"message": "yes", "session_id": session});
    let ((_, a), (_, b)) = tokio::join!(post(yes.clone(), "key-2"), post(yes.clone(), "key-2"));
    let (_, c) = post(yes, "key-2").await;
    assert!(a["response"].as_str().unwrap_or_default().contains("Kite"), "{a}");
    assert!(a["response"] == b["response"] && b["response"] == c["response"], "{a} / {b} / {c}");
    let (stored, _) = engine.sessions().get(&session).await.expect("store").expect("session");
    let users = stored.history.iter().filter(|m| m.role == chat_orchestrator::session::Role::User).count();
    assert_eq!(users, 2, "each request ran once: {:?}", stored.history);

    // the same key with another message is a client bug, not a retry: refused, nothing runs
    let (status, error) = post(json!({"message": "no", "session_id": session}), "key-2").await;
    assert_eq!(status, 422, "{error}");
    assert!(error.to_string().contains("different message"), "{error}");

    let (status, _) = post(json!({"message": "hello"}), &"k".repeat(200)).await;
    assert_eq!(status, 422, "a key longer than 128 characters is refused");
}

#[tokio::test]
async fn an_invalid_optional_value_is_asked_again_not_replaced() {
    let server = Server::default().await;
    let reply = server.post_json("/api/chat", &json!({"message": "new task title:Backup priority:9"})).await;
    let text = reply["response"].as_str().unwrap_or_default();
    assert!(text.contains("at most 5"), "{reply}");
    assert!(!text.contains("**3**"), "the default does not stand in for what the user said: {reply}");
}

#[tokio::test]
async fn a_busy_kept_alive_connection_is_never_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // quick requests back to back on one raw connection, for longer than both timeouts (a client
    // library would hide a cut by retrying on a new connection)
    let server = limited(Duration::from_millis(500), Duration::from_millis(500), 8, Duration::ZERO).await;
    let mut socket = tokio::net::TcpStream::connect(server.address).await.expect("connect");
    let started = std::time::Instant::now();
    let mut answered = 0;
    let mut buffer = vec![0u8; 16 * 1024];
    while started.elapsed() < Duration::from_millis(2000) {
        socket.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.expect("the connection is open");
        // read one whole response: headers, then Content-Length bytes of body
        let mut received = Vec::new();
        loop {
            let n = socket.read(&mut buffer).await.expect("read");
            assert!(n > 0, "the server cut a busy connection after {answered} answers");
            received.extend_from_slice(&buffer[..n]);
            let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if received.len() >= end + 4 + length {
                break;
            }
        }
        answered += 1;
    }
    assert!(answered > 10, "{answered}");
}

#[tokio::test]
async fn clients_that_never_read_their_answers_cannot_hold_the_server() {
    use tokio::io::AsyncWriteExt;
    // a write waits at most 2 s on a client that does not read
    let server = limited(Duration::from_secs(1), Duration::from_secs(2), 4, Duration::ZERO).await;
    // as many connections as the server takes, each asking for the API document over and over
    // and reading nothing: their answers fill the socket buffers and every write waits
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut socket = tokio::net::TcpStream::connect(server.address).await.expect("connect");
        let requests = "GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(200);
        let _ = tokio::time::timeout(Duration::from_secs(2), socket.write_all(requests.as_bytes())).await;
        hogs.push(socket);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
    let health = client.get(format!("{}/health", server.base)).send().await.expect("/health answers");
    assert_eq!(health.status().as_u16(), 200);
    drop(hogs);
}
