//! Checks on what clients send, shared by the REST and WebSocket endpoints so both refuse the
//! same things with the same words.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::error::{ErrorBody, ErrorCode};
use crate::auth::{Anchor, Caller};
use crate::droplet_ids::ORCHESTRATOR;
use crate::engine::Turn;
use crate::envelope::Envelope;
use crate::session::{Channel, Owner};

/// Longest message accepted, in characters after trimming.
pub const MAX_MESSAGE_CHARS: usize = 5000;
/// Longest session or trace id accepted.
pub const MAX_ID_CHARS: usize = 128;
/// Most metadata a turn may add to its session, as serialised JSON.
pub const MAX_METADATA_BYTES: usize = 4096;

pub fn check_message(text: &str) -> Result<(), Box<ErrorBody>> {
    // only zero-width or bidi characters is nothing said
    let invisible = text.chars().all(|c| crate::nlu::text::visible(c).is_none_or(char::is_whitespace));
    if invisible {
        return Err(Box::new(ErrorBody::new(
            ErrorCode::ValidationError,
            "`message` is empty: send the user's text (1 to 5000 characters)",
            json!({"field": "message"}),
        )));
    }
    let length = text.chars().count();
    if length > MAX_MESSAGE_CHARS {
        return Err(Box::new(ErrorBody::new(
            ErrorCode::ValidationError,
            format!("`message` is {length} characters long; the limit is {MAX_MESSAGE_CHARS}"),
            json!({"field": "message", "length": length, "limit": MAX_MESSAGE_CHARS}),
        )));
    }
    Ok(())
}

pub fn check_session_id(session_id: Option<&str>) -> Result<(), Box<ErrorBody>> {
    let Some(id) = session_id else { return Ok(()) };
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if valid {
        Ok(())
    } else {
        Err(Box::new(ErrorBody::new(
            ErrorCode::ValidationError,
            "`session_id` must be 1 to 128 characters of letters, digits, `-`, `_`, `.` or `:`; omit it to start a new session",
            json!({"field": "session_id"}),
        )))
    }
}

pub fn check_metadata(metadata: Option<&HashMap<String, Value>>) -> Result<(), Box<ErrorBody>> {
    check_metadata_size(metadata.and_then(|m| serde_json::to_vec(m).ok()).map(|bytes| bytes.len()).unwrap_or(0))
}

fn check_metadata_size(size: usize) -> Result<(), Box<ErrorBody>> {
    if size <= MAX_METADATA_BYTES {
        return Ok(());
    }
    Err(Box::new(ErrorBody::new(
        ErrorCode::ValidationError,
        format!("`metadata` is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}: keep only what the conversation needs"),
        json!({"field": "metadata", "size": size, "limit": MAX_METADATA_BYTES}),
    )))
}

pub fn is_printable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_CHARS && id.chars().all(|c| c.is_ascii_graphic())
}

/// A client's request id (`field`: where it was sent), when there is one: 1–128 printable
/// characters.
pub fn check_request_id(request_id: Option<&str>, field: &str) -> Result<(), Box<ErrorBody>> {
    if request_id.is_none_or(is_printable_id) {
        return Ok(());
    }
    Err(Box::new(ErrorBody::new(
        ErrorCode::ValidationError,
        format!("`{field}` must be 1 to 128 printable characters, e.g. a UUID"),
        json!({"field": field}),
    )))
}

/// The checks `/api/chat` makes, for a turn that came as an envelope (`/api/process`,
/// `/message`): its session id (given, or made from the user id) and its metadata. Returns the
/// session id.
pub fn check_envelope_turn(envelope: &Envelope) -> Result<String, Box<ErrorBody>> {
    let session_id = envelope.session_id();
    check_session_id(Some(&session_id)).map_err(|_| {
        Box::new(ErrorBody::new(
            ErrorCode::ValidationError,
            "the session id (`payload.metadata.session_id`, or the one made from `payload.user_id`) must be 1 to 128 \
             characters of letters, digits, `-`, `_`, `.` or `:`",
            json!({"field": "payload.metadata.session_id"}),
        ))
    })?;
    check_request_id(envelope.request_id.as_deref(), "payload.request_id")?;
    let metadata = envelope.payload.get("metadata").map(|m| serde_json::to_vec(m).map(|b| b.len()).unwrap_or(0));
    check_metadata_size(metadata.unwrap_or(0)).map_err(|mut problem| {
        problem.error.message = problem.error.message.replace("`metadata`", "`payload.metadata`");
        problem
    })?;
    Ok(session_id)
}

/// The turn an envelope carries (`/api/process`, and a turn relayed to `/message`): one place,
/// so the two entries cannot drift. `session_id` and `text` are the checked ones. The metadata
/// says which droplet the turn came from (`origin`: the relaying Orchestrator's route-back, or
/// the sender).
pub fn envelope_turn(envelope: &Envelope, session_id: String, text: String, owner: Owner) -> Turn {
    let mut metadata = envelope.payload.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    metadata.insert("origin".to_owned(), json!(envelope.origin().wire()));
    Turn {
        session_id: Some(session_id),
        channel: if envelope.is_voice() { Channel::Voice } else { Channel::Chat },
        text,
        metadata,
        trace_id: envelope.trace_id.clone(),
        preview_other_channel: false,
        owner,
        request_id: envelope.request_id.clone(),
        events: None,
    }
}

/// Whether a verified caller may send this envelope: a droplet acts for itself (Voice for its
/// users; droplet 14 may not pose as Voice), and the Orchestrator (droplet 10) relays for
/// anyone. Nothing is checked in development mode, where nobody is verified.
pub fn check_sender(caller: &Caller, envelope: &Envelope) -> Result<(), Box<ErrorBody>> {
    if caller.anchor == Anchor::Unverified {
        return Ok(());
    }
    let claimed = envelope.origin().droplet();
    if caller.droplet == Some(ORCHESTRATOR) || (caller.droplet.is_some() && caller.droplet == claimed) {
        return Ok(());
    }
    let who = caller.droplet.map(|d| format!("droplet {d}")).unwrap_or_else(|| format!("`{}`", caller.subject));
    Err(Box::new(ErrorBody::new(
        ErrorCode::Forbidden,
        format!(
            "the token is {who}'s, but the envelope says it comes from `{}`: a droplet may only send its own turns",
            envelope.origin().wire()
        ),
        json!({"field": "source"}),
    )))
}
