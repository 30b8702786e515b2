//! `/ws`: the real-time chat protocol (compatible with the seed's clients; README documents it).
//!
//! Client → server: `{"type": "message", "content": "...", "session_id"?: "...", "channel"?:
//! "chat"|"voice", "trace"?: bool}`. Server → client: `welcome` on connect, then for each message
//! `typing` and `message`; `error` for a frame it cannot take (the connection stays open). Every
//! server frame carries `session_id` and `timestamp`. The same engine and sessions serve REST
//! and WebSocket, so a conversation can move between them with its session id.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::web::{Data, Query};
use poem::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::error::{ErrorBody, ErrorCode};
use super::frames::{ListenedTurn, TurnFrame};
use super::rate_limit::{client_ip, retry_after_seconds, Limit};
use super::validate::{check_message, check_request_id, check_session_id, MAX_MESSAGE_CHARS};
use super::AppState;
use crate::engine::{Engine, Turn};
use crate::session::Channel;
use crate::session::{Entry, Owner};
use crate::util::utc_timestamp;

/// Largest frame (and message) a client may send; a 5000-character message fits with room.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Initial read buffer of a WebSocket connection (it grows for larger frames).
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Keep-alive timing; tests shorten it.
#[derive(Debug, Clone, Copy)]
pub struct WsTiming {
    /// How often the server pings an idle connection.
    pub ping_every: Duration,
    /// Silence (no frame, no pong) after which the server closes the connection.
    pub idle_limit: Duration,
}

impl Default for WsTiming {
    fn default() -> Self {
        WsTiming { ping_every: Duration::from_secs(30), idle_limit: Duration::from_secs(75) }
    }
}

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    /// Resume this session instead of starting a new one.
    session_id: Option<String>,
    /// `voice` for spoken replies; `chat` by default.
    channel: Option<Channel>,
    /// The bearer token, for clients that cannot send an Authorization header.
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    kind: String,
    content: Option<String>,
    session_id: Option<String>,
    channel: Option<Channel>,
    #[serde(default)]
    trace: bool,
    /// The client's id for this message: resent with the same id, it gets the same reply and
    /// nothing runs again (1–128 printable characters).
    request_id: Option<String>,
}

#[poem::handler]
pub fn ws(
    socket: WebSocket,
    Query(params): Query<ConnectParams>,
    Data(state): Data<&std::sync::Arc<AppState>>,
    remote: &poem::web::RemoteAddr,
    request: &poem::Request,
) -> poem::Response {
    // browsers cannot set headers on a WebSocket, so the token may also come as `?token=`
    let header = request.header("authorization").and_then(crate::auth::bearer_token);
    let caller = match state.verifier.verify(params.token.clone().or(header).as_deref()) {
        Ok(caller) => caller,
        Err(error) => {
            return ErrorBody::new(ErrorCode::Unauthorized, error.to_string(), json!({}))
                .into_response(poem::http::StatusCode::UNAUTHORIZED);
        }
    };
    // the connection's turns use the sessions of whoever connected (`?session_id=` of another's
    // session reaches a new one of their own)
    let owner = Owner::new(Entry::Client, caller.verified_subject());
    let engine = state.engine.clone();
    let limiter = Limiter { limit: state.rate_limits.websocket.clone(), client: client_ip(remote) };
    let closing = state.closing.subscribe();
    let timing = state.ws_timing;
    // tungstenite's default 128 KiB read and write buffers are allocated per connection up front:
    // 10,000 idle chat sockets would hold 2.5 GB. Chat frames are small; buffers grow on demand.
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(0);
    socket
        .config(config)
        .on_upgrade(move |stream| serve(stream, engine, closing, timing, params, limiter, owner))
        .into_response()
}

/// The close code RFC 6455 §7.4.1 gives a read error. poem hands tungstenite's error over as
/// text only, so it is told apart by tungstenite's wording: a frame or message over the limit is
/// 1009, text that is not UTF-8 is 1007, any other protocol violation (an unmasked client frame,
/// a reserved bit, a bad opcode) is 1002.
fn close_code_for(error: &std::io::Error) -> CloseCode {
    let said = error.to_string();
    if said.contains("Space limit exceeded") || said.contains("too long") || said.contains("too big") {
        CloseCode::Size
    } else if said.contains("UTF-8") || said.contains("utf-8") {
        CloseCode::Invalid
    } else {
        CloseCode::Protocol
    }
}

/// This connection's client and its message limit.
struct Limiter {
    limit: Limit,
    client: std::net::IpAddr,
}

struct Connection {
    session_id: String,
    channel: Channel,
    owner: Owner,
    /// Text frames that arrived while a turn was running, answered after it in order.
    backlog: std::collections::VecDeque<String>,
}

