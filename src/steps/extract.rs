//! `extract`: fill slots from the message; ask for what is missing and park the pipeline.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{ReplyTemplates, StepError};
use crate::catalogue::{Catalogue, Recognition};
use crate::intent::content_words;
use crate::nlu::Analyzer;
use crate::pipeline::{Flow, Pipeline, RunEnv, TurnState};
use crate::slots::phrases::{self, Reading};
use crate::slots::{SlotDef, SlotKind};

/// A message of at most this many content words that names a droplet answers "which droplet?".
const SHORT_ANSWER_WORDS: usize = 3;

#[derive(Debug)]
pub struct ExtractStep {
    pub required: Vec<String>,
    pub optional: Vec<String>,
    /// Templates that ask for missing slots.
    pub ask: ReplyTemplates,
    /// Ask for every missing slot at once in chat (voice always asks one at a time).
    pub together: bool,
    /// Unusable answers to one question before stopping.
    pub tries: u32,
    /// The reply when the answers stayed unusable.
    pub give_up: ReplyTemplates,
}

/// How many unusable answers to one question before the action stops.
pub const DEFAULT_TRIES: u32 = 3;

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

impl ExtractStep {
    fn wanted<'p>(&'p self, pipeline: &'p Pipeline) -> impl Iterator<Item = &'p SlotDef> + 'p {
        self.required.iter().chain(&self.optional).filter_map(|name| pipeline.slot(name))
    }

    /// Reads slot values from `message` into `slots`. Pure: the engine and `explain` share it.
    ///
    /// In order: `key:value` pairs; the slots' phrases ("called Billing", "id 77"); droplets
    /// named anywhere; a lone number for the one whole-number slot still open; and, when
    /// `resumed` (the message answers a question this step asked), a message that is just a value
    /// fills the first required slot still open ("Billing", "seventy seven", "it's called X").
    pub fn fill(
        &self,
        pipeline: &Pipeline,
        catalogue: &Catalogue,
        analyzer: &Analyzer,
        message: &str,
        resumed: bool,
        slots: &mut Map<String, Value>,
    ) -> Filled {
        self.fill_answer(pipeline, catalogue, analyzer, message, resumed, None, slots)
    }

    /// [`ExtractStep::fill`], where a bare answer fills `asked` (the slot the question was
    /// about) when it is still open.
    #[allow(clippy::too_many_arguments)]
    pub fn fill_answer(
        &self,
        pipeline: &Pipeline,
        catalogue: &Catalogue,
        analyzer: &Analyzer,
        message: &str,
        resumed: bool,
        asked: Option<&str>,
        slots: &mut Map<String, Value>,
    ) -> Filled {
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        let pairs = pipeline.parser.parse_spans(message);
        let before = slots.clone();
        let mut given: Vec<&str> = Vec::new();

        for (key, raw, _) in &pairs {
            let Some(slot) = self.wanted(pipeline).find(|s| s.keys.contains(key)) else { continue };
            accept(slot, raw, catalogue, slots, &mut errors);
            // a keyed value that is not acceptable ("onboarding droplet: what endpoints are
            // there?") leaves the slot to the other readers; the error stays if none fills it
            if !errors.contains_key(&slot.name) {
                given.push(&slot.name);
            }
        }

        let (words, _) = analyzer.corrected_words(message);
        let numbers = crate::nlu::numbers::find(&words);
        let droplets = analyzer.droplet_mentions(&words, &numbers);
        let in_pairs = |i: usize| pairs.iter().any(|(_, _, range)| range.contains(&words[i].start));
        let mut taken: Vec<(usize, usize)> = Vec::new();
        let wanted: Vec<&SlotDef> = self.wanted(pipeline).collect();
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
                            .any(|other| other.phrases.iter().any(|p| p.starts_at(&words, i)))
                };
                let reading = Reading {
                    text: message,
                    words: &words,
                    numbers: &numbers,
                    droplets: &droplets,
                    stops: &stops,
                    generic: &pipeline.generic_words,
                    stem: &|w: &str| analyzer.stem(w),
                    canonical: &|w: &str| analyzer.canonical(w),
                };
                slot.phrases.iter().find_map(|phrase| {
                    phrases::find(phrase, slot.kind, &reading)
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
            .filter(|_| resumed)
            .and_then(|name| pipeline.slot(name))
            .filter(|s| matches!(s.kind, SlotKind::Integer | SlotKind::Number) && !given.contains(&s.name.as_str()));
        let open_numbers: Vec<&SlotDef> = match asked_number {
            Some(slot) => vec![slot],
            None => self
                .open_slots(pipeline, slots)
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
            let raw = number.integer().map(|i| i.to_string()).unwrap_or_else(|| number.value.to_string());
            accept(slot, &raw, catalogue, slots, &mut errors);
            given.push(&slot.name);
        }

        // An answer to "what is its id?" is often just the value: take the whole message when the
        // message filled nothing else (its lead-in words aside: "it's called Payments Gateway").
        if resumed && pairs.is_empty() && *slots == before && errors.is_empty() {
            let open = self.open_slots(pipeline, slots);
            let target = open.iter().find(|s| Some(s.name.as_str()) == asked).or(open.first());
            if let Some(slot) = target {
                accept(slot, bare_answer(message), catalogue, slots, &mut errors);
            }
        }

        let missing = self.open_slots(pipeline, slots).into_iter().map(|s| s.name.clone()).collect();
        Filled { errors, missing, droplets: named }
    }

    /// Fills what the message gives — from `key:value` pairs, then, for required slots still
    /// open, from the language model when the message says more than its trigger words.
    /// Returns a question when required slots are still missing.
    pub async fn run(
        &self,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        index: usize,
    ) -> Result<Option<Flow>, StepError> {
        let asked = state.dialogue.asked.clone();
        let before = state.slots.clone();
        if state.resumed {
            self.correct_previous_answer(pipeline, env.catalogue, state);
        }
        let mut filled = self.fill_answer(
            pipeline,
            env.catalogue,
            env.analyzer,
            &state.message,
            state.resumed,
            asked.as_deref(),
            &mut state.slots,
        );
        if !filled.missing.is_empty() {
            if let Some(llm) = env.llm.filter(|_| state.llm_may_extract) {
                let missing: Vec<&SlotDef> = filled.missing.iter().filter_map(|name| pipeline.slot(name)).collect();
                if crate::understand::worth_asking(pipeline, &missing, &state.message) {
                    self.ask_model(llm, pipeline, env, state, &mut filled).await;
                }
            }
        }
        // values given before and changed now ("actually call it Billing Two") are corrections
        for change in crate::dialogue::changes(pipeline, &before, &state.slots, true) {
            state.trace.notes.push(format!("changed {change}"));
            state.dialogue.changed.push(change);
        }
        // an optional value the user gave but that is not acceptable is asked for, not dropped
        let rejected: Vec<String> =
            self.optional.iter().filter(|name| filled.errors.contains_key(*name)).cloned().collect();
        filled.missing.extend(rejected);
        if filled.missing.is_empty() {
            return Ok(None);
        }
        let missing: Vec<&SlotDef> = filled.missing.iter().filter_map(|name| pipeline.slot(name)).collect();
        let Some(asking) = missing.first().copied() else { return Ok(None) };
        // the same question again after an answer that gave nothing usable
        let again = state.resumed && state.dialogue.asked.as_deref() == Some(asking.name.as_str());
        let tries = match (again, state.slots != before) {
            (false, _) => 0,
            // another value was given: not a wasted answer
            (true, true) => state.dialogue.tries,
            (true, false) => state.dialogue.tries + 1,
        };
        if tries >= self.tries {
            let note = format!("no usable `{}` after {tries} tries: the action was dropped", asking.name);
            let detail = self.describe_slot(asking, &filled, pipeline, env, state);
            return super::give_up(&self.give_up, pipeline, env, state, note, detail);
        }
        state.dialogue.tries = tries;
        // the question moved on: the one before it was answered (and may be corrected next)
        if state.dialogue.asked.as_deref() != Some(asking.name.as_str()) {
            state.dialogue.answered = state.dialogue.asked.clone();
        }
        state.dialogue.asking = Some(asking.name.clone());
        state.dialogue.tries_left = Some(self.tries - tries);
        state.dialogue.outcome = Some("asking");
        let described: Vec<Value> =
            missing.iter().map(|slot| self.describe_slot(slot, &filled, pipeline, env, state)).collect();
        let together = self.together && state.channel == crate::session::Channel::Chat && missing.len() > 1;
        let first = !state.resumed && !state.dialogue.resuming;
        let extra = [
            ("asking", crate::template::to_value(&described[0])),
            ("missing", crate::template::to_value(&described)),
            ("ask_together", minijinja::Value::from(together)),
            ("first_question", minijinja::Value::from(first)),
            ("asking_again", minijinja::Value::from(state.dialogue.resuming)),
        ];
        let text = self.ask.render(pipeline, env, state, &extra)?;
        Ok(Some(Flow::Ask { text, step: index, asking: Some(asking.name.clone()) }))
    }

    /// "oops, payments" / "sorry, I mean Billing Two", in answer to the next question: when the
    /// message starts with a correction and what follows is no answer to the question asked but
    /// fits the slot asked before, it replaces that slot's value.
    fn correct_previous_answer(&self, pipeline: &Pipeline, catalogue: &Catalogue, state: &mut TurnState) {
        const MARKERS: &[&str] = &["oops", "sorry", "actually", "wait", "no", "i mean", "i meant", "correction"];
        let (Some(previous), Some(asked)) = (state.dialogue.answered.clone(), state.dialogue.asked.clone()) else {
            return;
        };
        let lowered = state.message.trim().to_lowercase();
        let Some(marker) = MARKERS
            .iter()
            .find(|m| lowered.starts_with(*m) && lowered[m.len()..].starts_with(|c: char| !c.is_alphanumeric()))
        else {
            return;
        };
        let rest = state.message.trim().get(marker.len()..).unwrap_or_default();
        let rest = bare_answer(rest.trim_start_matches([',', ' ', ':', '-']).trim_start_matches("i mean ").trim());
        let (Some(previous_slot), Some(asked_slot)) = (pipeline.slot(&previous), pipeline.slot(&asked)) else { return };
        if rest.is_empty() || asked_slot.coerce(rest, catalogue).is_ok() {
            return;
        }
        if let Ok(value) = previous_slot.coerce(rest, catalogue) {
            // recorded as a change with the others, by `run`
            state.slots.insert(previous, value);
            // the message was this correction, not an answer to the question asked
            state.message.clear();
        }
    }

    /// A missing slot as the ask templates see it: `{name, label, prompt, question, example,
    /// error, type}`; the question is the steward's (rendered) or made from the prompt.
    fn describe_slot(
        &self,
        slot: &SlotDef,
        filled: &Filled,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &TurnState,
    ) -> Value {
        let written = slot.question.as_ref().map(|(chat, voice)| match state.channel {
            crate::session::Channel::Chat => chat,
            crate::session::Channel::Voice => voice,
        });
        let question = written
            .and_then(|source| {
                let context = pipeline.context(env, state, &[]);
                env.templates.render_value(&Value::String(source.clone()), &context).ok()
            })
            .and_then(|value| value.as_str().map(str::to_owned))
            .filter(|q| !q.trim().is_empty())
            .unwrap_or_else(|| slot.default_question());
        json!({
            "name": slot.name,
            "label": slot.name.replace('_', " "),
            "prompt": slot.prompt,
            "question": question,
            "example": slot.example,
            "error": filled.errors.get(&slot.name),
            "type": slot.kind,
        })
    }

    /// One extraction call for the required slots still open; values are kept only when the
    /// user said them and they pass the slot's rules.
    async fn ask_model(
        &self,
        llm: &crate::llm::Llm,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        filled: &mut Filled,
    ) {
        let missing: Vec<&SlotDef> = filled.missing.iter().filter_map(|name| pipeline.slot(name)).collect();
        let request = crate::understand::extraction_request(pipeline, &missing, &state.message);
        let (result, call) = llm.ask(&request).await;
        state.trace.llm.push(call);
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => {
                state.trace.notes.push(format!("the language model could not read slots: {error}"));
                return;
            }
        };
        let (values, notes) = crate::understand::read_extraction(&answer.text, &missing, &state.message, env.catalogue);
        state.trace.notes.extend(notes);
        for (name, value) in values {
            filled.errors.remove(&name);
            state.slots.insert(name, value);
        }
        filled.missing = self.open_slots(pipeline, &state.slots).into_iter().map(|s| s.name.clone()).collect();
    }

    /// Whether the message reads as an answer to this step's question: a `key:value` for one of
    /// its slots, or a short message naming a droplet when it wants one. The engine uses it to
    /// tell an answer from a change of subject; a droplet named inside a longer request for
    /// something else ("create a task title:Restart the registry") is not an answer.
    pub fn answers(&self, pipeline: &Pipeline, catalogue: &Catalogue, analyzer: &Analyzer, message: &str) -> bool {
        let keyed =
            pipeline.parser.parse(message).iter().any(|(key, _)| self.wanted(pipeline).any(|s| s.keys.contains(key)));
        let mut probe = Map::new();
        let phrased = !keyed && {
            let filled = self.fill(pipeline, catalogue, analyzer, message, false, &mut probe);
            self.wanted(pipeline).any(|s| s.kind != SlotKind::Droplet && probe.contains_key(&s.name))
                || !filled.errors.is_empty()
        };
        let named = self.wanted(pipeline).any(|s| s.kind == SlotKind::Droplet)
            && content_words(message).len() <= SHORT_ANSWER_WORDS
            && catalogue.recognize(message) != Recognition::NotMentioned;
        keyed || phrased || named
    }

    /// Required slots not filled yet, in the order they are listed.
    fn open_slots<'p>(&'p self, pipeline: &'p Pipeline, slots: &Map<String, Value>) -> Vec<&'p SlotDef> {
        self.required.iter().filter(|name| !slots.contains_key(*name)).filter_map(|name| pipeline.slot(name)).collect()
    }

    /// One line for `explain`: what the step collects.
    pub fn describe(&self) -> String {
        let mut text = format!("extract required [{}]", self.required.join(", "));
        if !self.optional.is_empty() {
            text.push_str(&format!(", optional [{}]", self.optional.join(", ")));
        }
        text
    }
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

