//! Progress and streaming, over real HTTP on 127.0.0.1: a slow fake droplet (the Visibility
//! Deck's `/system` answers late), and fake Gemini and OpenAI-compatible servers that stream
//! in their real wire format (`streamGenerateContent?alt=sse` events; `chat.completion.chunk`
//! events ending in `[DONE]`), including a stream cut midway and an error event. A WebSocket
//! client and an SSE client must see `progress`, then `partial` pieces, then the whole reply;
//! clients that leave cancel the model call, and clients that read slowly do not hold the turn.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_orchestrator::api::AppState;
use chat_orchestrator::engine::Engine;
use chat_orchestrator::llm::gemini::Gemini;
use chat_orchestrator::llm::openai::OpenAiCompatible;
use chat_orchestrator::llm::{LanguageModel, Llm};
use chat_orchestrator::session::{Entry, MemoryStore, Owner, SessionLimits};
use eventsource_stream::Eventsource;
use futures::{SinkExt, StreamExt};
use poem::web::Data;
use poem::{handler, EndpointExt, Route};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// How one scripted stream goes.
#[derive(Clone)]
enum Ending {
    /// The provider says the answer is complete.
    Complete,
    /// The connection breaks after the pieces.
    Cut,
    /// An error event after the pieces.
    ErrorEvent,
}

#[derive(Clone)]
struct Script {
    pieces: Vec<String>,
    gap: Duration,
    ending: Ending,
}

#[derive(Clone, Default)]
struct FakeModel {
    script: Arc<Mutex<Option<Script>>>,
    /// A stream was dropped before it had sent everything (the client went away).
    dropped_early: Arc<AtomicBool>,
    /// Pieces actually written.
    sent: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

/// Sets `dropped_early` unless the stream got to its end.
struct Guard {
    finished: bool,
    flag: Arc<AtomicBool>,
}

impl Guard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.finished {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

fn gemini_event(text: &str, last: bool) -> String {
    let mut event = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
                           "modelVersion": "gemini-2.5-flash", "responseId": "mJ0faOqXFuOdz7IPs4yW-Ak"});
    if last {
        event["candidates"][0]["finishReason"] = json!("STOP");
        event["usageMetadata"] = json!({"promptTokenCount": 402, "candidatesTokenCount": 19, "totalTokenCount": 421});
    }
    format!("data: {event}\r\n\r\n")
}

fn openai_event(text: Option<&str>, finish: Option<&str>) -> String {
    let delta = match text {
        Some(text) => json!({"content": text}),
        None => json!({}),
    };
    let chunk = json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1763647200, "model": "llama3.1:8b",
                       "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {chunk}\n\n")
}

#[handler]
async fn fake_model(request: &poem::Request, Data(fake): Data<&FakeModel>) -> poem::Response {
    let path = request.uri().to_string();
    fake.paths.lock().expect("lock").push(path.clone());
    let gemini = path.contains("streamGenerateContent");
    let Some(script) = fake.script.lock().expect("lock").clone() else {
        return poem::Response::builder().status(poem::http::StatusCode::INTERNAL_SERVER_ERROR).body("not scripted");
    };
    let count = script.pieces.len();
    let mut events: Vec<Result<String, std::io::Error>> = Vec::new();
    for (i, piece) in script.pieces.iter().enumerate() {
        let last = i + 1 == count && matches!(script.ending, Ending::Complete);
        events.push(Ok(if gemini { gemini_event(piece, last) } else { openai_event(Some(piece), None) }));
    }
    match script.ending {
        Ending::Complete if !gemini => {
            events.push(Ok(openai_event(None, Some("stop"))));
            let usage = json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1763647200, "model": "llama3.1:8b",
                               "choices": [], "usage": {"prompt_tokens": 380, "completion_tokens": 17, "total_tokens": 397}});
            events.push(Ok(format!("data: {usage}\n\n")));
            events.push(Ok("data: [DONE]\n\n".to_owned()));
        }
        Ending::Complete => {}
        Ending::Cut => events.push(Err(std::io::Error::other("the fake cuts the connection"))),
        Ending::ErrorEvent if gemini => events.push(Ok(format!(
            "data: {}\r\n\r\n",
            json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})
        ))),
        Ending::ErrorEvent => events.push(Ok(format!(
            "data: {}\n\n",
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "code": 500}})
        ))),
    }
    let gap = script.gap;
    let sent = fake.sent.clone();
    let guard = Guard { finished: false, flag: fake.dropped_early.clone() };
    let body = futures::stream::unfold((events.into_iter(), guard), move |(mut events, mut guard)| {
        let sent = sent.clone();
        async move {
            let Some(event) = events.next() else {
                guard.finish();
                return None;
            };
            tokio::time::sleep(gap).await;
            sent.fetch_add(1, Ordering::SeqCst);
            Some((event, (events, guard)))
        }
    });
    poem::Response::builder().content_type("text/event-stream").body(poem::Body::from_bytes_stream(body))
}

