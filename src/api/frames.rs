//! The frames a turn sends a listening client, the same on `/ws` and in the server-sent events
//! of `POST /api/chat` with `Accept: text/event-stream`: `progress` while droplets are slow,
//! `partial` pieces of a streamed answer, then the `message` frame with the whole reply (or an
//! `error` frame). `schemas/ws-frames.schema.json` describes them for `/ws` clients; the OpenAPI
//! document describes them for the event stream.

use std::sync::Arc;

use poem_openapi::types::ToJSON;
use poem_openapi::{Object, Union};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use super::chat::OtherChannel;
use super::error::{ErrorBody, ErrorCode};
use crate::engine::{Engine, Reply, Turn, TurnError};
use crate::session::Channel;
use crate::trace::TurnTrace;
use crate::turn_events::{TurnEvent, TurnEvents};
use crate::util::utc_timestamp;

/// A turn running on its own task for a client that listens: the events it sends while it
/// works, then its result. The task finishes the turn (and keeps what the user said) whatever
/// the client does; a client that stops reading `events` (drops or closes them) cancels a
/// streamed model answer. `events` ends when the turn does: the turn holds their only sender.
pub struct ListenedTurn {
    pub session_id: String,
    pub trace_id: String,
    pub events: mpsc::Receiver<TurnEvent>,
    pub task: JoinHandle<Result<Reply, TurnError>>,
}

impl ListenedTurn {
    pub fn start(engine: Arc<Engine>, mut turn: Turn) -> ListenedTurn {
        // the frames before the reply name the session, so a new one is named now
        let session_id = turn.session_id();
        turn.session_id = Some(session_id.clone());
        let trace_id = turn.trace_id.clone();
        let (sender, events) = TurnEvents::channel();
        turn.events = Some(sender);
        let task = tokio::spawn(async move { engine.handle(turn).await });
        ListenedTurn { session_id, trace_id, events, task }
    }
}

/// A droplet is slow to answer: what the turn is waiting for, in the turn's channel.
#[derive(Debug, Clone, Object)]
pub struct ProgressFrame {
    pub session_id: String,
    pub timestamp: String,
    pub trace_id: String,
    /// The intent whose query waits.
    pub intent: String,
    /// The query's `progress:` line (markdown on chat, plain speech on voice).
    pub content: String,
}

/// The next piece of a model answer being written. Append the pieces of one `name` to show the
/// answer as it grows; the `message` frame that follows has the whole reply and replaces them.
/// On the voice channel each piece is one or more whole sentences in speech form.
#[derive(Debug, Clone, Object)]
pub struct PartialFrame {
    pub session_id: String,
    pub timestamp: String,
    pub trace_id: String,
    pub intent: String,
    /// The `reason` step's `as:` name (several answers of one turn stream apart).
    pub name: String,
    /// Text to append.
    pub content: String,
}

/// The reply, whole: always the last frame of a turn that answered.
#[derive(Debug, Clone, Object)]
pub struct MessageFrame {
    pub session_id: String,
    pub timestamp: String,
    /// The reply: markdown on the chat channel, plain speech on voice.
    pub content: String,
    pub intent: String,
    pub trace_id: String,
    /// `chat` or `voice`.
    pub channel: String,
    /// Present when the message asked for it.
    #[oai(skip_serializing_if_is_none)]
    pub trace: Option<TurnTrace>,
    /// Present when the request set `preview_other_channel` (REST only).
    #[oai(skip_serializing_if_is_none)]
    pub other_channel: Option<OtherChannel>,
}

/// What went wrong with a message; the turn ends with this frame instead of `message`.
#[derive(Debug, Clone, Object)]
pub struct ErrorFrame {
    pub session_id: String,
    pub timestamp: String,
    pub error: FrameError,
}

