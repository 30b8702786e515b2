//! The crate's one slot reader: which values a message gives for the slots a step collects.
//!
//! Planning (several droplets named at once), reading a correction at a read-back, the `extract`
//! step, `/api/analyze` and `explain` all read slots through [`SlotReader`], so a misreading fixed
//! here is fixed everywhere, and `/api/analyze` fills exactly what a turn fills.
//!
//! In order: `key:value` pairs; the slots' phrases ("called Billing", "id 77"); droplets named
//! anywhere; a lone number for the one whole-number slot still open; and, in an answer to a
//! question, a message that is just a value fills the slot asked for ("Billing", "seventy seven",
//! "it's called X").

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::phrases::{self, Reading as Phrasing};
use super::{KeyValueParser, SlotDef, SlotKind};
use crate::catalogue::{Catalogue, Recognition};
use crate::nlu::Analyzer;

/// A message of at most this many content words that names a droplet answers "which droplet?".
const SHORT_ANSWER_WORDS: usize = 3;

/// How a message was said: on its own, or in answer to a question the assistant asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said<'a> {
    /// A message of its own: a new request, or a probe of one (`explain`, `/api/analyze`).
    Fresh,
    /// An answer to the question about the named slot (`None`: a read-back, or a question that
    /// named no single slot): a message that is just a value fills it.
    Answer(Option<&'a str>),
}

/// What a message contributed to the slots.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filled {
    /// Slot name → why the value given is not acceptable (the slot stays empty).
    pub errors: BTreeMap<String, String>,
    /// Required slots still empty, in the order listed.
    pub missing: Vec<String>,
    /// Every droplet the message named for a droplet slot, in order (several: "status of the
    /// registry and the orchestrator"); the slot holds the first.
    pub droplets: Vec<i64>,
}

/// Reads the values of the slots one step collects, with the configuration's way of reading text.
pub struct SlotReader<'a> {
    /// Every slot of the pipeline, in declaration order.
    pub slots: &'a [SlotDef],
    /// The pipeline's `key:value` keys.
    pub parser: &'a KeyValueParser,
    /// Words that are never a value on their own ("register a new *service*" names no service).
    pub generic_words: &'a super::GenericWords,
    /// The slots the step needs, in the order they are asked for.
    pub required: &'a [String],
    /// The slots it takes when given.
    pub optional: &'a [String],
    pub catalogue: &'a Catalogue,
    pub analyzer: &'a Analyzer,
}

impl<'a> SlotReader<'a> {
    fn slot(&self, name: &str) -> Option<&'a SlotDef> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// The slots read, required first.
    pub fn wanted(&self) -> impl Iterator<Item = &'a SlotDef> + '_ {
        self.required.iter().chain(self.optional).filter_map(|name| self.slot(name))
    }

