//! Follow-ups: a message read in the light of what the conversation is about.
//!
//! The session keeps a [`Focus`]: the last request answered that takes a value, and the values
//! the user named, each with the turn it came from; a value is in focus for the configuration's
//! `focus.turns` of the user's messages after it. With it, and no model:
//!
//! - a message that names only a new value and follow-up words ("and the orchestrator?", "what
//!   about 14", "sorry, I meant the dashboard", "back to the deck") asks the last request again
//!   with that value ([`IntentSource::FollowUp`]), when that request changes nothing;
//! - a request that leaves a `from_context` slot open ("is it up?", "which endpoints has it
//!   got", "endpoints?") takes the value in focus of the slot's type, noted as `droplet ← focus,
//!   turn 3`; a state-changing request takes one only when it reads its values back first;
//! - a message of that shape with nothing in focus ("and 6?" as a first message) makes no sense
//!   alone, so it goes to the fallback instead of being guessed at.
//!
//! Sensitive values never enter the focus.

use std::sync::Arc;

use serde_json::Map;

use super::plan::Plan;
use crate::config::CompiledConfig;
use crate::nlu::{Lexicon, Reading};
use crate::pipeline::Pipeline;
use crate::session::{Choice, Focus, FocusValue, Session};
use crate::slots::fill::Said;
use crate::steps::Step;
use crate::trace::{IntentSource, IntentTrace};

/// How many values the focus keeps.
const MAX_VALUES: usize = 6;

/// The focus as of this turn: what is still fresh enough to be meant.
pub struct InFocus<'a> {
    focus: &'a Focus,
    /// This message's turn number.
    turn: u64,
    /// For how many turns a value stays in focus.
    keep: u64,
}

impl<'a> InFocus<'a> {
    pub fn new(focus: &'a Focus, turn: u64, keep: u32) -> Self {
        InFocus { focus, turn, keep: u64::from(keep) }
    }

    /// The intent the message picks from the choice the last reply offered ("the first one",
    /// "the second", "remove it"), and the message that was torn between them. Only the very next
    /// message picks, and a whole request of its own for another intent is no pick.
    pub fn picks(&self, config: &CompiledConfig, reading: &Reading) -> Option<(String, &'a str)> {
        let choice = self.focus.choice.as_ref().filter(|c| self.turn == c.turn + 1)?;
        let english = crate::nlu::Lexicon::english();
        let short = reading.words.iter().filter(|w| !english.fillers.contains(&w.text)).count() <= 3;
        // "the first one", "second", or only "2"
        let ordinal = reading
            .numbers
            .iter()
            .find(|n| short && (n.ordinal || reading.words.len() == 1))
            .and_then(|n| n.integer())
            .and_then(|n| usize::try_from(n).ok()?.checked_sub(1))
            .and_then(|index| choice.intents.get(index).cloned());
        let picked = ordinal.or_else(|| {
            let fresh = config.resolver.resolve_reading(reading);
            let elsewhere = fresh.confident && !choice.intents.contains(&fresh.intent);
            config.resolver.pick(reading, &choice.intents).filter(|_| !elsewhere)
        })?;
        Some((picked, choice.text.as_str()))
    }

