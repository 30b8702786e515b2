//! The stored form of a session (Redis): versioned, so a replica can read what an older one
//! wrote, and refuses with a clear message what a newer one wrote.
//!
//! Format 2 is `{"format": 2, "session": {…}}`. Format 1 (before the field existed) was the bare
//! session, with the pending question's fingerprint as a `DefaultHasher` number.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Session;

/// The format this build writes.
pub const FORMAT: u32 = 2;

/// How a format-1 fingerprint reads after the upgrade (see `Pipeline::fits`).
pub const LEGACY_FINGERPRINT_PREFIX: &str = "v1:";

#[derive(Serialize)]
struct Writing<'a> {
    format: u32,
    session: &'a Session,
}

#[derive(Deserialize)]
struct Reading {
    format: u32,
    session: Value,
}

/// The session as stored.
pub fn encode(session: &Session) -> serde_json::Result<String> {
    serde_json::to_string(&Writing { format: FORMAT, session })
}

/// A stored session of any format this build knows.
pub fn decode(raw: &str) -> Result<Session, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    let is_versioned = value.get("format").is_some();
    if !is_versioned {
        return upgrade_from_1(value);
    }
    let reading: Reading = serde_json::from_value(value).map_err(|e| format!("format field unreadable: {e}"))?;
    match reading.format {
        FORMAT => serde_json::from_value(reading.session).map_err(|e| format!("format {FORMAT}: {e}")),
        newer => Err(format!(
            "written in session format {newer} by a newer release; this one reads formats 1 to {FORMAT} \
             (finish the upgrade of every replica)"
        )),
    }
}

fn upgrade_from_1(mut value: Value) -> Result<Session, String> {
    if let Some(fingerprint) = value.pointer_mut("/pending/fingerprint") {
        if let Some(number) = fingerprint.as_u64() {
            *fingerprint = Value::String(format!("{LEGACY_FINGERPRINT_PREFIX}{number}"));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("format 1: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session as format 1 stored it (captured from the release before format 2).
    const FORMAT_1: &str = r#"{"id":"s1","channel":"voice","history":[{"role":"user","text":"register a service","intent":null,"at":"2026-11-30T10:00:00Z"}],"pending":{"intent":"register_service","step":0,"slots":{"name":"payments"},"fingerprint":13620386431234567890,"asking":"url","tries":1,"answered":"name"},"metadata":{"user":"ana"},"answered":[]}"#;

    #[test]
    fn reads_format_1_and_keeps_the_parked_question() {
        let session = decode(FORMAT_1).expect("format 1 reads");
        assert_eq!(session.id, "s1");
        assert_eq!(session.channel, super::super::Channel::Voice);
        assert_eq!(session.history.len(), 1);
        let pending = session.pending.expect("the parked question survives");
        assert_eq!(pending.fingerprint, "v1:13620386431234567890");
        assert_eq!(pending.asking.as_deref(), Some("url"));
        assert_eq!(pending.slots["name"], "payments");
    }

    #[test]
    fn writes_format_2_and_reads_it_back() {
        let mut session = decode(FORMAT_1).expect("format 1 reads");
        session.pending.as_mut().expect("pending").fingerprint = "ab12".into();
        let raw = encode(&session).expect("encodes");
        assert!(raw.starts_with(r#"{"format":2,"session":{"#), "{raw}");
        assert_eq!(decode(&raw).expect("format 2 reads"), session);
    }

    #[test]
    fn refuses_a_newer_format_with_a_reason() {
        let error = decode(r#"{"format":3,"session":{}}"#).expect_err("format 3 is unknown");
        assert!(error.contains("format 3") && error.contains("newer release"), "{error}");
    }
}
