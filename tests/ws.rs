//! The WebSocket protocol over a real connection: welcome, typing and message frames, errors that
//! keep the connection open, size limits, keep-alive, sessions shared with REST, clean shutdown.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::api::ws::WsTiming;
use chat_orchestrator::api::AppState;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

type Server = common::Running;

async fn start(timing: WsTiming) -> Server {
    start_with(timing, chat_orchestrator::api::rate_limit::RateLimits::seed_defaults()).await
}

async fn start_with(timing: WsTiming, limits: chat_orchestrator::api::rate_limit::RateLimits) -> Server {
    let mut state = AppState::new(Arc::new(common::engine(vec![])), None, None);
    state.ws_timing = timing;
    state.rate_limits = limits;
    Server::start(state).await
}

async fn connect(server: &Server, query: &str) -> Socket {
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws{query}", server.address)).await.expect("connect");
    socket
}

/// The next text frame as JSON (skipping pings, which the client library answers itself).
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a frame in time");
        match message.expect("open").expect("valid frame") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.expect("send");
}

#[tokio::test]
async fn welcome_typing_and_message_frames() {
    let server = start(WsTiming::default()).await;
    let mut socket = connect(&server, "").await;
    let welcome = next_json(&mut socket).await;
    assert_eq!(welcome["type"], "welcome");
    assert!(welcome["content"].as_str().unwrap_or_default().contains("Chat Orchestrator"), "{welcome}");
    let session = welcome["session_id"].as_str().expect("session id").to_owned();
    assert!(welcome["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    send(&mut socket, json!({"type": "message", "content": "show me all droplets"})).await;
    let typing = next_json(&mut socket).await;
    assert_eq!((typing["type"].as_str(), typing["session_id"].as_str()), (Some("typing"), Some(session.as_str())));
    let reply = next_json(&mut socket).await;
    assert_eq!(reply["type"], "message");
    assert_eq!(reply["intent"], "all_droplets");
    assert_eq!(reply["session_id"], session.as_str());
    assert!(reply["content"].as_str().unwrap_or_default().contains("Visibility Deck"));
    assert!(reply.get("trace").is_none());

    send(&mut socket, json!({"type": "message", "content": "hello", "channel": "voice", "trace": true})).await;
    next_json(&mut socket).await; // typing
    let voice = next_json(&mut socket).await;
    assert_eq!(voice["channel"], "voice");
    assert!(chat_orchestrator::speech::is_speakable(voice["content"].as_str().unwrap_or_default()));
    assert_eq!(voice["trace"]["intent"]["id"], "help");
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_connection_stays_open() {
    let server = start(WsTiming::default()).await;
    let mut socket = connect(&server, "").await;
    next_json(&mut socket).await;
    for (bad, expected_code) in [
        (Message::text("{not json"), "INVALID_REQUEST"),
        (Message::text(json!({"type": "subscribe"}).to_string()), "INVALID_REQUEST"),
        (Message::text(json!({"type": "message", "content": "   "}).to_string()), "VALIDATION_ERROR"),
        (Message::text(json!({"type": "message", "content": "a".repeat(5001)}).to_string()), "VALIDATION_ERROR"),
        (
            Message::text(json!({"type": "message", "content": "hi", "session_id": "bad id!"}).to_string()),
            "VALIDATION_ERROR",
        ),
        (Message::binary(vec![1, 2, 3]), "INVALID_REQUEST"),
    ] {
        socket.send(bad).await.expect("send");
        let error = next_json(&mut socket).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["error"]["code"], expected_code, "{error}");
        assert!(error["session_id"].is_string() && error["timestamp"].is_string());
    }
    send(&mut socket, json!({"type": "message", "content": "hello"})).await;
    assert_eq!(next_json(&mut socket).await["type"], "typing");
    assert_eq!(next_json(&mut socket).await["type"], "message", "still usable after the errors");
}

#[tokio::test]
async fn oversized_frames_close_the_connection_with_a_reason() {
    let server = start(WsTiming::default()).await;
    let mut socket = connect(&server, "").await;
    next_json(&mut socket).await;
    let _ = socket.send(Message::text("x".repeat(100 * 1024))).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("an answer") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break None,
        }
    };
    let frame = closed.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
}

#[tokio::test]
async fn silent_clients_are_pinged_and_then_closed() {
    let timing = WsTiming { ping_every: Duration::from_millis(100), idle_limit: Duration::from_millis(350) };
    let server = start(timing).await;
    let mut socket = connect(&server, "").await;
    next_json(&mut socket).await;
    // do not read for a while: the client library only answers pings while reading
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut pings = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("frames") {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(_)) | None => break None,
        }
    };
    assert!(pings >= 1, "the server pinged the idle connection");
    assert_eq!(close.expect("a close frame").code, CloseCode::Policy);
}

#[tokio::test]
async fn a_conversation_moves_between_websocket_and_rest() {
    let server = start(WsTiming::default()).await;
    let mut socket = connect(&server, "?session_id=moving-session").await;
    let welcome = next_json(&mut socket).await;
    assert_eq!(welcome["session_id"], "moving-session");
    send(&mut socket, json!({"type": "message", "content": "register a new service"})).await;
    next_json(&mut socket).await;
    let asked = next_json(&mut socket).await;
    assert!(asked["content"].as_str().unwrap_or_default().contains("What should the service be called?"), "{asked}");

    let client = reqwest::Client::new();
    let say = |message: &str| {
        client
            .post(format!("http://{}/api/chat", server.address))
            .json(&json!({"message": message, "session_id": "moving-session"}))
            .send()
    };
    let reply: Value = say("name:Mover id:77").await.expect("request").json().await.expect("json");
    assert_eq!(reply["intent"], "register_service");
    assert!(reply["response"].as_str().unwrap_or_default().contains("Register **Mover**"), "{reply}");
    // and back on the socket, the same session takes the consent
    send(&mut socket, json!({"type": "message", "content": "yes"})).await;
    next_json(&mut socket).await;
    let done = next_json(&mut socket).await;
    assert!(done["content"].as_str().unwrap_or_default().contains("**Mover** is registered"), "{done}");
}

#[tokio::test]
async fn shutdown_closes_open_sockets_cleanly() {
    let mut server = start(WsTiming::default()).await;
    let mut socket = connect(&server, "").await;
    next_json(&mut socket).await;
    server.signal_shutdown();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a close in time") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("the connection was cut, not closed: {error}"),
            None => panic!("the connection ended without a close frame"),
        }
    };
    assert_eq!(close.expect("a close frame").code, CloseCode::Away);
    drop(socket);
    server.stop().await;
}

#[tokio::test]
async fn messages_over_the_websocket_rate_limit_get_an_error_frame() {
    let server = start_with(WsTiming::default(), chat_orchestrator::api::rate_limit::RateLimits::new(0, 2)).await;
    let mut socket = connect(&server, "").await;
    next_json(&mut socket).await;
    for _ in 0..2 {
        send(&mut socket, json!({"type": "message", "content": "hello"})).await;
        assert_eq!(next_json(&mut socket).await["type"], "typing");
        assert_eq!(next_json(&mut socket).await["type"], "message");
    }
    send(&mut socket, json!({"type": "message", "content": "hello"})).await;
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["error"]["code"], "RATE_LIMITED");
    assert!(refused["error"]["retry_after_seconds"].as_u64().is_some_and(|s| s >= 1), "{refused}");
}
