//! Reading a message against the question the assistant is waiting on: a detail (at an
//! `extract` step) or consent (at a `confirm` step).
//!
//! Pure decisions for planning: is this a bare answer to the question asked, a yes, a no, a
//! correction of a value already given ("no, the id is 78", "actually call it Billing Two"), or
//! something else entirely (a digression answered while the action waits)? Values are read with
//! the one slot reader, [`crate::slots::fill`].

use serde_json::{Map, Value};

use crate::catalogue::{Catalogue, Recognition};
use crate::nlu::answers::{self, Stance};
use crate::nlu::text::Word;
use crate::nlu::Analyzer;
use crate::pipeline::Pipeline;
use crate::slots::fill::{bare_answer, changes, Said};
use crate::slots::{SlotDef, SlotKind};
use crate::steps::{ExtractStep, Step};
use crate::trace::AnswerReading;

/// A short answer is at most this many words ("Payments Gateway", "it's called Billing Two").
const BARE_ANSWER_WORDS: usize = 5;

/// Whether the message reads as just a value for `slot` — the answer to "what should it be
/// called?" even when its words also name an intent ("Metrics Collector").
pub fn is_bare_answer(slot: &SlotDef, text: &str, catalogue: &Catalogue) -> bool {
    let words = crate::nlu::text::words(text);
    if words.is_empty() || words.len() > BARE_ANSWER_WORDS + 3 {
        return false;
    }
    match slot.kind {
        SlotKind::String => words.len() <= BARE_ANSWER_WORDS && !text.contains('?') && looks_like_a_name(text, &words),
        SlotKind::Integer | SlotKind::Number => {
            slot.coerce(text, catalogue).is_ok() || {
                let found = crate::nlu::numbers::find(text, &words);
                found.len() == 1 && words.len() <= 4
            }
        }
        SlotKind::Boolean => answers::whole(text).is_some(),
        SlotKind::Droplet => words.len() <= 4 && catalogue.recognize(text) != Recognition::NotMentioned,
    }
}

/// Whether a message plainly asks something (a question mark, or a question's or a request's
/// opening: "what …", "is …", "show me …") rather than giving a free-text value.
pub fn plainly_asks(reading: &crate::nlu::Reading) -> bool {
    let english = crate::nlu::Lexicon::english();
    let opening = reading
        .words
        .iter()
        .take_while(|w| english.fillers.contains(&w.text) || english.courtesy.contains(&w.text))
        .count();
    reading.text.contains('?')
        || crate::nlu::text::longest_phrase_at(english.question_openers.iter(), &reading.words, opening).is_some()
}

/// Whether a short text reads as a name rather than a request: capitals after its first word
/// or on its only word ("Payments Gateway", "Billing"), digits ("Auth2"), quotes, or at most two
/// words (what a voice user says: "payments gateway"). "show me all droplets" is a request.
fn looks_like_a_name(text: &str, words: &[crate::nlu::text::Word]) -> bool {
    let typed = |w: &crate::nlu::text::Word| &text[w.start..w.end];
    let capital = |w: &crate::nlu::text::Word| typed(w).chars().next().is_some_and(char::is_uppercase);
    words.len() <= 2
        || words.iter().skip(1).any(capital)
        || words.iter().any(|w| w.text.chars().any(|c| c.is_ascii_digit()))
        || text.contains(['"', '\'', '\u{201C}'])
}

/// What an answer to a read-back ("Shall I go ahead?") says: exactly one of these.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsentAnswer {
    Yes,
    /// A no or a stop: nothing is sent.
    No,
    /// Values were changed: ask for consent again with these slots. `invalid` names a slot
    /// whose new value is not acceptable (it is asked for again, with the reason).
    Corrected {
        slots: Map<String, Value>,
        changed: Vec<String>,
        invalid: Option<String>,
        rest: String,
    },
    /// Another request, answered while the action waits; said with a no ("no, register a new one
    /// instead"), it also drops the action.
    Another {
        refused: bool,
    },
    /// Asked again: a wait ([`AnswerReading::Wait`]), a yes together with a no, a wait or a stop
    /// ([`AnswerReading::Contradiction`]), or nothing usable ([`AnswerReading::Unclear`]).
    Unclear(AnswerReading),
}

