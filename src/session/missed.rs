//! Messages the assistant did not understand well, kept so a steward can teach it.
//!
//! Every turn that ended in the fallback, in a question back from the model, in a rules guess
//! that was not confident, or in an intent only the model found, and every part of a message
//! nobody understood, is noted with what the assistant made of it. The session store keeps them
//! (in memory, or in Redis shared by every replica), bounded by count and age, with sensitive
//! slot values already masked. `GET /api/admin/missed` groups them by what they say, so "status
//! of droplet 7" and "status of droplet 9" are one line with a count; `chat-orchestrator triage`
//! turns one into an example of the right intent.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Channel;

/// How many missed messages are kept, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedLimits {
    pub kept: usize,
    pub max_age: Duration,
}

impl Default for MissedLimits {
    fn default() -> Self {
        MissedLimits { kept: 1000, max_age: Duration::from_secs(30 * 24 * 3600) }
    }
}

crate::api_state! {
    /// Why a message was kept for stewards to review.
    pub enum MissedReason {
        /// Nothing matched: the fallback answered.
        Fallback,
        /// The model was not sure and asked back.
        Unsure,
        /// The rules guessed: no pattern, and no clear, close example.
        LowConfidence,
        /// Only the language model found the intent.
        Model,
        /// A part of a several-request message nobody understood.
        PartNotUnderstood,
    }
}

/// One message that was not understood well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct MissedMessage {
    /// What the user said (sensitive slot values masked).
    pub text: String,
    /// `chat` or `voice`.
    pub channel: String,
    /// The intent that answered.
    pub intent: String,
    /// Why it was kept.
    pub why: MissedReason,
    /// The score the intent got.
    pub score: f64,
    /// The intent that came second, when there was one.
    pub runner_up: Option<String>,
    /// RFC 3339 UTC.
    pub at: String,
    /// Seconds since 1970, for the age limit.
    pub at_epoch: u64,
}

impl MissedMessage {
    pub fn new(
        text: String,
        channel: Channel,
        intent: &str,
        why: MissedReason,
        score: f64,
        runner_up: Option<String>,
    ) -> Self {
        MissedMessage {
            text,
            channel: channel.as_str().to_owned(),
            intent: intent.to_owned(),
            why,
            score,
            runner_up,
            at: crate::util::utc_timestamp(),
            at_epoch: now_epoch(),
        }
    }

    /// Whether it is still within `max_age`.
    pub fn is_recent(&self, max_age: Duration) -> bool {
        now_epoch().saturating_sub(self.at_epoch) <= max_age.as_secs()
    }
}

fn now_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Missed messages that say the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct MissedGroup {
    /// What they have in common, as the matcher reads them (`#number` for any number).
    pub reads_as: String,
    /// How many times it was said.
    pub count: usize,
    /// Up to five of the messages, newest first, each once.
    pub examples: Vec<String>,
    /// Which intents answered them, with how often.
    pub answered_by: BTreeMap<String, usize>,
    /// Why they were kept, with how often.
    pub why: BTreeMap<String, usize>,
    /// When it was last said (RFC 3339 UTC).
    pub last_at: String,
}

/// Groups messages by `key` (what the matcher reads in them), most said first.
pub fn group(messages: &[MissedMessage], key: impl Fn(&str) -> String) -> Vec<MissedGroup> {
    let mut groups: Vec<MissedGroup> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for message in messages {
        let mut reads_as = key(&message.text);
        if reads_as.is_empty() {
            reads_as = message.text.to_lowercase();
        }
        let at = *index.entry(reads_as.clone()).or_insert_with(|| {
            groups.push(MissedGroup {
                reads_as,
                count: 0,
                examples: Vec::new(),
                answered_by: BTreeMap::new(),
                why: BTreeMap::new(),
                last_at: message.at.clone(),
            });
            groups.len() - 1
        });
        let group = &mut groups[at];
        group.count += 1;
        if group.examples.len() < 5 && !group.examples.contains(&message.text) {
            group.examples.push(message.text.clone());
        }
        *group.answered_by.entry(message.intent.clone()).or_default() += 1;
        *group.why.entry(message.why.as_str().to_owned()).or_default() += 1;
    }
    // stable: equal counts stay newest first (messages come newest first)
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str) -> MissedMessage {
        MissedMessage::new(text.to_owned(), Channel::Chat, "fallback", MissedReason::Fallback, 0.1, None)
    }

    #[test]
    fn messages_that_read_the_same_are_one_group_with_a_count() {
        let messages =
            [said("status of droplet 7"), said("weather?"), said("status of droplet 9"), said("status of droplet 7")];
        let key = |text: &str| text.replace(|c: char| c.is_ascii_digit(), "#");
        let groups = group(&messages, key);
        assert_eq!(groups[0].reads_as, "status of droplet #");
        assert_eq!(groups[0].count, 3);
        assert_eq!(groups[0].examples, vec!["status of droplet 7", "status of droplet 9"]);
        assert_eq!(groups[0].answered_by.get("fallback"), Some(&3));
        assert_eq!(groups[1].count, 1);
    }

    #[test]
    fn old_messages_are_not_recent() {
        let mut old = said("hello");
        old.at_epoch -= 3600;
        assert!(!old.is_recent(Duration::from_secs(60)));
        assert!(said("hello").is_recent(Duration::from_secs(60)));
    }
}