enum Provider {
    Gemini,
    OpenAi,
}

struct Setup {
    fake: FakeModel,
    _fake_stop: tokio::sync::oneshot::Sender<()>,
    server: common::Running,
    engine: Arc<Engine>,
}

/// The Visibility Deck's `/system` answers after `slow`; progress lines go after 150 ms.
async fn setup(provider: Provider, slow: Duration, script: Script) -> Setup {
    let fake = FakeModel::default();
    *fake.script.lock().expect("lock") = Some(script);
    let app = Route::new().at("/*path", poem::post(fake_model)).data(fake.clone());
    let (base, stop) = common::serve_fake(app).await;
    let model: Arc<dyn LanguageModel> = match provider {
        Provider::Gemini => Arc::new(Gemini::new(&base, "test-gemini-key", "gemini-2.5-flash")),
        Provider::OpenAi => Arc::new(OpenAiCompatible::new(&format!("{base}/v1"), Some("test-openai-key"), "llama3.1")),
    };
    let engine = Arc::new(
        Engine::new(
            common::compiled(),
            common::Slow::backend(14, "/system", slow),
            Arc::new(MemoryStore::new(SessionLimits::default())),
        )
        .with_llm(Arc::new(Llm::new(model, Duration::from_secs(10), 2, 0.6)))
        .with_progress_after(Duration::from_millis(150)),
    );
    let server = common::Running::start(AppState::new(engine.clone(), None, None)).await;
    Setup { fake, _fake_stop: stop, server, engine }
}

fn summary(pieces: &[&str], gap_ms: u64, ending: Ending) -> Script {
    Script { pieces: pieces.iter().map(|p| (*p).to_owned()).collect(), gap: Duration::from_millis(gap_ms), ending }
}

const SUMMARY: [&str; 4] =
    ["Nothing needs ", "your attention: CPU and ", "memory are moderate. ", "All six droplets are online."];

/// Every server frame of `/ws` must follow its published schema.
fn frame_schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/ws-frames.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("JSON");
    jsonschema::validator_for(&schema).expect("a valid schema")
}

fn check_frame(schema: &jsonschema::Validator, frame: &Value) {
    let problems: Vec<String> = schema.iter_errors(frame).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(problems.is_empty(), "frame breaks schemas/ws-frames.schema.json: {problems:?}\n{frame}");
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(setup: &Setup, query: &str) -> Socket {
    let url = format!("ws://{}/ws{query}", setup.server.address);
    tokio_tungstenite::connect_async(url).await.expect("connect").0
}

async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), socket.next()).await.expect("a frame in time");
        match message.expect("open").expect("valid frame") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The frames of one turn, up to its `message` (or `error`), each with when it came.