    /// Nothing in focus (a first message, follow-ups turned off).
    pub fn none() -> InFocus<'static> {
        static EMPTY: Focus = Focus { intent: None, intent_turn: 0, values: Vec::new(), choice: None };
        InFocus { focus: &EMPTY, turn: 0, keep: 0 }
    }

    fn fresh(&self, turn: u64) -> bool {
        self.turn > turn && self.turn - turn <= self.keep
    }

    /// The last request answered, while it is fresh.
    fn intent(&self) -> Option<(&'a str, u64)> {
        let intent = self.focus.intent.as_deref()?;
        self.fresh(self.focus.intent_turn).then_some((intent, self.focus.intent_turn))
    }

    /// Whether the message names only a new value for the last request ("now the dashboard"):
    /// at a read-back that is another request, not an answer.
    pub(super) fn follows_up(&self, reading: &Reading) -> bool {
        self.intent().is_some() && names_only_values(reading)
    }

    /// What the conversation is about, in a sentence for the language model (`None`: nothing).
    pub fn describe(&self, config: &CompiledConfig) -> Option<String> {
        let droplets: Vec<String> = self
            .droplets()
            .iter()
            .filter_map(|id| config.catalogue.by_id(*id))
            .map(|d| format!("{} (droplet {})", d.name, d.id))
            .collect();
        let intent = self.intent().map(|(intent, _)| format!("the last request answered was `{intent}`"));
        if droplets.is_empty() && intent.is_none() {
            return None;
        }
        let mut about: Vec<String> = intent.into_iter().collect();
        if !droplets.is_empty() {
            about.push(format!("the droplets talked about, the last first: {}", droplets.join(", ")));
        }
        Some(format!(
            "What the conversation is about (a follow-up such as \"is it up?\" or \"and its endpoints?\" may mean it): {}.",
            about.join("; ")
        ))
    }

    /// The droplets in focus, the last talked about first.
    fn droplets(&self) -> Vec<i64> {
        let droplet = crate::slots::SlotKind::Droplet.as_str();
        self.focus
            .values
            .iter()
            .filter(|v| self.fresh(v.turn) && v.kind == droplet)
            .filter_map(|v| v.value.as_i64())
            .collect()
    }

    /// The freshest value for a slot of this name and type (or, for a droplet, any droplet).
    fn value_for(&self, name: &str, kind: &str) -> Option<&'a FocusValue> {
        self.focus
            .values
            .iter()
            .filter(|v| self.fresh(v.turn) && v.kind == kind)
            .find(|v| v.slot == name || kind == crate::slots::SlotKind::Droplet.as_str())
    }
}

/// The message with "the other one" / "the other orchestrator" read as the droplet it points at,
/// when the focus and the catalogue make it one droplet: the droplet before the one last
/// talked about, or the only other droplet whose name has that word. `None`: nothing to point at.
pub fn point_at_other(config: &CompiledConfig, reading: &Reading, focus: &InFocus<'_>) -> Option<Reading> {
    let english = Lexicon::english();
    // "endpoints for both": the two droplets last talked about
    if let Some(both) = reading.words.iter().position(|w| english.both_words.contains(&w.text)) {
        let droplets = focus.droplets();
        if reading.droplets.is_empty() && droplets.len() >= 2 {
            let mut pointed_at = reading.clone();
            pointed_at.droplets = droplets.iter().take(2).rev().map(|id| (both, both + 1, *id)).collect();
            return Some(pointed_at);
        }
    }
    // "the other one", "that other droplet": one thing ("any other droplets" is several)
    let other = reading.words.iter().position(|w| english.other_words.contains(&w.text))?;
    let next = reading.words.get(other + 1)?;
    let determined = other
        .checked_sub(1)
        .and_then(|i| reading.words.get(i))
        .is_some_and(|w| english.other_determiners.contains(&w.text));
    if !determined || next.text.ends_with('s') {
        return None;
    }
    let droplets: Vec<i64> = focus.droplets();
    let last = *droplets.first()?;
    let analyzer = config.resolver.analyzer();
    let pointed = if next.text == "one" || analyzer.introduces_droplet(&next.text) {
        droplets.iter().copied().find(|id| *id != last)?
    } else {
        // "the other orchestrator": the one droplet besides the last whose name has the word
        let named = analyzer.droplets_named_with(&next.text);
        match named.iter().filter(|id| **id != last).collect::<Vec<_>>().as_slice() {
            [only] => **only,
            _ => return None,
        }
    };
    let (first, end) = (other, other + 2);
    let mut pointed_at = reading.clone();
    pointed_at.droplets.retain(|(f, e, _)| *e <= first || *f >= end);
    pointed_at.droplets.push((first, end, pointed));
    pointed_at.droplets.sort_by_key(|(f, _, _)| *f);
    Some(pointed_at)
}

/// The plans for a fresh message, read as a follow-up where it is one.
pub fn follow_up(config: &CompiledConfig, reading: &Arc<Reading>, plans: Vec<Plan>, focus: &InFocus<'_>) -> Vec<Plan> {
    let [only] = plans.as_slice() else { return plans };
    if names_only_values(reading) {
        let repeated = focus.intent().and_then(|(intent, turn)| repeat(config, reading, intent, turn));
        match repeated {
            Some(plan) => return vec![plan],
            // "and 6?" with nothing to go on: no guess at what it continues
            None if has_marker(reading) && only.intent != config.resolver.fallback() => {
                return vec![nothing_to_follow(config, reading, only)];
            }
            None => {}
        }
    }
    plans.into_iter().map(|plan| with_focus_values(config, plan, focus)).collect()
}

