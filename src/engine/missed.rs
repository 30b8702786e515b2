//! Which turns are kept for stewards to review (`session::missed`): the ones the assistant did
//! not understand well.

use crate::session::{Channel, MissedMessage, MissedReason};
use crate::trace::{IntentSource, IntentTrace, ModelStatus};

/// What the turn's understanding came to, as far as keeping it goes.
pub(super) struct Understood<'a> {
    pub(super) why: &'a IntentTrace,
    /// The model's verdict: unsure when it asked back.
    pub(super) llm_status: ModelStatus,
    /// The rules guessed: no pattern, and no clear, close example.
    pub(super) rules_unsure: bool,
    pub(super) fallback: &'a str,
}

/// Why this turn is worth a steward's look, or `None` when it was understood (or was an answer
/// to a question, a replay: not a message to learn from).
pub(super) fn why_kept(turn: &Understood<'_>) -> Option<MissedReason> {
    if !matches!(turn.why.source, IntentSource::Rules | IntentSource::Fallback | IntentSource::Llm) {
        return None;
    }
    if turn.why.id == turn.fallback || turn.why.source == IntentSource::Fallback {
        Some(MissedReason::Fallback)
    } else if turn.llm_status == ModelStatus::Unsure {
        Some(MissedReason::Unsure)
    } else if turn.why.source == IntentSource::Llm {
        Some(MissedReason::Model)
    } else if turn.rules_unsure {
        Some(MissedReason::LowConfidence)
    } else {
        None
    }
}

/// The messages to keep for this turn: the whole message when it was not understood well, and
/// every part of it nobody understood.
pub(super) fn kept(turn: &Understood<'_>, said: &str, unread: &[String], channel: Channel) -> Vec<MissedMessage> {
    let runner_up = turn.why.runner_up.as_ref().map(|r| r.id.clone());
    let mut kept: Vec<MissedMessage> = why_kept(turn)
        .map(|why| MissedMessage::new(said.to_owned(), channel, &turn.why.id, why, turn.why.score, runner_up))
        .into_iter()
        .collect();
    if kept.is_empty() {
        kept.extend(unread.iter().map(|part| {
            MissedMessage::new(part.clone(), channel, turn.fallback, MissedReason::PartNotUnderstood, 0.0, None)
        }));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(id: &str, source: &str) -> IntentTrace {
        let source = source.parse().expect("a source name");
        IntentTrace { id: id.to_owned(), source, score: 0.3, ..IntentTrace::default() }
    }

    fn turn<'a>(why: &'a IntentTrace, llm_status: &str, rules_unsure: bool) -> Understood<'a> {
        let llm_status = llm_status.parse().expect("a status name");
        Understood { why, llm_status, rules_unsure, fallback: "fallback" }
    }

    #[test]
    fn only_turns_not_understood_well_are_kept() {
        let fallback = why("fallback", "fallback");
        let guessed = why("droplet_status", "rules");
        let model = why("droplet_status", "llm");
        let answer = why("register_service", "resumed");
        assert_eq!(why_kept(&turn(&fallback, "off", false)).map(MissedReason::as_str), Some("fallback"));
        assert_eq!(why_kept(&turn(&guessed, "off", true)).map(MissedReason::as_str), Some("low_confidence"));
        assert_eq!(why_kept(&turn(&guessed, "off", false)), None);
        assert_eq!(why_kept(&turn(&model, "understood", false)).map(MissedReason::as_str), Some("model"));
        assert_eq!(why_kept(&turn(&fallback, "unsure", false)).map(MissedReason::as_str), Some("fallback"));
        assert_eq!(why_kept(&turn(&guessed, "unsure", true)).map(MissedReason::as_str), Some("unsure"));
        assert_eq!(why_kept(&turn(&answer, "off", true)), None, "an answer to a question is not a request");
    }

    #[test]
    fn a_part_nobody_understood_is_kept_on_its_own() {
        let guessed = why("droplet_status", "rules");
        let kept = kept(
            &turn(&guessed, "off", false),
            "status of 2 and sing me a song",
            &["sing me a song".to_owned()],
            Channel::Chat,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].text, "sing me a song");
        assert_eq!(kept[0].why.as_str(), "part_not_understood");
    }
}