impl ConsentAnswer {
    /// How the trace and `explain` name this reading.
    pub fn reading(&self) -> AnswerReading {
        match self {
            ConsentAnswer::Yes => AnswerReading::Consent,
            ConsentAnswer::No => AnswerReading::Refusal,
            ConsentAnswer::Corrected { .. } => AnswerReading::Correction,
            ConsentAnswer::Another { .. } => AnswerReading::AnotherRequest,
            ConsentAnswer::Unclear(reading) => *reading,
        }
    }
}

/// The `extract` step before `step` (the one that collected the values being confirmed), with
/// its index.
pub fn collecting_step(pipeline: &Pipeline, step: usize) -> Option<(usize, &ExtractStep)> {
    pipeline.steps.iter().enumerate().take(step).rev().find_map(|(i, s)| match &s.step {
        Step::Extract(extract) => Some((i, extract)),
        _ => None,
    })
}

/// The message and what the assistant waits on, for reading an answer to a read-back.
pub struct AtReadBack<'a> {
    pub pipeline: &'a Pipeline,
    /// The read-back's step.
    pub step: usize,
    /// The values read back.
    pub slots: &'a Map<String, Value>,
    pub catalogue: &'a Catalogue,
    pub analyzer: &'a Analyzer,
    /// The message asks for something else on its own (planning resolved it).
    pub another_request: bool,
    /// The message follows up on what was talked about before ("and the deck?"): another
    /// request unless it corrects a value.
    pub follows_up: bool,
}

/// Reads an answer to a read-back. Consent is only a yes with nothing holding it back and
/// nothing else said: a message with a no, a wait or a stop anywhere in it is never consent,
/// and neither is a stray word, a number or a question. A value changes only when said as a
/// correction: with its slot's words ("the id is 78", "call it Billing Two", "make it priority
/// 1"), as a bare number for the one number slot, or as a bare name after a no or a correction
/// word ("no, Billing Two", "sorry, I meant Billing Two").
pub fn read_consent(at: &AtReadBack<'_>, text: &str) -> ConsentAnswer {
    let english = crate::nlu::Lexicon::english();
    let (pipeline, analyzer) = (at.pipeline, at.analyzer);
    let words = crate::nlu::text::words(text);
    let about_the_action = |word: &str| {
        english.about_the_action.contains(word)
            || pipeline.generic_words.contains(word)
            || pipeline.generic_words.contains(&analyzer.stem(word))
    };
    // the action's own words pass as courtesy only beside a yes or a no ("yes, proceed with the
    // removal"); alone, or where a correction starts, they may be its words ("id should be 19")
    let plain = Stance::read(&words, |_| false);
    let stance = if plain.yes || plain.holds_back() { Stance::read(&words, about_the_action) } else { plain.clone() };
    let question = text.contains('?');
    let refused = stance.no || stance.stop;
    if stance.other.is_empty() && !question {
        return match (stance.yes, stance.wait, refused) {
            (true, false, false) => ConsentAnswer::Yes,
            (true, _, _) => ConsentAnswer::Unclear(AnswerReading::Contradiction),
            (false, true, _) => ConsentAnswer::Unclear(AnswerReading::Wait),
            (false, false, true) => ConsentAnswer::No,
            (false, false, false) => ConsentAnswer::Unclear(AnswerReading::Unclear),
        };
    }
    if at.another_request {
        return ConsentAnswer::Another { refused: refused && !stance.yes };
    }
    if let Some(corrected) = correction(at, text, &words, &stance, &plain.other) {
        return corrected;
    }
    if at.follows_up {
        return ConsentAnswer::Another { refused: false };
    }
    match () {
        _ if stance.yes && stance.holds_back() => ConsentAnswer::Unclear(AnswerReading::Contradiction),
        _ if stance.wait => ConsentAnswer::Unclear(AnswerReading::Wait),
        // "no no leave it", "never mind, don't register anything": a no with words about it
        _ if refused => ConsentAnswer::No,
        _ => ConsentAnswer::Unclear(AnswerReading::Unclear),
    }
}