/// Whether the message is only values (droplets, numbers) and the words a follow-up wraps around
/// them ("and the deck?", "what about 14", "sorry, I meant the dashboard"): nothing of its own
/// says what is wanted.
pub(super) fn names_only_values(reading: &Reading) -> bool {
    if reading.droplets.is_empty() && reading.numbers.is_empty() {
        return false;
    }
    let mut covered = vec![false; reading.words.len()];
    let mut cover = |first: usize, end: usize| covered.iter_mut().take(end).skip(first).for_each(|c| *c = true);
    for (first, end, _) in &reading.droplets {
        cover(*first, *end);
    }
    for number in &reading.numbers {
        cover(number.first, number.end);
    }
    for (first, end) in markers(reading) {
        cover(first, end);
    }
    reading.words.iter().zip(&covered).all(|(word, covered)| *covered || wraps(&word.text))
}

/// Whether a word is one a follow-up wraps around its value: a filler or a follow-up word.
fn wraps(word: &str) -> bool {
    let english = Lexicon::english();
    english.fillers.contains(word) || english.follow_up_words.contains(word)
}

/// Where follow-up markers stand in the message, as word ranges.
fn markers(reading: &Reading) -> Vec<(usize, usize)> {
    let markers = &Lexicon::english().follow_up_markers;
    (0..reading.words.len())
        .filter_map(|first| {
            let used = crate::nlu::text::longest_phrase_at(markers.iter(), &reading.words, first)?;
            Some((first, first + used))
        })
        .collect()
}

/// Whether the message says it goes on from something said before: it opens with a follow-up
/// marker ("and …", "ok, what about …") or ends with one ("… too", "… instead").
fn has_marker(reading: &Reading) -> bool {
    let english = Lexicon::english();
    let opening = reading.words.iter().position(|w| !wraps(&w.text)).unwrap_or(reading.words.len());
    let closes = |first: usize, end: usize| {
        let marker: Vec<&str> = reading.words[first..end].iter().map(|w| w.text.as_str()).collect();
        end == reading.words.len() && english.follow_up_closers.contains(&marker.join(" "))
    };
    markers(reading).iter().any(|(first, end)| {
        let before_only_wrapping = reading.words[..*first].iter().all(|w| wraps(&w.text));
        (before_only_wrapping && *first <= opening) || closes(*first, *end)
    })
}

/// The last request again, on this message's value, when it changes nothing and has a slot the
/// message fills.
fn repeat(config: &CompiledConfig, reading: &Arc<Reading>, intent: &str, turn: u64) -> Option<Plan> {
    let pipeline = config.pipeline(intent).filter(|p| !p.changes_state)?;
    // "no, not the dashboard, the deck": the value said not to be meant is not asked about
    let reading = &Arc::new(without_negated(reading));
    let extract = pipeline.first_extract()?;
    let mut probe = Map::new();
    let filled =
        extract.reader(pipeline, &config.catalogue, config.resolver.analyzer()).fill(reading, Said::Fresh, &mut probe);
    if probe.is_empty() && filled.errors.is_empty() {
        return None;
    }
    let why = IntentTrace {
        id: pipeline.intent.clone(),
        source: IntentSource::FollowUp,
        score: 1.0,
        reason: format!("a follow-up naming only a new value: the request of turn {turn} (`{intent}`) again"),
        runner_up: None,
    };
    Some(Plan::new(pipeline, reading.clone(), why))
}

/// The message without the values it says are not meant ("not the dashboard").
fn without_negated(reading: &Reading) -> Reading {
    let english = Lexicon::english();
    let negated = |first: usize| {
        // the word before the value, over an article: "not the dashboard", "not 14"
        let mut at = first;
        while at > 0 && english.definite_articles.contains(&reading.words[at - 1].text) {
            at -= 1;
        }
        at > 0 && english.negations.contains(&reading.words[at - 1].text)
    };
    let mut kept = reading.clone();
    kept.droplets.retain(|(first, _, _)| !negated(*first));
    kept.numbers.retain(|number| !negated(number.first));
    kept
}

