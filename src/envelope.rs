//! The UDC envelope (MESH.md §2) and how a turn is read out of one (§7).
//!
//! Strict in what we send (decimal-string ids, `udc_version` "1.0", RFC 3339 `Z` timestamps),
//! tolerant in what we accept: ids as `12`, `"12"`, `"droplet-12"`, `"droplet_12"`,
//! `"drop12.fullpotential.ai"` or a service name; missing `udc_version`, `payload` or
//! `timestamp`; `route_back` at the top or inside the payload. Voice's old id 18 is normalised
//! to 6 before any addressing, because 18 is also the Registry v2 host.

use serde_json::{json, Map, Value};

use crate::auth::droplet_number;

/// The Voice droplet's id, and the alias it is also known by.
pub const VOICE: i64 = 6;
pub const VOICE_ALIAS: i64 = 18;
/// Longest trace id accepted.
pub const MAX_TRACE_ID: usize = 128;

/// Who sent or should receive an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    Droplet(i64),
    /// A service name (`"registry"`) kept as written.
    Named(String),
}

impl Party {
    /// Reads any id form the mesh uses; `None` for null, empty or non-scalar values.
    pub fn parse(value: &Value) -> Option<Party> {
        let party = match value {
            Value::Number(n) => Party::Droplet(n.as_i64()?),
            Value::String(s) if !s.trim().is_empty() => match droplet_number(s) {
                Some(id) => Party::Droplet(id),
                None => Party::Named(s.trim().to_owned()),
            },
            _ => return None,
        };
        Some(match party {
            Party::Droplet(VOICE_ALIAS) => Party::Droplet(VOICE),
            other => other,
        })
    }

    pub fn droplet(&self) -> Option<i64> {
        match self {
            Party::Droplet(id) => Some(*id),
            Party::Named(_) => None,
        }
    }