/// The values an answer at a read-back corrects, when it is phrased as a correction.
fn correction(
    at: &AtReadBack<'_>,
    text: &str,
    words: &[Word],
    stance: &Stance,
    other: &[usize],
) -> Option<ConsentAnswer> {
    let english = crate::nlu::Lexicon::english();
    let (pipeline, catalogue, analyzer) = (at.pipeline, at.catalogue, at.analyzer);
    // "no, *actually* the id is 78", "*sorry*, fifteen": the correction starts after these
    let lead_in = |w: &Word| english.consent_lead_ins.contains(&w.text) || english.correction_markers.contains(&w.text);
    let first = other.iter().copied().find(|&i| !lead_in(&words[i]))?;
    let rest = text[words[first].start..].to_owned();
    let marked = stance.no || words[..first].iter().any(|w| english.correction_markers.contains(&w.text));
    let (_, extract) = collecting_step(pipeline, at.step)?;
    let reader = extract.reader(pipeline, catalogue, analyzer);
    let mut corrected = at.slots.clone();
    let filled = reader.fill(&analyzer.read(&rest), Said::Fresh, &mut corrected);
    let mut invalid = filled.errors.keys().next().cloned();
    if corrected == *at.slots && invalid.is_none() {
        // a bare value: a number for the one number slot, a droplet for the one droplet slot, a
        // name for the one text slot only when said as a correction ("no, Billing Two")
        let bare = bare_answer(&rest);
        let numeric = crate::nlu::numbers::parse(bare).is_some();
        let fits: Vec<&SlotDef> = reader
            .wanted()
            .filter(|slot| match slot.kind {
                SlotKind::Integer | SlotKind::Number => numeric,
                SlotKind::Droplet => !numeric && catalogue.recognize(bare) != Recognition::NotMentioned,
                // "no, Billing Two" — but not "never mind, don't register anything", which talks
                // about the action
                SlotKind::String => {
                    let about_the_action = crate::nlu::text::words(bare).first().is_some_and(|w| {
                        pipeline.generic_words.contains(&w.text)
                            || pipeline.generic_words.contains(&analyzer.stem(&w.text))
                    });
                    !numeric
                        && marked
                        && !stance.stop
                        && !stance.wait
                        && !about_the_action
                        && reader.text_slots() == 1
                        && is_bare_answer(slot, bare, catalogue)
                }
                SlotKind::Boolean => false,
            })
            .collect();
        if let [slot] = fits.as_slice() {
            match slot.coerce(bare, catalogue) {
                Ok(value) => {
                    corrected.insert(slot.name.clone(), value);
                }
                // "-5", "5.5": refused with the reason, and asked for again
                Err(_) => {
                    corrected.remove(&slot.name);
                    invalid = Some(slot.name.clone());
                }
            }
        }
    }
    let changed = changes(&pipeline.slots, at.slots, &corrected, false);
    (!changed.is_empty() || invalid.is_some()).then_some(ConsentAnswer::Corrected {
        slots: corrected,
        changed,
        invalid,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(kind: SlotKind) -> SlotDef {
        SlotDef::new("x", kind, "a value", None, &[], None).expect("slot")
    }

    #[test]
    fn bare_answers_by_type() {
        let catalogue = Catalogue::new(vec![]);
        assert!(is_bare_answer(&slot(SlotKind::String), "Metrics Collector", &catalogue));
        assert!(is_bare_answer(&slot(SlotKind::String), "metrics collector", &catalogue));
        assert!(is_bare_answer(&slot(SlotKind::String), "the new Payments Gateway", &catalogue));
        assert!(!is_bare_answer(&slot(SlotKind::String), "show me all droplets", &catalogue));
        assert!(!is_bare_answer(&slot(SlotKind::String), "Show me all droplets", &catalogue));
        assert!(!is_bare_answer(&slot(SlotKind::String), "what can the registry do?", &catalogue));
        assert!(is_bare_answer(&slot(SlotKind::Integer), "seventy seven", &catalogue));
        assert!(is_bare_answer(&slot(SlotKind::Integer), "it's 77", &catalogue));
        assert!(!is_bare_answer(&slot(SlotKind::Integer), "show me all droplets", &catalogue));
        assert!(is_bare_answer(&slot(SlotKind::Boolean), "yes please", &catalogue));
    }
}
