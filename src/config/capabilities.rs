//! Knowing what the assistant cannot do: a request whose action no intent serves ("reboot the
//! orchestrator", "wipe the deck's snapshots", "book a meeting room") goes to the fallback, which
//! says so, instead of to whichever intent shares a droplet name with it.
//!
//! The configuration's actions are the words its intents are written with: their examples
//! (outside the values the examples hold: "schedule a job to *restart the workers*" teaches
//! "schedule", not "restart"), keywords, descriptions and slot phrases, as typed, as stems and as
//! the vocabulary's terms (so a synonym counts: "delete" is `remove`), per intent. A message is
//! out of scope when it asks with a verb (the lexicon's `action_verbs`) that the intent the rules
//! chose does not act with, outside the values that intent would read from it ("create a task to
//! restart the workers" asks to create a task; "delete the deck's snapshots" asks for no
//! overview, though another intent deletes services).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::catalogue::Catalogue;
use crate::nlu::{Analyzer, Lexicon, Reading};
use crate::pipeline::Pipeline;
use crate::slots::fill::Said;

/// The words the configuration's intents act with, per intent.
#[derive(Debug, Default)]
pub struct Capabilities {
    by_intent: HashMap<String, IntentWords>,
}

/// One intent's words, in every form, and whether it changes something.
#[derive(Debug, Default)]
struct IntentWords {
    words: HashSet<String>,
    command: bool,
}

impl Capabilities {
    /// Collects the words of every intent's examples (outside their values), keywords,
    /// description and slot phrases.
    pub fn build(
        pipelines: &[Pipeline],
        keywords: &[(&str, &str)],
        catalogue: &Catalogue,
        analyzer: &Analyzer,
    ) -> Capabilities {
        let mut capabilities = Capabilities::default();
        for pipeline in pipelines.iter().filter(|p| !p.fallback) {
            let mut words: Vec<String> = Vec::new();
            // its examples' words where a request starts ("*schedule* a job to restart the
            // workers"), not inside a question ("which calls can I *make*") or a value
            for example in &pipeline.examples {
                let reading = analyzer.read(example);
                let values = value_words(pipeline, &reading, catalogue, analyzer);
                words.extend(
                    reading
                        .words
                        .iter()
                        .enumerate()
                        .filter(|(i, w)| {
                            !values.contains(&w.text) && (!is_action_verb(&w.text) || asks_at(&reading.words, *i))
                        })
                        .map(|(_, w)| w.text.clone()),
                );
            }
            let phrases = pipeline.slots.iter().flat_map(|s| s.phrases.iter().map(|p| p.written.as_str()));
            let own = keywords.iter().filter(|(intent, _)| *intent == pipeline.intent).map(|(_, keyword)| *keyword);
            for text in std::iter::once(pipeline.description.as_str()).chain(phrases).chain(own) {
                words.extend(crate::nlu::text::words(text).into_iter().map(|w| w.text));
            }
            let words = words.iter().flat_map(|word| forms(word, analyzer)).collect();
            capabilities
                .by_intent
                .insert(pipeline.intent.clone(), IntentWords { words, command: pipeline.changes_state });
        }
        capabilities
    }

    /// Whether `intent` (or, with `None`, any intent) acts with `word`, in any of its forms.
    fn knows(&self, intent: Option<&str>, word: &str, analyzer: &Analyzer) -> bool {
        let forms = forms(word, analyzer);
        let knows = |own: &IntentWords| forms.iter().any(|form| own.words.contains(form));
        match intent.and_then(|intent| self.by_intent.get(intent)) {
            Some(own) => knows(own),
            None => self.by_intent.values().any(knows),
        }
    }

    /// The request `chosen` does not serve, when there is one: a verb it does not act with where
    /// a request starts ("*reboot* the orchestrator" is no status question; "*delete* the deck's
    /// snapshots" no overview), a count of more of something ("add *3 more* replicas"), or, for a
    /// command, a word only another command is written with ("delete *task* 4"). Words
    /// in the values `chosen` reads are neither ("a task to *restart the workers*"); with no
    /// intent chosen, any intent's actions count.
    pub fn unsupported(
        &self,
        chosen: Option<&Pipeline>,
        reading: &Reading,
        catalogue: &Catalogue,
        analyzer: &Analyzer,
    ) -> Option<Unsupported> {
        let english = Lexicon::english();
        let words = &reading.words;
        // most messages ask with no verb of the list and no count: nothing more to read
        let asks_with_a_verb = (0..words.len()).any(|i| is_action_verb(&words[i].text) && asks_at(words, i));
        let counts =
            reading.numbers.iter().any(|n| words.get(n.end).is_some_and(|w| english.count_words.contains(&w.text)));
        if !asks_with_a_verb && !counts {
            return None;
        }
        let intent = chosen.map(|p| p.intent.as_str());
        let mut values = chosen.map(|p| value_words(p, reading, catalogue, analyzer)).unwrap_or_default();
        // a verb inside one of the stewards' phrases ("pull up" is `show`) is that phrase's term
        let analysis = analyzer.analyze_reading(reading, crate::nlu::Entities::Message);
        values.extend(
            analysis
                .synonyms
                .iter()
                .filter(|(said, _)| said.contains(' '))
                .flat_map(|(said, _)| crate::nlu::text::words(said).into_iter().map(|w| w.text)),
        );
        let in_a_droplet_name = |i: usize| reading.droplets.iter().any(|(first, end, _)| (*first..*end).contains(&i));
        let free = |i: usize| {
            let w = &words[i].text;
            !in_a_droplet_name(i) && !values.contains(w) && !values.contains(&analyzer.stem(w))
        };
        // "make a registration": a light verb says what its noun says
        let noun_known = |i: usize| {
            (i + 1..words.len())
                .find(|&j| !in_a_droplet_name(j) && !is_courtesy(&words[j].text))
                .is_some_and(|j| self.knows(intent, &words[j].text, analyzer))
        };
        // "cool, thanks": an interjection is no action; "I cannot open it": a verb asks for an
        // action only where a request starts
        let verb = (0..words.len()).find(|&i| {
            let w = &words[i].text;
            free(i)
                && is_action_verb(w)
                && asks_at(words, i)
                && !self.knows(intent, w, analyzer)
                && !(english.light_verbs.contains(w) && noun_known(i))
        });
        // "add 3 more replicas": a number and a count word ask for more of something
        let count = || {
            reading.numbers.iter().find_map(|n| {
                let after = words.get(n.end)?;
                (free(n.end) && english.count_words.contains(&after.text)).then_some(n.end)
            })
        };
        // "delete task 4": a command's verb on what only another command's words name
        let other_object = || {
            let command = chosen.filter(|p| p.changes_state)?;
            (0..words.len()).find(|&i| {
                let w = &words[i].text;
                let number = reading.numbers.iter().any(|n| (n.first..n.end).contains(&i));
                // verbs are the verb rule's ("make a registration" is a registration)
                let verb = is_action_verb(w) || english.light_verbs.contains(w);
                free(i) && !number && !verb && !is_courtesy(w) && !english.stopwords.contains(w) && {
                    let owners: Vec<(&String, &IntentWords)> =
                        self.by_intent.iter().filter(|(intent, _)| self.knows(Some(intent), w, analyzer)).collect();
                    matches!(owners.as_slice(), [(only, own)] if **only != command.intent && own.command)
                }
            })
        };
        let word = verb.or_else(count).or_else(other_object)?;
        Some(Unsupported {
            word: reading.text[words[word].start..words[word].end].to_owned(),
            request: request_around(reading, word),
        })
    }
}