    /// Required slots not filled yet, in the order they are listed.
    pub fn open_slots(&self, slots: &Map<String, Value>) -> Vec<&'a SlotDef> {
        self.required.iter().filter(|name| !slots.contains_key(*name)).filter_map(|name| self.slot(name)).collect()
    }

    /// How many text slots the step collects (a bare text can only correct the one there is).
    pub fn text_slots(&self) -> usize {
        self.wanted().filter(|slot| slot.kind == SlotKind::String).count()
    }

    /// Reads slot values from a message (as the turn read it) into `slots`. Pure: nothing
    /// outside `slots` changes.
    pub fn fill(&self, reading: &crate::nlu::Reading, said: Said<'_>, slots: &mut Map<String, Value>) -> Filled {
        let message = reading.text.as_str();
        let (resumed, asked) = match said {
            Said::Fresh => (false, None),
            Said::Answer(asked) => (true, asked),
        };
        let catalogue = self.catalogue;
        let analyzer = self.analyzer;
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        let pairs = self.parser.parse_spans(message);
        let before = slots.clone();
        let mut given: Vec<&str> = Vec::new();

        for (key, raw, _) in &pairs {
            let Some(slot) = self.wanted().find(|s| s.keys.contains(key)) else { continue };
            accept(slot, raw, catalogue, slots, &mut errors);
            // a keyed value that is not acceptable ("onboarding droplet: what endpoints are
            // there?") leaves the slot to the other readers; the error stays if none fills it
            if !errors.contains_key(&slot.name) {
                given.push(&slot.name);
            }
        }

        let (words, numbers, droplets) = (&reading.words, &reading.numbers, &reading.droplets);
        let in_pairs = |i: usize| pairs.iter().any(|(_, _, range)| range.contains(&words[i].start));
        let mut taken: Vec<(usize, usize)> = Vec::new();
        let wanted: Vec<&SlotDef> = self.wanted().collect();
        for slot in &wanted {
            if given.contains(&slot.name.as_str()) {
                continue;
            }
            let found = {
                let taken = &taken;
                let stops = |i: usize| {
                    in_pairs(i)
                        || taken.iter().any(|(first, end)| (*first..*end).contains(&i))
                        || wanted
                            .iter()
                            .filter(|other| other.name != slot.name)
                            .any(|other| other.phrases.iter().any(|p| p.starts_at(words, i)))
                };
                let phrasing = Phrasing {
                    text: message,
                    words,
                    numbers,
                    droplets,
                    stops: &stops,
                    generic: self.generic_words,
                    stem: &|w: &str| analyzer.stem(w),
                    canonical: &|w: &str| analyzer.canonical(w),
                };
                slot.phrases.iter().find_map(|phrase| {
                    phrases::find(phrase, slot.kind, &phrasing)
                        .filter(|f| !taken.iter().any(|(first, end)| f.first < *end && *first < f.end))
                })
            };
            if let Some(found) = found {
                taken.push((found.first, found.end));
                given.push(&slot.name);
                accept(slot, &found.raw, catalogue, slots, &mut errors);
            }
        }

        let mut named = Vec::new();
        let droplet_slots: Vec<&SlotDef> = wanted
            .iter()
            .copied()
            .filter(|s| s.kind == SlotKind::Droplet && !given.contains(&s.name.as_str()))
            // a droplet given with the request (one of several named) stays; an answer may change it
            .filter(|s| resumed || !slots.contains_key(&s.name))
            .collect();
        let wants_a_number = wanted.iter().any(|s| matches!(s.kind, SlotKind::Integer | SlotKind::Number));
        for slot in droplet_slots {
            let mut free = distinct(
                droplets
                    .iter()
                    .filter(|(first, end, _)| !taken.iter().any(|(f, e)| first < e && f < end) && !in_pairs(*first))
                    .map(|(_, _, id)| *id),
            );
            // "status on 2 and 12", "endpoints for 6": in a request that wants no number but a
            // droplet, the numbers said are droplet ids (each must be one)
            if free.is_empty() && !wants_a_number {
                let bare: Option<Vec<i64>> = numbers
                    .iter()
                    .filter(|n| !n.ordinal && !in_pairs(n.first))
                    .filter(|n| !taken.iter().any(|(f, e)| n.first < *e && *f < n.end))
                    .map(|n| n.integer().and_then(|id| catalogue.by_id(id)).map(|d| d.id))
                    .collect();
                free = distinct(bare.unwrap_or_default().into_iter());
            }
            let recognized = match free.first() {
                Some(id) => Recognition::Found(*id),
                None => catalogue.recognize(message),
            };
            match recognized {
                Recognition::Found(id) => {
                    slots.insert(slot.name.clone(), json!(id));
                    errors.remove(&slot.name);
                    given.push(&slot.name);
                    named = if free.is_empty() { vec![id] } else { free };
                }
                Recognition::UnknownNumber(number) => {
                    slots.remove(&slot.name);
                    errors.insert(slot.name.clone(), format!("number {number} is not in the catalogue"));
                }
                Recognition::NotMentioned => {}
            }
        }

        // "drop service 5": the one number left is the one whole number still wanted (or, in an
        // answer, the number the question asked for: "oh, 4 then")
        let asked_number = asked
            .and_then(|name| self.slot(name))
            .filter(|s| matches!(s.kind, SlotKind::Integer | SlotKind::Number) && !given.contains(&s.name.as_str()));
        let open_numbers: Vec<&SlotDef> = match asked_number {
            Some(slot) => vec![slot],
            None => self
                .open_slots(slots)
                .into_iter()
                .filter(|s| matches!(s.kind, SlotKind::Integer | SlotKind::Number) && !errors.contains_key(&s.name))
                .collect(),
        };
        let loose: Vec<&crate::nlu::numbers::Found> = numbers
            .iter()
            .filter(|n| !taken.iter().any(|(f, e)| n.first < *e && *f < n.end))
            .filter(|n| !droplets.iter().any(|(f, e, _)| n.first < *e && *f < n.end))
            .filter(|n| !in_pairs(n.first))
            .collect();
        if let ([slot], [number]) = (open_numbers.as_slice(), loose.as_slice()) {
            let raw = number.plain();
            accept(slot, &raw, catalogue, slots, &mut errors);
            given.push(&slot.name);
        }

        // "clean up old snapshots priority three" at "What should the task be called?": the text
        // before the first value said with its slot's words is the answer
        let asked_text = asked.and_then(|name| self.slot(name)).filter(|s| s.kind == SlotKind::String);
        let first_taken = taken.iter().map(|(first, _)| *first).min();
        if let (Some(slot), Some(first), true) = (asked_text, first_taken, resumed && pairs.is_empty()) {
            // the value's own slot words ("*priority* three") are not the answer either
            let others = |i: usize| {
                wanted
                    .iter()
                    .filter(|other| other.name != slot.name)
                    .any(|other| other.phrases.iter().any(|p| p.starts_at(words, i)))
            };
            let cut = (0..first).find(|&i| others(i)).unwrap_or(first);
            if cut > 0 && !slots.contains_key(&slot.name) {
                let value = bare_answer(message[..words[cut].start].trim_end_matches([',', ' ', ';']));
                if !value.is_empty() {
                    accept(slot, value, catalogue, slots, &mut errors);
                }
            }
        }

        // An answer to "what is its id?" is often just the value: take the whole message when the
        // message filled nothing else (its lead-in words aside: "it's called Payments Gateway").
        if resumed && pairs.is_empty() && *slots == before && errors.is_empty() {
            let open = self.open_slots(slots);
            let target = open.iter().find(|s| Some(s.name.as_str()) == asked).or(open.first());
            if let Some(slot) = target {
                accept(slot, bare_answer(message), catalogue, slots, &mut errors);
            }
        }

        let missing = self.open_slots(slots).into_iter().map(|s| s.name.clone()).collect();
        Filled { errors, missing, droplets: named }
    }

    /// Whether the message reads as an answer to the step's question: a `key:value` for one of
    /// its slots, a value in its phrasing, or a short message naming a droplet when it wants
    /// one. Planning uses it to tell an answer from a change of subject; a droplet named inside a
    /// longer request for something else ("create a task title:Restart the registry") is not an
    /// answer.
    pub fn answers(&self, reading: &crate::nlu::Reading) -> bool {
        let message = reading.text.as_str();
        let keyed = self.parser.parse(message).iter().any(|(key, _)| self.wanted().any(|s| s.keys.contains(key)));
        let mut probe = Map::new();
        let phrased = !keyed && {
            let filled = self.fill(reading, Said::Fresh, &mut probe);
            self.wanted().any(|s| s.kind != SlotKind::Droplet && probe.contains_key(&s.name))
                || !filled.errors.is_empty()
        };
        let named = self.wanted().any(|s| s.kind == SlotKind::Droplet)
            && crate::intent::content_words(message).len() <= SHORT_ANSWER_WORDS
            && self.catalogue.recognize(message) != Recognition::NotMentioned;
        keyed || phrased || named
    }
}