/// The fallback for a follow-up with nothing in focus to follow.
fn nothing_to_follow(config: &CompiledConfig, reading: &Arc<Reading>, guessed: &Plan) -> Plan {
    let fallback = config.resolver.fallback();
    let why = IntentTrace {
        id: fallback.to_owned(),
        source: IntentSource::Fallback,
        score: 0.0,
        reason: format!(
            "a follow-up (\"{}\") with nothing said before to follow; not guessed as `{}`",
            reading.text.trim(),
            guessed.intent
        ),
        runner_up: None,
    };
    match config.pipeline(fallback) {
        Some(pipeline) => Plan::new(pipeline, reading.clone(), why),
        None => Plan { why, ..guessed.clone() },
    }
}

/// A plan whose `from_context` slots the message leaves open takes the values in focus.
pub fn with_focus_values(config: &CompiledConfig, mut plan: Plan, focus: &InFocus<'_>) -> Plan {
    if !focus.focus.values.iter().any(|v| focus.fresh(v.turn)) {
        return plan;
    }
    let Some(pipeline) = config.pipeline(&plan.intent) else { return plan };
    let Some(extract) = pipeline.first_extract() else { return plan };
    // a value from the focus goes into a command only where the command reads it back first;
    // "the other one" in a clause of its own was not read as the droplet it points at
    let english = Lexicon::english();
    let pointing = plan
        .reading
        .words
        .iter()
        .any(|w| english.other_words.contains(&w.text) || english.both_words.contains(&w.text));
    if !may_take_focus(pipeline) || pointing {
        return plan;
    }
    let reader = extract.reader(pipeline, &config.catalogue, config.resolver.analyzer());
    let open: Vec<&crate::slots::SlotDef> =
        reader.wanted().filter(|s| s.from_context && !s.sensitive && !plan.slots.contains_key(&s.name)).collect();
    // a message that names a droplet gives every droplet slot it has: nothing to take
    let droplet = crate::slots::SlotKind::Droplet;
    if open.is_empty() || (!plan.reading.droplets.is_empty() && open.iter().all(|s| s.kind == droplet)) {
        return plan;
    }
    let mut said = plan.slots.clone();
    reader.fill(&plan.reading, Said::Fresh, &mut said);
    for slot in open.into_iter().filter(|s| !said.contains_key(&s.name)) {
        if let Some(value) = focus.value_for(&slot.name, slot.kind.as_str()) {
            plan.slots.insert(slot.name.clone(), value.value.clone());
            plan.sources.insert(slot.name.clone(), format!("focus, turn {}", value.turn));
            plan.notes.push(format!("{} ← focus, turn {}", slot.name, value.turn));
        }
    }
    plan
}

/// Whether a pipeline may take a value from the focus: it changes nothing, or it reads its values
/// back before it does.
pub(super) fn may_take_focus(pipeline: &Pipeline) -> bool {
    !pipeline.changes_state || reads_back(pipeline)
}

/// Whether an unconditional `confirm` step reads the values back before the pipeline's calls.
fn reads_back(pipeline: &Pipeline) -> bool {
    let first_query = pipeline.steps.iter().position(|s| matches!(s.step, Step::Query(_)));
    let confirm = pipeline.steps.iter().position(|s| matches!(s.step, Step::Confirm(_)) && s.when.is_none());
    matches!((confirm, first_query), (Some(c), Some(q)) if c < q) || (confirm.is_some() && first_query.is_none())
}