/// Lead-in words people put before a bare answer ("it's called", "the name is", "um").
const ANSWER_LEAD_INS: &[&str] = &[
    "it is called",
    "it's called",
    "its called",
    "let's call it",
    "lets call it",
    "call it",
    "name it",
    "it is",
    "it's",
    "its",
    "how about",
    "make it",
    "go with",
    "let's go with",
    "i'd say",
    "i would say",
    "i want",
    "that would be",
    "that's",
    "thats",
    "um",
    "uh",
    "erm",
    "well",
    "ok",
    "okay",
    "oh",
    "sure",
];

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
pub(crate) fn bare_answer(message: &str) -> &str {
    let mut rest = message.trim();
    loop {
        let lowered = rest.to_lowercase();
        let Some(lead) = ANSWER_LEAD_INS.iter().find(|l| {
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
    for tail in [" please", " thanks", " thank you", " thx", ", please", " then", " i guess", " i think", "."] {
        let cut = rest.len().checked_sub(tail.len()).and_then(|at| rest.get(at..));
        if rest.len() > tail.len() && cut.is_some_and(|t| t.eq_ignore_ascii_case(tail)) {
            rest = rest[..rest.len() - tail.len()].trim_end_matches([',', ' ']);
        }
    }
    // only fillers ("um"): no value at all, so the question is asked again
    rest
}
