//! `POST /api/chat`: the REST chat endpoint.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use poem_openapi::param::Header;
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, ResponseContent};
use serde_json::Value;

use super::error::{ErrorBody, Refusal, TurnRefusal};
use super::frames::{ListenedTurn, TurnFrame};
use super::rate_limit::{client_ip, retry_after_seconds, Limit};
use super::text::Text;
use super::udc::MeshAuth;
use super::validate::{check_message, check_metadata, check_request_id, check_session_id, is_printable_id};
use super::ApiTags;
use crate::engine::{Engine, Reply, Turn};
use crate::session::{Channel, Entry, Owner};
use crate::trace::TurnTrace;

/// A chat message from a client.
#[derive(Debug, Object)]
pub struct ChatRequest {
    /// What the user said: 1 to 5000 characters after trimming.
    pub message: Text,
    /// Continue this session; omit to start a new one. 1–128 characters of letters, digits,
    /// `-`, `_`, `.` or `:`.
    pub session_id: Option<Text>,
    /// Anything the client wants kept with the session (user id, locale, …).
    pub metadata: Option<HashMap<String, Value>>,
    /// Return the per-turn trace: the intent and why, slots, droplet calls, templates.
    pub trace: Option<bool>,
    /// `chat` (markdown, the default) or `voice` (plain speech).
    pub channel: Option<ChannelName>,
    /// Also render the reply for the other channel, returned as `other_channel` (stewards use it
    /// to see both at once).
    pub preview_other_channel: Option<bool>,
}

/// A reply channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum ChannelName {
    Chat,
    Voice,
}

impl From<ChannelName> for Channel {
    fn from(name: ChannelName) -> Channel {
        match name {
            ChannelName::Chat => Channel::Chat,
            ChannelName::Voice => Channel::Voice,
        }
    }
}

/// The reply as the other channel would have it.
#[derive(Debug, Clone, Object)]
pub struct OtherChannel {
    pub channel: ChannelName,
    pub response: String,
}

/// The assistant's reply.
#[derive(Debug, Object)]
pub struct ChatReply {
    /// The reply: markdown on the chat channel, plain speech on voice.
    pub response: String,
    /// The channel it was rendered for.
    pub channel: ChannelName,
    /// Send it back to continue the conversation.
    pub session_id: String,
    /// Identifies this turn in logs and traces.
    pub trace_id: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// The intent that answered.
    pub intent: String,
    /// Present when the request asked for it.
    #[oai(skip_serializing_if_is_none)]
    pub trace: Option<TurnTrace>,
    /// Present when the request set `preview_other_channel`.
    #[oai(skip_serializing_if_is_none)]
    pub other_channel: Option<OtherChannel>,
}

// built once per request, so the size difference between variants costs nothing
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
#[oai(bad_request_handler = "unreadable_request")]
pub enum ChatResponse {
    /// The reply: as JSON; or, when the request says `Accept: text/event-stream`, as
    /// server-sent events while the turn works: `progress` and `partial` frames, then one
    /// `message` frame with the whole reply (or an `error` frame). Each event's name is its
    /// frame's `type`; its data is the frame as JSON, the same frames `/ws` sends.
    #[oai(status = 200)]
    Ok(ChatBody),
    /// The body is not valid JSON or does not have the documented shape.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The body was read but a value is not acceptable (empty or too long message, bad id).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Something failed on our side; nothing was stored.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The session store is unavailable; nothing was stored. Retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
    /// Missing or invalid bearer token (required once `REGISTRY_PUBLIC_KEY` is set).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Too many turns from this client; `Retry-After` says how many seconds to wait.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
}