#[derive(Debug, Clone, Object)]
pub struct FrameError {
    /// `VALIDATION_ERROR`, `DEPENDENCY_UNAVAILABLE`, `INTERNAL_ERROR`, …
    pub code: String,
    pub message: String,
    /// When refused by the rate limit: how long to wait.
    #[oai(skip_serializing_if_is_none)]
    pub retry_after_seconds: Option<u64>,
}

/// One frame of a turn, tagged by `type`.
// frames are made one at a time and sent at once (at most the 32 queued ones exist), so the
// reply's larger variant costs nothing worth a box
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type")]
pub enum TurnFrame {
    #[oai(mapping = "progress")]
    Progress(ProgressFrame),
    #[oai(mapping = "partial")]
    Partial(PartialFrame),
    #[oai(mapping = "message")]
    Message(MessageFrame),
    #[oai(mapping = "error")]
    Error(ErrorFrame),
}

impl TurnFrame {
    /// An event the turn sent while it worked.
    pub fn event(event: TurnEvent, session_id: &str, trace_id: &str) -> TurnFrame {
        let (session_id, trace_id, timestamp) = (session_id.to_owned(), trace_id.to_owned(), utc_timestamp());
        match event {
            TurnEvent::Progress { intent, text } => {
                TurnFrame::Progress(ProgressFrame { session_id, timestamp, trace_id, intent, content: text })
            }
            TurnEvent::Partial { intent, name, text } => {
                TurnFrame::Partial(PartialFrame { session_id, timestamp, trace_id, intent, name, content: text })
            }
        }
    }

    /// The reply. `with_trace`: the client asked for the turn's trace.
    pub fn message(reply: Reply, channel: Channel, with_trace: bool, other_channel: Option<OtherChannel>) -> TurnFrame {
        TurnFrame::Message(MessageFrame {
            session_id: reply.session_id,
            timestamp: utc_timestamp(),
            content: reply.text,
            intent: reply.intent,
            trace_id: reply.trace_id,
            channel: channel.as_str().to_owned(),
            trace: with_trace.then_some(reply.trace),
            other_channel,
        })
    }

    /// The frame that ends a listened turn: its reply, or why there is none (the same codes
    /// `/api/chat` answers with). `request_id_field` says where the client gave its request id.
    pub fn outcome(
        finished: Result<Result<Reply, TurnError>, JoinError>,
        session_id: &str,
        channel: Channel,
        with_trace: bool,
        other_channel: impl FnOnce(&Reply) -> Option<OtherChannel>,
        request_id_field: &str,
    ) -> TurnFrame {
        match finished {
            Ok(Ok(reply)) => {
                let other = other_channel(&reply);
                TurnFrame::message(reply, channel, with_trace, other)
            }
            Ok(Err(error)) => TurnFrame::refused(session_id, ErrorBody::of_turn(&error, request_id_field).into_body()),
            Err(error) => {
                tracing::error!(%error, "turn task failed");
                TurnFrame::refused(session_id, ErrorBody::internal())
            }
        }
    }

    /// The error frame saying what `body` says (the HTTP endpoints' error, as a frame).
    pub fn refused(session_id: &str, body: ErrorBody) -> TurnFrame {
        let retry_after_seconds = body.error.details.get("retry_after_seconds").and_then(serde_json::Value::as_u64);
        TurnFrame::Error(ErrorFrame {
            session_id: session_id.to_owned(),
            timestamp: utc_timestamp(),
            error: FrameError { code: body.error.code, message: body.error.message, retry_after_seconds },
        })
    }

    pub fn error(session_id: &str, code: ErrorCode, message: &str) -> TurnFrame {
        TurnFrame::refused(session_id, ErrorBody::new(code, message, serde_json::json!({})))
    }

    /// The `type` it is sent as (the SSE event name).
    pub fn kind(&self) -> &'static str {
        match self {
            TurnFrame::Progress(_) => "progress",
            TurnFrame::Partial(_) => "partial",
            TurnFrame::Message(_) => "message",
            TurnFrame::Error(_) => "error",
        }
    }

    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        self.to_json_string()
    }
}