async fn turn_frames(socket: &mut Socket, said: &str, channel: &str) -> Vec<(Duration, Value)> {
    let schema = frame_schema();
    let started = Instant::now();
    let frame = json!({"type": "message", "content": said, "channel": channel, "trace": true});
    socket.send(Message::text(frame.to_string())).await.expect("send");
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(socket).await;
        check_frame(&schema, &frame);
        let last = matches!(frame["type"].as_str(), Some("message" | "error"));
        frames.push((started.elapsed(), frame));
        if last {
            return frames;
        }
    }
}

fn kinds(frames: &[(Duration, Value)]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for (_, frame) in frames {
        let kind = frame["type"].as_str().unwrap_or_default().to_owned();
        // consecutive partial pieces read as one entry
        if !(kind == "partial" && kinds.last().is_some_and(|k| k == "partial")) {
            kinds.push(kind);
        }
    }
    kinds
}

fn partial_text(frames: &[(Duration, Value)]) -> String {
    frames
        .iter()
        .filter(|(_, f)| f["type"] == "partial")
        .map(|(_, f)| f["content"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_sees_progress_then_partial_text_then_the_reply() {
    let setup = setup(Provider::Gemini, Duration::from_millis(600), summary(&SUMMARY, 60, Ending::Complete)).await;
    let mut socket = connect(&setup, "").await;
    check_frame(&frame_schema(), &next_frame(&mut socket).await); // welcome
    let frames = turn_frames(&mut socket, "system overview", "chat").await;
    assert_eq!(kinds(&frames), ["typing", "progress", "partial", "message"], "{frames:?}");

    let (progress_at, progress) = &frames[1];
    assert_eq!(progress["content"], "⏳ _Asking the Visibility Deck…_");
    assert_eq!(progress["intent"], "system_overview");
    // not before the delay, and while the droplet is still being waited for
    assert!(*progress_at >= Duration::from_millis(150), "progress came after {progress_at:?}");
    let (message_at, message) = frames.last().expect("message");
    assert!(*message_at >= Duration::from_millis(600), "the reply waits for the slow droplet: {message_at:?}");
    assert!(progress_at < message_at);

    // the pieces, in order, are the model's answer; the reply has it whole
    assert_eq!(partial_text(&frames), SUMMARY.concat());
    assert!(frames.iter().filter(|(_, f)| f["type"] == "partial").all(|(_, f)| f["name"] == "summary"));
    let content = message["content"].as_str().expect("content");
    assert!(content.contains(&format!("> {}", SUMMARY.concat())), "{content}");
    assert!(content.contains("37.5%"), "{content}");
    let call = &message["trace"]["llm"][0];
    assert_eq!((call["outcome"].as_str(), call["stream"]["pieces"].as_u64()), (Some("ok"), Some(4)), "{call}");
    assert!(setup.fake.paths.lock().expect("lock")[0].ends_with(":streamGenerateContent?alt=sse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_pieces_are_whole_spoken_sentences() {
    let setup = setup(Provider::Gemini, Duration::from_millis(10), summary(&SUMMARY, 30, Ending::Complete)).await;
    let mut socket = connect(&setup, "?channel=voice").await;
    next_frame(&mut socket).await;
    let frames = turn_frames(&mut socket, "system overview", "voice").await;
    assert_eq!(kinds(&frames), ["typing", "partial", "message"], "quick droplets: no progress line");
    let pieces: Vec<&str> =
        frames.iter().filter(|(_, f)| f["type"] == "partial").filter_map(|(_, f)| f["content"].as_str()).collect();
    assert_eq!(pieces, ["Nothing needs your attention: CPU and memory are moderate.", "All six droplets are online."]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_gets_the_same_frames_as_events() {
    let setup = setup(Provider::OpenAi, Duration::from_millis(600), summary(&SUMMARY, 60, Ending::Complete)).await;
    let response = setup
        .server
        .client
        .post(format!("{}/api/chat", setup.server.base))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "system overview", "trace": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("type").starts_with("text/event-stream"));
    let started = Instant::now();
    let mut events = response.bytes_stream().eventsource();
    let schema = frame_schema();
    let mut frames = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(15), events.next()).await.expect("in time") {
        let event = event.expect("an event");
        let frame: Value = serde_json::from_str(&event.data).expect("JSON data");
        assert_eq!(event.event, frame["type"].as_str().expect("type"), "the event is named after its frame");
        check_frame(&schema, &frame);
        frames.push((started.elapsed(), frame));
    }
    assert_eq!(kinds(&frames), ["progress", "partial", "message"], "{frames:?}");
    assert_eq!(partial_text(&frames), SUMMARY.concat());
    let message = &frames.last().expect("message").1;
    assert!(message["content"].as_str().expect("content").contains(&SUMMARY.concat()));
    let session = message["session_id"].as_str().expect("session");
    assert!(frames.iter().all(|(_, f)| f["session_id"] == session), "every frame names the session");
    let call = &message["trace"]["llm"][0];
    assert_eq!(call["output_tokens"], 17, "usage from the last chunk: {call}");

    // without the header the same request answers JSON, as before
    let plain =
        setup.server.post_json("/api/chat", &json!({"message": "system overview", "session_id": session})).await;
    assert!(plain["response"].as_str().expect("response").contains("37.5%"), "{plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_midway_is_said_and_counted_not_shown_as_the_answer() {
    for (provider, ending) in [(Provider::Gemini, Ending::Cut), (Provider::OpenAi, Ending::ErrorEvent)] {
        let setup = setup(provider, Duration::from_millis(10), summary(&SUMMARY[..2], 20, ending)).await;
        let mut socket = connect(&setup, "").await;
        next_frame(&mut socket).await;
        let frames = turn_frames(&mut socket, "system overview", "chat").await;
        assert_eq!(partial_text(&frames), SUMMARY[..2].concat(), "the pieces that came were shown as they came");
        let message = &frames.last().expect("message").1;
        let content = message["content"].as_str().expect("content");
        assert!(content.contains("The summary was cut off midway"), "{content}");
        assert!(!content.contains("your attention: CPU and"), "the half answer is not the reply: {content}");
        let call = &message["trace"]["llm"][0];
        assert_eq!(call["outcome"], "failed");
        assert_eq!(call["attempts"], 1, "never retried after the first piece");
        assert!(call["error"].as_str().expect("error").contains("stopped midway"), "{call}");
        let metrics = setup.server.client.get(format!("{}/metrics", setup.server.base)).send().await.expect("metrics");
        let metrics = metrics.text().await.expect("text");
        assert!(
            metrics.lines().any(|l| l.starts_with("llm_streams_stopped_total") && l.contains("how=\"interrupted\"")),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_leaves_cancels_the_model_call_and_the_turn_is_kept() {
    let pieces: Vec<String> = (0..40).map(|i| format!("word{i} ")).collect();
    let script = Script { pieces, gap: Duration::from_millis(100), ending: Ending::Complete };
    let setup = setup(Provider::Gemini, Duration::from_millis(10), script).await;
    let mut socket = connect(&setup, "").await;
    let welcome = next_frame(&mut socket).await;
    let session = welcome["session_id"].as_str().expect("session").to_owned();
    socket
        .send(Message::text(json!({"type": "message", "content": "system overview"}).to_string()))
        .await
        .expect("send");
    loop {
        if next_frame(&mut socket).await["type"] == "partial" {
            break;
        }
    }
    socket.close(None).await.expect("close");
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !setup.fake.dropped_early.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the model's stream was not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(setup.fake.sent.load(Ordering::SeqCst) < 40, "stopped before the model finished");
    // the turn still finished: what the user said is kept, with the reply
    let key = Owner::new(Entry::Client, None).key(&session);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = setup.engine.sessions().get(&key).await.expect("store");
        if let Some((session, _)) = stored.filter(|(s, _)| s.history.len() >= 2) {
            assert_eq!(session.history[0].text.to_string(), "system overview");
            break;
        }
        assert!(Instant::now() < deadline, "the turn was not kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_reads_slowly_does_not_hold_the_turn() {
    // a long answer (about 3 MB) in many pieces, to a client that reads nothing for a while
    let piece = "x".repeat(999) + " ";
    let script = Script { pieces: vec![piece.clone(); 3000], gap: Duration::ZERO, ending: Ending::Complete };
    let setup = setup(Provider::Gemini, Duration::from_millis(10), script).await;
    // headers are read, then nothing more until the turn is over
    let response = setup
        .server
        .client
        .post(format!("{}/api/chat", setup.server.base))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "system overview", "session_id": "slow-reader"}))
        .send()
        .await
        .expect("request");
    // the turn finishes and is kept while the client reads nothing
    let key = Owner::new(Entry::Client, None).key("slow-reader");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored = setup.engine.sessions().get(&key).await.expect("store");
        if stored.is_some_and(|(s, _)| s.history.len() >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "a client that does not read held the turn up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!setup.fake.dropped_early.load(Ordering::SeqCst), "the model's answer was read to its end");
    // then it reads: the pieces it gets are the answer in order, joined where it was behind,
    // and the reply comes last and whole
    let mut events = response.bytes_stream().eventsource();
    let (mut partials, mut text, mut last) = (0, String::new(), String::new());
    while let Some(event) = tokio::time::timeout(Duration::from_secs(20), events.next()).await.expect("in time") {
        let event = event.expect("an event");
        let frame: Value = serde_json::from_str(&event.data).expect("JSON");
        if event.event == "partial" {
            partials += 1;
            text.push_str(frame["content"].as_str().expect("content"));
        }
        last = event.event;
    }
    assert_eq!(last, "message", "the reply is the last event");
    assert!(partials > 0 && partials <= 3000, "{partials} partial events");
    assert!(piece.repeat(3000).starts_with(&text), "what came is the answer's start, in order, nothing lost between");
    eprintln!("a slow reader got {partials} partial events for 3000 pieces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_clients_see_the_old_frames_when_nothing_is_slow_or_streamed() {
    // no model, quick droplets: welcome, typing, message — as before
    let server = common::Running::default().await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws", server.address)).await.expect("connect");
    next_frame(&mut socket).await;
    socket
        .send(Message::text(json!({"type": "message", "content": "system overview"}).to_string()))
        .await
        .expect("send");
    let typing = next_frame(&mut socket).await;
    let message = next_frame(&mut socket).await;
    assert_eq!((typing["type"].as_str(), message["type"].as_str()), (Some("typing"), Some("message")));
    let mut keys: Vec<&str> = message.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["channel", "content", "intent", "session_id", "timestamp", "trace_id", "type"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_leaves_cancels_the_model_call() {
    let pieces: Vec<String> = (0..40).map(|i| format!("word{i} ")).collect();
    let script = Script { pieces, gap: Duration::from_millis(100), ending: Ending::Complete };
    let setup = setup(Provider::OpenAi, Duration::from_millis(10), script).await;
    let response = setup
        .server
        .client
        .post(format!("{}/api/chat", setup.server.base))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "system overview", "session_id": "leaves-early"}))
        .send()
        .await
        .expect("request");
    let mut events = response.bytes_stream().eventsource();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("in time");
        if event.expect("an event").expect("readable").event == "partial" {
            break;
        }
    }
    drop(events); // the connection closes
    let deadline = Instant::now() + Duration::from_secs(5);
    while !setup.fake.dropped_early.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the model's stream was not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(setup.fake.sent.load(Ordering::SeqCst) < 40, "stopped before the model finished");
    let key = Owner::new(Entry::Client, None).key("leaves-early");
    let deadline = Instant::now() + Duration::from_secs(5);
    while setup.engine.sessions().get(&key).await.expect("store").is_none_or(|(s, _)| s.history.len() < 2) {
        assert!(Instant::now() < deadline, "the turn was not kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