/// Frames a client may send while its turn runs; more are refused (one turn at a time).
const MAX_BACKLOG: usize = 16;

/// How a text frame was answered.
enum Answered {
    /// The frame to send: the reply, or why there is none.
    Frame(Message),
    /// The client left while its turn ran (the turn still finished and kept its message).
    Gone,
}

/// Counts an open WebSocket in the `websocket_connections` gauge for as long as it lives,
/// however the connection ends.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        metrics::gauge!("websocket_connections").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("websocket_connections").decrement(1.0);
    }
}

async fn serve(
    stream: WebSocketStream,
    engine: Arc<Engine>,
    mut closing: tokio::sync::watch::Receiver<bool>,
    timing: WsTiming,
    params: ConnectParams,
    limiter: Limiter,
    owner: Owner,
) {
    let _open = OpenConnection::new();
    let (mut sink, mut incoming) = stream.split();
    let session_id = params.session_id.filter(|id| check_session_id(Some(id)).is_ok());
    let mut connection = Connection {
        session_id: session_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        channel: params.channel.unwrap_or_default(),
        owner,
        backlog: Default::default(),
    };
    let welcome = match engine.welcome(connection.channel) {
        Ok(text) => frame("welcome", &connection.session_id, json!({"content": text})),
        Err(error) => {
            tracing::error!(%error, "welcome template failed");
            frame("welcome", &connection.session_id, json!({"content": "Hi!"}))
        }
    };
    if sink.send(welcome).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(timing.ping_every);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
        // messages that came while a turn was running are answered in order first
        if let Some(text) = connection.backlog.pop_front() {
            match answer_text(&engine, &mut connection, &limiter, &text, &mut sink, &mut incoming).await {
                Answered::Frame(reply) => {
                    if sink.send(reply).await.is_err() {
                        break;
                    }
                    continue;
                }
                Answered::Gone => break,
            }
        }
        tokio::select! {
            _ = closing.changed() => {
                close(&mut sink, &mut incoming, CloseCode::Away, "server shutting down").await;
                break;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= timing.idle_limit {
                    close(&mut sink, &mut incoming, CloseCode::Policy, "no answer to pings").await;
                    break;
                }
                if sink.send(Message::Ping(Vec::new())).await.is_err() {
                    break;
                }
            }
            received = incoming.next() => {
                let Some(received) = received else { break };
                last_heard = Instant::now();
                let reply = match received {
                    Ok(Message::Text(text)) => {
                        match answer_text(&engine, &mut connection, &limiter, &text, &mut sink, &mut incoming).await {
                            Answered::Frame(reply) => Some(reply),
                            Answered::Gone => break,
                        }
                    }
                    Ok(Message::Binary(_)) => Some(error_frame(&connection, ErrorCode::InvalidRequest, "send JSON as text frames")),
                    Ok(Message::Ping(payload)) => Some(Message::Pong(payload)),
                    Ok(Message::Pong(_)) => None,
                    Ok(Message::Close(_)) => break,
                    Err(error) => {
                        // an oversized frame or a protocol error ends up here: say why before closing
                        close(&mut sink, &mut incoming, close_code_for(&error), &format!("frame refused: {error}")).await;
                        break;
                    }
                };
                if let Some(reply) = reply {
                    if sink.send(reply).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// How long a closing server waits for the client to answer its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The close handshake: send the reason, then give the client a moment to answer before the
/// connection is dropped, so it reads a close frame rather than a broken pipe.
async fn close(
    sink: &mut futures::stream::SplitSink<WebSocketStream, Message>,
    incoming: &mut futures::stream::SplitStream<WebSocketStream>,
    code: CloseCode,
    reason: &str,
) {
    if sink.send(Message::Close(Some((code, reason.to_owned())))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

type Sink = futures::stream::SplitSink<WebSocketStream, Message>;
type Incoming = futures::stream::SplitStream<WebSocketStream>;

/// One text frame within the connection's message limit: [`run_turn`], or the refusal.
async fn answer_text(
    engine: &Arc<Engine>,
    connection: &mut Connection,
    limiter: &Limiter,
    text: &str,
    sink: &mut Sink,
    incoming: &mut Incoming,
) -> Answered {
    match limiter.limit.check(limiter.client) {
        Ok(()) => match run_turn(engine, connection, text, sink, incoming).await {
            Ok(answered) => answered,
            Err(refused) => Answered::Frame(refused),
        },
        Err(wait) => {
            let refused =
                TurnFrame::refused(&connection.session_id, ErrorBody::rate_limited(retry_after_seconds(wait)));
            Answered::Frame(Message::Text(refused.to_text()))
        }
    }
}

/// Answers one text frame: checks it, runs its turn, and forwards the turn's `progress` and
/// `partial` frames while it works; then the `message` frame with the reply. `Err` is the error
/// frame of a frame that cannot be taken.
async fn run_turn(
    engine: &Arc<Engine>,
    connection: &mut Connection,
    text: &str,
    sink: &mut Sink,
    incoming: &mut Incoming,
) -> Result<Answered, Message> {
    let frame_in: ClientFrame = match serde_json::from_str(text) {
        Ok(frame_in) => frame_in,
        Err(error) => {
            return Err(error_frame(
                connection,
                ErrorCode::InvalidRequest,
                &format!("the frame is not valid JSON ({error}); send {{\"type\": \"message\", \"content\": \"…\"}}"),
            ))
        }
    };
    if frame_in.kind != "message" {
        return Err(error_frame(
            connection,
            ErrorCode::InvalidRequest,
            &format!("unknown frame type `{}`; the only type a client sends is `message`", frame_in.kind),
        ));
    }
    if let Some(session_id) = &frame_in.session_id {
        if let Err(problem) = check_session_id(Some(session_id)) {
            return Err(error_frame(connection, ErrorCode::ValidationError, &problem.error.message));
        }
        connection.session_id = session_id.clone();
    }
    if let Some(channel) = frame_in.channel {
        connection.channel = channel;
    }
    if let Err(problem) = check_request_id(frame_in.request_id.as_deref(), "request_id") {
        return Err(error_frame(connection, ErrorCode::ValidationError, &problem.error.message));
    }
    let content = frame_in.content.unwrap_or_default();
    let content = content.trim();
    if let Err(problem) = check_message(content) {
        return Err(error_frame(
            connection,
            ErrorCode::ValidationError,
            &problem.error.message.replace("`message`", "`content`"),
        ));
    }
    debug_assert!(content.chars().count() <= MAX_MESSAGE_CHARS);
    let typing = frame("typing", &connection.session_id, json!({}));
    let _ = sink.send(typing).await;
    let turn = Turn {
        session_id: Some(connection.session_id.clone()),
        channel: connection.channel,
        text: content.to_owned(),
        metadata: Default::default(),
        trace_id: uuid::Uuid::new_v4().to_string(),
        preview_other_channel: false,
        owner: connection.owner.clone(),
        request_id: frame_in.request_id.clone(),
        events: None,
    };
    // a client that reads slowly or leaves never stops the turn from finishing
    let ListenedTurn { session_id, trace_id, events: mut receiver, task: mut running } =
        ListenedTurn::start(engine.clone(), turn);
    let mut listening = true;
    let finished = loop {
        tokio::select! {
            finished = &mut running => break finished,
            Some(event) = receiver.recv(), if listening => {
                let frame = TurnFrame::event(event, &session_id, &trace_id);
                if sink.send(Message::Text(frame.to_text())).await.is_err() {
                    // gone: a streamed model answer is cancelled, the turn still finishes
                    listening = false;
                    receiver.close();
                }
            }
            received = incoming.next(), if listening => match received {
                Some(Ok(Message::Text(text))) if connection.backlog.len() < MAX_BACKLOG => connection.backlog.push_back(text),
                Some(Ok(Message::Text(_))) => {
                    let refused = error_frame(connection, ErrorCode::RateLimited, "one message at a time: wait for the reply before sending more");
                    let _ = sink.send(refused).await;
                }
                Some(Ok(Message::Ping(payload))) => { let _ = sink.send(Message::Pong(payload)).await; }
                Some(Ok(Message::Pong(_) | Message::Binary(_))) => {}
                None | Some(Ok(Message::Close(_))) | Some(Err(_)) => {
                    listening = false;
                    receiver.close();
                }
            }
        }
    };
    if !listening {
        return Ok(Answered::Gone);
    }
    // events sent just before the reply go out before it
    while let Ok(event) = receiver.try_recv() {
        let frame = TurnFrame::event(event, &session_id, &trace_id);
        if sink.send(Message::Text(frame.to_text())).await.is_err() {
            return Ok(Answered::Gone);
        }
    }
    let frame = TurnFrame::outcome(finished, &session_id, connection.channel, frame_in.trace, |_| None, "request_id");
    Ok(Answered::Frame(Message::Text(frame.to_text())))
}

/// A server frame: `{type, session_id, timestamp, ...fields}`.
fn frame(kind: &str, session_id: &str, fields: Value) -> Message {
    let mut body = json!({"type": kind, "session_id": session_id, "timestamp": utc_timestamp()});
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    Message::Text(body.to_string())
}

fn error_frame(connection: &Connection, code: ErrorCode, message: &str) -> Message {
    Message::Text(TurnFrame::error(&connection.session_id, code, message).to_text())
}