/// What a request asks that its intent does not serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    /// The word that asks it ("reboot", "more"), as typed.
    pub word: String,
    /// The request as said, from where it starts to the end of its clause ("reboot the
    /// orchestrator", "add 3 more replicas to the registry").
    pub request: String,
}

/// The request the word at `index` belongs to: from the first word of its clause that is not a
/// lead-in ("can u *restart the dashboard*") to the clause's end, without courtesy at the end.
fn request_around(reading: &Reading, index: usize) -> String {
    let words = &reading.words;
    let english = Lexicon::english();
    let clause = words[..=index].iter().rposition(|w| w.after_break).unwrap_or(0);
    let start = (clause..=index).find(|&i| !leads_in(&words[i].text)).unwrap_or(index);
    let mut end = (index + 1..words.len()).find(|&i| words[i].after_break).unwrap_or(words.len());
    let courtesy = |w: &str| english.courtesy.contains(w) || english.consent_courtesy.contains(w);
    while end > index + 1 && courtesy(&words[end - 1].text) {
        end -= 1;
    }
    reading.text[words[start].start..words[end - 1].end].to_owned()
}

/// A word as typed, as a stem, and as the vocabulary's term when it is a synonym.
fn forms(word: &str, analyzer: &Analyzer) -> Vec<String> {
    let mut forms = vec![word.to_owned(), analyzer.stem(word)];
    forms.extend(analyzer.canonical(word));
    forms
}

/// The words of the text values `pipeline` reads from a message (its task title, its service
/// name): what the user wants done to them is not the pipeline's action.
fn value_words(pipeline: &Pipeline, reading: &Reading, catalogue: &Catalogue, analyzer: &Analyzer) -> HashSet<String> {
    let Some(extract) = pipeline.first_extract() else { return HashSet::new() };
    let mut slots = Map::new();
    extract.reader(pipeline, catalogue, analyzer).fill(reading, Said::Fresh, &mut slots);
    // as typed and as stems: the reading may have put a typo right ("backups" read as "backup")
    slots
        .values()
        .filter_map(Value::as_str)
        .flat_map(|value| crate::nlu::text::words(value).into_iter())
        .flat_map(|w| [analyzer.stem(&w.text), w.text])
        .collect()
}

/// Words that only carry the talk along ("cool", "please", "well"), whatever else they can be.
fn is_courtesy(word: &str) -> bool {
    let english = Lexicon::english();
    english.fillers.contains(word)
        || english.stopwords.contains(word)
        || english.courtesy.contains(word)
        || english.consent_courtesy.contains(word)
}

/// Whether the word at `index` starts a request: only courtesy and the lexicon's
/// `request_lead_ins` ("can you", "please", "I want to") come before it in its clause ("reboot
/// the orchestrator", "can u restart the dashboard", "ok and wipe the deck"), not a subject of its
/// own ("the team is asking", "I cannot open it").
fn asks_at(words: &[crate::nlu::text::Word], index: usize) -> bool {
    let english = Lexicon::english();
    let start = words[..=index].iter().rposition(|w| w.after_break).unwrap_or(0);
    words[start..index].iter().all(|w| leads_in(&w.text))
        && !words[start..index].iter().any(|w| english.negations.contains(&w.text))
}

/// Whether `word` may come before a request's verb: a lead-in ("can", "you", "please"), a
/// conjunction, a filler or courtesy. Not the stopwords: "what *sort* of things" has a question
/// before the word.
fn leads_in(word: &str) -> bool {
    let english = Lexicon::english();
    english.request_lead_ins.contains(word)
        || english.conjunctions.contains(word)
        || english.fillers.contains(word)
        || english.courtesy.contains(word)
        || english.consent_courtesy.contains(word)
}

/// Whether `word` is one of the lexicon's action verbs (and no courtesy word).
fn is_action_verb(word: &str) -> bool {
    Lexicon::english().action_verbs.contains(word) && !is_courtesy(word)
}