/// The two forms of a reply.
// built once per request, so the size difference between variants costs nothing
#[allow(clippy::large_enum_variant)]
#[derive(ResponseContent)]
pub enum ChatBody {
    Json(Json<ChatReply>),
    Events(EventStream<BoxStream<'static, TurnFrame>>),
}

/// How often an event stream that has nothing to say yet sends a comment, so proxies keep it.
const EVENTS_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// Whether the client asked for the reply as server-sent events.
fn wants_events(request: &poem::Request) -> bool {
    request
        .headers()
        .get_all(poem::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|kind| kind.split(';').next().is_some_and(|kind| kind.trim().eq_ignore_ascii_case("text/event-stream")))
}

fn unreadable_request(error: poem::Error) -> ChatResponse {
    match Refusal::of(&error, "send JSON like {\"message\": \"hello\"}") {
        Refusal::Unauthorized(body) => ChatResponse::Unauthorized(body, "Bearer".to_owned()),
        Refusal::BadRequest(body) => ChatResponse::BadRequest(body),
    }
}

pub struct ChatApi {
    pub engine: Arc<Engine>,
    pub limit: Limit,
}

#[OpenApi]
impl ChatApi {
    /// Send a message and get the assistant's reply.
    ///
    /// Rules resolve the intent; the intent's pipeline may ask for missing details (answer in
    /// the same session), query droplets, and format the reply as markdown.
    #[oai(path = "/api/chat", method = "post", tag = "ApiTags::Chat")]
    async fn chat(
        &self,
        MeshAuth(caller): MeshAuth,
        body: Json<ChatRequest>,
        /// Use this trace id for the turn instead of a new one (1–128 printable characters).
        #[oai(name = "X-Trace-ID")]
        trace_header: Header<Option<String>>,
        /// Makes a retry safe (1–128 printable characters, e.g. a UUID): the same key in the same
        /// session returns the reply the first request got, and nothing runs again (no second
        /// registration). Without `session_id`, the key also names the new session.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        remote: &poem::web::RemoteAddr,
        http: &poem::Request,
    ) -> ChatResponse {
        if let Err(wait) = self.limit.check(client_ip(remote)) {
            let seconds = retry_after_seconds(wait);
            return ChatResponse::TooManyRequests(Json(ErrorBody::rate_limited(seconds)), seconds.to_string());
        }
        let request = body.0;
        let text = request.message.trim();
        let checked = check_message(text)
            .and_then(|()| check_session_id(request.session_id.as_deref()))
            .and_then(|()| check_metadata(request.metadata.as_ref()))
            .and_then(|()| check_request_id(idempotency_key.0.as_deref(), "Idempotency-Key"));
        if let Err(problem) = checked {
            return ChatResponse::Unprocessable(Json(*problem));
        }
        let trace_id =
            trace_header.0.filter(|t| is_printable_id(t)).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let channel = request.channel.unwrap_or(ChannelName::Chat);
        let other = match channel {
            ChannelName::Chat => ChannelName::Voice,
            ChannelName::Voice => ChannelName::Chat,
        };
        let turn = Turn {
            session_id: request.session_id.map(String::from),
            channel: channel.into(),
            text: text.to_owned(),
            metadata: request.metadata.unwrap_or_default().into_iter().collect(),
            trace_id,
            preview_other_channel: request.preview_other_channel.unwrap_or(false),
            owner: Owner::new(Entry::Client, caller.verified_subject()),
            request_id: idempotency_key.0,
            events: None,
        };
        let with_trace = request.trace.unwrap_or(false);
        if wants_events(http) {
            return ChatResponse::Ok(ChatBody::Events(self.stream(turn, channel, other, with_trace)));
        }
        match self.engine.handle(turn).await {
            Ok(reply) => ChatResponse::Ok(ChatBody::Json(Json(ChatReply {
                response: reply.text,
                channel,
                session_id: reply.session_id,
                trace_id: reply.trace_id,
                timestamp: reply.timestamp,
                intent: reply.intent,
                trace: with_trace.then_some(reply.trace),
                other_channel: reply.other_channel_text.map(|response| OtherChannel { channel: other, response }),
            }))),
            Err(error) => match ErrorBody::of_turn(&error, "Idempotency-Key") {
                TurnRefusal::Unprocessable(body) => ChatResponse::Unprocessable(Json(body)),
                TurnRefusal::Unavailable(body) => ChatResponse::Unavailable(Json(body)),
                TurnRefusal::Internal(body) => ChatResponse::Internal(Json(body)),
            },
        }
    }
}

impl ChatApi {
    /// Runs the turn on its own task and answers with its frames as they come ([`ListenedTurn`]):
    /// the client leaving drops the events, which cancels a streamed model answer.
    fn stream(
        &self,
        turn: Turn,
        channel: ChannelName,
        other: ChannelName,
        with_trace: bool,
    ) -> EventStream<BoxStream<'static, TurnFrame>> {
        let ListenedTurn { session_id, trace_id, events, task } = ListenedTurn::start(self.engine.clone(), turn);
        let reply_session = session_id.clone();
        let events =
            futures::stream::unfold(
                events,
                |mut events| async move { events.recv().await.map(|event| (event, events)) },
            )
            .map(move |event| TurnFrame::event(event, &session_id, &trace_id));
        let reply = futures::stream::once(async move {
            let other_channel = |reply: &Reply| {
                reply.other_channel_text.clone().map(|response| OtherChannel { channel: other, response })
            };
            TurnFrame::outcome(task.await, &reply_session, channel.into(), with_trace, other_channel, "Idempotency-Key")
        });
        EventStream::new(events.chain(reply).boxed())
            .keep_alive(EVENTS_KEEP_ALIVE)
            .to_event(|frame| poem::web::sse::Event::message(frame.to_text()).event_type(frame.kind()))
    }
}