/// Keeps what the conversation is about after a turn: the request it answered (unless it is
/// still asking for it) and the values named, the droplets the message named included ("how's
/// onboarding going" names the Onboarding droplet, though that intent takes none).
pub fn remember(config: &CompiledConfig, settled: &super::Settled, reading: &Reading, session: &mut Session) {
    // the reply asked which of two intents was meant: the next message may pick one
    let offered: Vec<String> = settled.state.understanding["choices"]
        .as_array()
        .map(|choices| choices.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    session.focus.choice = (offered.len() > 1 && settled.pending.is_none()).then(|| Choice {
        intents: offered,
        text: reading.text.clone(),
        turn: session.turns,
    });
    let asking = settled.pending.as_ref().is_some_and(|p| p.intent == settled.intent);
    let Some(pipeline) = config.pipeline(&settled.intent).filter(|p| !asking && !p.fallback) else { return };
    let turn = session.turns;
    let mut named: Vec<FocusValue> = pipeline
        .slots
        .iter()
        .filter(|slot| slot.from_context && !slot.sensitive)
        .filter_map(|slot| {
            let value = settled.state.slots.get(&slot.name)?;
            Some(FocusValue {
                slot: slot.name.clone(),
                kind: slot.kind.as_str().to_owned(),
                value: value.clone(),
                turn,
            })
        })
        .collect();
    // every droplet the message named, after the one the request ran with: "is the registry or
    // the orchestrator down?" leaves both in mind ("and the other one?")
    let droplet = crate::slots::SlotKind::Droplet.as_str();
    // a message that gave a sensitive value may hold a droplet's name inside it: nothing of it
    let secret = pipeline.slots.iter().any(|slot| slot.sensitive && settled.state.slots.contains_key(&slot.name));
    for (_, _, id) in reading.droplets.iter().filter(|_| !secret) {
        let value = serde_json::Value::from(*id);
        if !named.iter().any(|v| v.kind == droplet && v.value == value) {
            named.push(FocusValue { slot: droplet.to_owned(), kind: droplet.to_owned(), value, turn });
        }
    }
    let focus = &mut session.focus;
    if !pipeline.changes_state && pipeline.first_extract().is_some() {
        focus.intent = Some(pipeline.intent.clone());
        focus.intent_turn = turn;
    }
    let keep = u64::from(config.focus_turns);
    // a newer value replaces the one before it in its slot; droplets are kept by which droplet
    // they are (the most recent first, so "it" is the last one named and "the other one" the one
    // before)
    focus.values.retain(|old| {
        let replaced = named.iter().any(|new| match new.kind == droplet && old.kind == droplet {
            true => new.value == old.value,
            false => new.slot == old.slot,
        });
        !replaced && turn.saturating_sub(old.turn) <= keep
    });
    for value in named.into_iter().rev() {
        focus.values.insert(0, value);
    }
    // what a person can still mean by "it" or "the other one" is a handful of values
    focus.values.truncate(MAX_VALUES);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::analyzer::test_analyzer as analyzer;

    #[test]
    fn a_message_of_values_and_follow_up_words_names_only_values() {
        let analyzer = analyzer();
        for said in
            ["and the deck?", "what about droplet 14", "how about 10", "sorry, I meant the registry", "deck too"]
        {
            assert!(names_only_values(&analyzer.read(said)), "{said}");
        }
        for said in ["status of the deck", "what's on the deck right now", "is it up?", "what endpoints are there"] {
            assert!(!names_only_values(&analyzer.read(said)), "{said}");
        }
    }

    #[test]
    fn a_follow_up_marker_opens_or_closes_the_message() {
        let analyzer = analyzer();
        for said in ["and 6?", "ok what about the deck", "the registry too", "now the deck"] {
            assert!(has_marker(&analyzer.read(said)), "{said}");
        }
        for said in ["the deck", "what's on the deck right now", "16"] {
            assert!(!has_marker(&analyzer.read(said)), "{said}");
        }
    }

    #[test]
    fn the_other_one_is_the_droplet_before_the_last() {
        let focus = Focus {
            intent: Some("droplet_status".into()),
            intent_turn: 2,
            values: vec![
                FocusValue { slot: "droplet".into(), kind: "droplet".into(), value: 1.into(), turn: 2 },
                FocusValue { slot: "droplet".into(), kind: "droplet".into(), value: 14.into(), turn: 1 },
            ],
            choice: None,
        };
        assert_eq!(InFocus::new(&focus, 3, 4).droplets(), vec![1, 14]);
        assert_eq!(InFocus::new(&focus, 6, 4).droplets(), vec![1], "turn 1 is out of mind by turn 6");
    }

    #[test]
    fn a_value_stays_in_focus_for_the_turns_set() {
        let focus = Focus {
            intent: Some("droplet_status".into()),
            intent_turn: 3,
            values: vec![FocusValue { slot: "droplet".into(), kind: "droplet".into(), value: 14.into(), turn: 3 }],
            choice: None,
        };
        assert!(InFocus::new(&focus, 4, 2).intent().is_some());
        assert!(InFocus::new(&focus, 5, 2).value_for("target", "droplet").is_some(), "any droplet slot takes it");
        assert!(InFocus::new(&focus, 6, 2).intent().is_none(), "older than two turns");
        assert!(InFocus::new(&focus, 4, 0).value_for("droplet", "droplet").is_none(), "0 turns: follow-ups off");
        assert!(InFocus::new(&focus, 4, 2).value_for("id", "integer").is_none(), "a droplet is no id");
    }
}
