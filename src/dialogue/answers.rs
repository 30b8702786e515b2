//! Reading a message against the question the assistant is waiting on: a detail (at an
//! `extract` step) or consent (at a `confirm` step).
//!
//! Pure decisions for planning: is this a bare answer to the question asked, a yes, a no, a
//! correction of a value already given ("no, the id is 78", "actually call it Billing Two"), or
//! something else entirely (a digression answered while the action waits)? Values are read with
//! the one slot reader, [`crate::slots::fill`].

use serde_json::{Map, Value};

use crate::catalogue::{Catalogue, Recognition};
use crate::nlu::answers::{self, YesNo};
use crate::nlu::Analyzer;
use crate::pipeline::Pipeline;
use crate::slots::fill::{bare_answer, changes, Said};
use crate::slots::{SlotDef, SlotKind};
use crate::steps::{ExtractStep, Step};

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

/// What an answer to a read-back ("Shall I go ahead?") says.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsentAnswer {
    Yes,
    No,
    /// Values were changed: ask for consent again with these slots. `invalid` names a slot
    /// whose new value is not acceptable (it is asked for again, with the reason).
    Corrected {
        slots: Map<String, Value>,
        changed: Vec<String>,
        invalid: Option<String>,
        rest: String,
    },
    /// Neither yes, no nor a value.
    Unclear,
}

/// The `extract` step before `step` (the one that collected the values being confirmed), with
/// its index.
pub fn collecting_step(pipeline: &Pipeline, step: usize) -> Option<(usize, &ExtractStep)> {
    pipeline.steps.iter().enumerate().take(step).rev().find_map(|(i, s)| match &s.step {
        Step::Extract(extract) => Some((i, extract)),
        _ => None,
    })
}

/// Reads an answer to a read-back of `slots`.
pub fn read_consent(
    pipeline: &Pipeline,
    step: usize,
    slots: &Map<String, Value>,
    text: &str,
    catalogue: &Catalogue,
    analyzer: &Analyzer,
) -> ConsentAnswer {
    if let Some(answer) = answers::whole(text).or_else(|| answer_about_the_action(pipeline, analyzer, text)) {
        return match answer {
            YesNo::Yes => ConsentAnswer::Yes,
            YesNo::No => ConsentAnswer::No,
        };
    }
    // "no, the id is 78" / "yes but call it Billing Two" / "actually make it priority 1"
    let words = crate::nlu::text::words(text);
    let skip = answers::leading(text).map(|(_, used)| used).unwrap_or(0);
    let lead_ins = &crate::nlu::Lexicon::english().consent_lead_ins;
    let first_kept = words.iter().skip(skip).position(|w| !lead_ins.contains(&w.text)).map(|p| p + skip);
    let rest = match first_kept.and_then(|i| words.get(i)) {
        Some(word) => text[word.start..].to_owned(),
        None => return ConsentAnswer::Unclear,
    };
    let Some((_, extract)) = collecting_step(pipeline, step) else { return ConsentAnswer::Unclear };
    let reader = extract.reader(pipeline, catalogue, analyzer);
    let mut corrected = slots.clone();
    let filled = reader.fill(&analyzer.read(&rest), Said::Fresh, &mut corrected);
    let mut invalid = filled.errors.keys().next().cloned();
    // "no sorry, fifteen", "no, it's 34": a bare value for the one slot of its type
    if corrected == *slots && invalid.is_none() {
        let bare = bare_answer(&rest);
        // a number corrects a number, a droplet a droplet; text only when nothing else fits
        let numeric = crate::nlu::numbers::parse(bare).is_some();
        let fits: Vec<&SlotDef> = reader
            .wanted()
            .filter(|slot| match slot.kind {
                SlotKind::String => !numeric && reader.text_slots() == 1,
                SlotKind::Boolean => false,
                _ => true,
            })
            .filter(|slot| slot.coerce(bare, catalogue).is_ok())
            .collect();
        if let [slot] = fits.as_slice() {
            if let Ok(value) = slot.coerce(bare, catalogue) {
                corrected.insert(slot.name.clone(), value);
            }
        }
        invalid = None;
    }
    let changed = changes(&pipeline.slots, slots, &corrected, false);
    if changed.is_empty() && invalid.is_none() {
        return ConsentAnswer::Unclear;
    }
    ConsentAnswer::Corrected { slots: corrected, changed, invalid, rest }
}

/// "yes, please proceed with the removal", "no don't register it": a yes or a no followed only
/// by words about the action itself (its description's words, courtesy).
fn answer_about_the_action(pipeline: &Pipeline, analyzer: &Analyzer, text: &str) -> Option<YesNo> {
    // "thank you. yes, …": courtesy before the answer
    let all = crate::nlu::text::words(text);
    let english = crate::nlu::Lexicon::english();
    let skipped = all.iter().take_while(|w| english.consent_courtesy.contains(&w.text)).count();
    let text = all.get(skipped).map(|w| &text[w.start..]).unwrap_or(text);
    let (answer, used) = answers::leading(text)?;
    let about = |word: &str| {
        pipeline.generic_words.contains(word)
            || answers::whole(word).is_some()
            || english.about_the_action.contains(word)
    };
    let rest = crate::nlu::text::words(text).into_iter().skip(used).collect::<Vec<_>>();
    (!rest.is_empty()
        && rest.iter().all(|w| about(&w.text) || pipeline.generic_words.contains(&analyzer.stem(&w.text))))
    .then_some(answer)
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