/// The values a message changed, as `slot: old → new` (for the trace); `replaced_only` leaves
/// out slots that had no value before (a first answer is no change).
pub fn changes(
    slots: &[SlotDef],
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    replaced_only: bool,
) -> Vec<String> {
    let show = |v: Option<&Value>| v.map(Value::to_string).unwrap_or_else(|| "nothing".to_owned());
    slots
        .iter()
        .filter(|slot| !replaced_only || before.contains_key(&slot.name))
        .filter(|slot| before.get(&slot.name) != after.get(&slot.name))
        .map(|slot| format!("{}: {} → {}", slot.name, show(before.get(&slot.name)), show(after.get(&slot.name))))
        .collect()
}

fn accept(
    slot: &SlotDef,
    raw: &str,
    catalogue: &Catalogue,
    slots: &mut Map<String, Value>,
    errors: &mut BTreeMap<String, String>,
) {
    match slot.coerce(raw, catalogue) {
        Ok(value) => {
            slots.insert(slot.name.clone(), value);
            errors.remove(&slot.name);
        }
        Err(problem) => {
            // a wrong new value replaces an old one: the user meant to change it
            slots.remove(&slot.name);
            errors.insert(slot.name.clone(), problem);
        }
    }
}

/// The ids in order of first appearance, each once.
fn distinct(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut out = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The value in a bare answer: the message without its lead-in and trailing courtesy words.
pub fn bare_answer(message: &str) -> &str {
    let english = crate::nlu::Lexicon::english();
    let mut rest = message.trim();
    loop {
        let lowered = rest.to_lowercase();
        let Some(lead) = english.answer_lead_ins.iter().find(|l| {
            lowered.starts_with(*l)
                && (lowered.len() == l.len()
                    || lowered[l.len()..].starts_with(|c: char| c.is_whitespace() || c == ',' || c == ':'))
        }) else {
            break;
        };
        match rest.get(lead.len()..) {
            Some(after) => rest = after.trim_start_matches([' ', ',', ':']).trim_start(),
            None => break,
        }
    }
    for tail in english.answer_tails.iter() {
        let cut = rest.len().checked_sub(tail.len()).and_then(|at| rest.get(at..));
        if rest.len() > tail.len() && cut.is_some_and(|t| t.eq_ignore_ascii_case(tail)) {
            rest = rest[..rest.len() - tail.len()].trim_end_matches([',', ' ']);
        }
    }
    // only fillers ("um"): no value at all, so the question is asked again
    rest
}
