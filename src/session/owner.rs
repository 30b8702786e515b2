//! Whose a session is. A session is stored under its id *and* its owner, so a caller who sends
//! someone else's session id reaches a session of their own with that id — the same answer as
//! for an unknown session — and never reads or completes another's conversation.
//!
//! The owner is the entry point the turn came through (a client on `/api/chat` and `/ws`, a
//! droplet on `/api/process`, a relay on `/message`) and the verified token subject. With no
//! Registry key nothing is verified: clients then share one space (development, the playground),
//! kept apart from relayed and processed turns all the same.

use sha2::{Digest, Sha256};

/// How a turn reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `/api/chat` and `/ws`: a person's client.
    Client,
    /// `/api/process`: another droplet (Voice) acting for its users.
    Process,
    /// `/message`: an envelope relayed by the Orchestrator.
    Relay,
}

impl Entry {
    fn as_str(self) -> &'static str {
        match self {
            Entry::Client => "client",
            Entry::Process => "process",
            Entry::Relay => "relay",
        }
    }
}

/// The owner of the sessions a turn may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    entry: Entry,
    /// The verified token subject; `None` when nothing was verified.
    subject: Option<String>,
}

impl Default for Owner {
    fn default() -> Self {
        Owner::unverified_client()
    }
}

impl Owner {
    pub fn new(entry: Entry, subject: Option<&str>) -> Self {
        Owner { entry, subject: subject.filter(|s| !s.is_empty()).map(str::to_owned) }
    }

    /// A client in development mode (no key: nobody is verified). The CLI and fixtures use it.
    pub fn unverified_client() -> Self {
        Owner::new(Entry::Client, None)
    }

    /// The key a session with this id is stored under. An unverified client's key is the id
    /// itself (what development mode always used); every other owner's id gets its entry point
    /// and a digest of its subject appended, so keys stay short and printable whatever a
    /// subject holds.
    pub fn key(&self, session_id: &str) -> String {
        match (&self.entry, &self.subject) {
            (Entry::Client, None) => session_id.to_owned(),
            (entry, None) => format!("{session_id}~{}", entry.as_str()),
            (entry, Some(subject)) => {
                let digest = Sha256::digest(subject.as_bytes());
                let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
                format!("{session_id}~{}.{short}", entry.as_str())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_owner_has_its_own_space_for_the_same_id() {
        let alice = Owner::new(Entry::Client, Some("alice")).key("s1");
        let mallory = Owner::new(Entry::Client, Some("mallory")).key("s1");
        let relayed = Owner::new(Entry::Relay, None).key("s1");
        let processed = Owner::new(Entry::Process, Some("alice")).key("s1");
        let open = Owner::unverified_client().key("s1");
        let all = [&alice, &mallory, &relayed, &processed, &open];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(open, "s1", "development mode keeps its ids");
        assert_eq!(alice, Owner::new(Entry::Client, Some("alice")).key("s1"), "stable");
        assert!(alice.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:~".contains(c)), "{alice}");
    }
}