    /// The form we send: a decimal string (MESH.md §2, "id format").
    pub fn wire(&self) -> String {
        match self {
            Party::Droplet(id) => id.to_string(),
            Party::Named(name) => name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub udc_version: String,
    pub trace_id: String,
    pub source: Party,
    pub target: Option<Party>,
    pub message_type: String,
    pub payload: Map<String, Value>,
    pub timestamp: Option<String>,
    /// Top level wins over `payload.route_back`.
    pub route_back: Option<Party>,
    /// The sender's id for this turn: `payload.request_id`, else a top-level `request_id`.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope must be a JSON object")]
    NotAnObject,
    #[error("`{0}` is missing or empty")]
    Missing(&'static str),
    #[error("`trace_id` must be at most {MAX_TRACE_ID} characters")]
    TraceIdTooLong,
    #[error("`payload` must be a JSON object")]
    PayloadNotObject,
    #[error("`{0}` is not a droplet id or name")]
    BadParty(&'static str),
    #[error("no text to answer: `payload.message` (or `text`, `transcript`) is missing or empty")]
    NoText,
    #[error("`payload.message` is {0} characters long; the limit is 5000")]
    TextTooLong(usize),
}

impl Envelope {
    pub fn parse(value: &Value) -> Result<Envelope, EnvelopeError> {
        let object = value.as_object().ok_or(EnvelopeError::NotAnObject)?;
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let trace_id = text("trace_id").ok_or(EnvelopeError::Missing("trace_id"))?;
        if trace_id.chars().count() > MAX_TRACE_ID {
            return Err(EnvelopeError::TraceIdTooLong);
        }
        let source = object.get("source").ok_or(EnvelopeError::Missing("source"))?;
        let source = Party::parse(source).ok_or(EnvelopeError::BadParty("source"))?;
        let target = match object.get("target") {
            None | Some(Value::Null) => None,
            Some(value) => Some(Party::parse(value).ok_or(EnvelopeError::BadParty("target"))?),
        };
        let payload = match object.get("payload") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err(EnvelopeError::PayloadNotObject),
        };
        let route_back = object
            .get("route_back")
            .or_else(|| payload.get("route_back"))
            .filter(|v| !v.is_null())
            .map(|v| Party::parse(v).ok_or(EnvelopeError::BadParty("route_back")))
            .transpose()?;
        let request_id =
            payload.get("request_id").and_then(Value::as_str).or_else(|| text("request_id")).map(str::to_owned);
        Ok(Envelope {
            udc_version: text("udc_version").unwrap_or("1.0").to_owned(),
            trace_id: trace_id.to_owned(),
            source,
            target,
            message_type: text("message_type").ok_or(EnvelopeError::Missing("message_type"))?.to_owned(),
            payload,
            timestamp: text("timestamp").map(str::to_owned),
            request_id,
            route_back,
        })
    }

    /// The user's words: `payload.message`, else `text`, else `transcript`; 1–5000 characters.
    pub fn user_text(&self) -> Result<String, EnvelopeError> {
        let text = ["message", "text", "transcript"]
            .iter()
            .find_map(|key| self.payload.get(*key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()))
            .ok_or(EnvelopeError::NoText)?;
        let length = text.chars().count();
        if length > 5000 {
            return Err(EnvelopeError::TextTooLong(length));
        }
        Ok(text.to_owned())
    }

    /// `payload.metadata.user_id`, else `payload.user_id`, else `"unknown"`.
    pub fn user_id(&self) -> String {
        self.payload
            .get("metadata")
            .and_then(|m| m.get("user_id"))
            .or_else(|| self.payload.get("user_id"))
            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_i64().map(|n| n.to_string())))
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Who the turn comes from: the source, unless it is the Orchestrator relaying (then the
    /// route-back).
    pub fn origin(&self) -> Party {
        match (&self.source, &self.route_back) {
            (Party::Droplet(crate::droplet_ids::ORCHESTRATOR), Some(route_back)) => route_back.clone(),
            (source, _) => source.clone(),
        }
    }

    pub fn is_voice(&self) -> bool {
        self.origin().droplet() == Some(VOICE)
    }

    /// The session a turn from this envelope belongs to (MESH.md §7).
    pub fn session_id(&self) -> String {
        let user = self.user_id();
        if self.is_voice() {
            return format!("droplet_{VOICE}_{user}");
        }
        if let Some(session) = self.payload.get("metadata").and_then(|m| m.get("session_id")).and_then(Value::as_str) {
            return session.to_owned();
        }
        format!("droplet_{}_{user}", self.origin().wire())
    }

    /// Where the answer goes: the route-back, else the origin.
    pub fn reply_target(&self) -> Party {
        self.route_back.clone().unwrap_or_else(|| self.origin())
    }
}

/// The envelope we answer `/api/process` with (`envelope_response_route_back.json`).
pub fn response(request: &Envelope, our_id: i64, payload: Value) -> Value {
    json!({
        "udc_version": "1.0",
        "trace_id": request.trace_id,
        "source": our_id.to_string(),
        "target": request.reply_target().wire(),
        "message_type": "response",
        "payload": payload,
        "timestamp": crate::util::utc_timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_form_normalises() {
        for (value, expected) in [
            (json!(12), Party::Droplet(12)),
            (json!("12"), Party::Droplet(12)),
            (json!("droplet-12"), Party::Droplet(12)),
            (json!("droplet_12"), Party::Droplet(12)),
            (json!("drop12.fullpotential.ai"), Party::Droplet(12)),
            (json!("registry"), Party::Named("registry".into())),
            (json!(18), Party::Droplet(VOICE)),
            (json!("droplet-18"), Party::Droplet(VOICE)),
        ] {
            assert_eq!(Party::parse(&value), Some(expected), "{value}");
        }
        assert_eq!(Party::parse(&json!(null)), None);
        assert_eq!(Party::parse(&json!([1])), None);
    }

    #[test]
    fn the_voice_fixture_reads_as_a_voice_turn() {
        let fixture: Value = serde_json::from_str(include_str!("../tests/fixtures/mesh/envelope_voice_process.json"))
            .expect("fixture is JSON");
        let envelope = Envelope::parse(&fixture).expect("valid");
        assert!(envelope.is_voice());
        assert_eq!(envelope.session_id(), "droplet_6_voice-user-311");
        assert_eq!(envelope.user_text().as_deref(), Ok("What is the status of the orchestrator?"));
        assert_eq!(envelope.reply_target(), Party::Droplet(VOICE));
    }

    #[test]
    fn tolerant_of_what_peers_omit_and_clear_about_what_is_wrong() {
        let minimal =
            Envelope::parse(&json!({"trace_id": "reg-1", "source": 2, "message_type": "query"})).expect("valid");
        assert_eq!((minimal.udc_version.as_str(), minimal.payload.len()), ("1.0", 0));
        assert_eq!(minimal.user_text(), Err(EnvelopeError::NoText));
        assert_eq!(Envelope::parse(&json!([])), Err(EnvelopeError::NotAnObject));
        assert_eq!(
            Envelope::parse(&json!({"trace_id": "t", "source": "6", "message_type": "q", "payload": "x"})),
            Err(EnvelopeError::PayloadNotObject)
        );
        let relayed = Envelope::parse(&json!({"trace_id": "t", "source": "droplet-10", "message_type": "query",
            "payload": {"message": "hi", "route_back": "18", "metadata": {"user_id": "u"}}}))
        .expect("valid");
        assert_eq!(relayed.origin(), Party::Droplet(VOICE), "relayed by 10, answered to the voice droplet");
        assert_eq!(relayed.session_id(), "droplet_6_u");
    }
}
