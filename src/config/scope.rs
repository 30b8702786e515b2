//! Knowing what the assistant cannot do: a request whose action no intent serves ("reboot the
//! orchestrator", "wipe the deck's snapshots", "book a meeting room") goes to the fallback, which
//! says so, instead of to whichever intent shares a droplet name with it.
//!
//! The configuration's actions are the words its intents are written with: their examples
//! (outside the values the examples hold: "schedule a job to *restart the workers*" teaches
//! "schedule", not "restart"), keywords, descriptions and slot phrases, as typed, as stems and as
//! the vocabulary's terms (so a synonym counts: "delete" is `remove`). A message is out of scope
//! when it asks with a verb (the lexicon's `action_verbs`) that is none of these, outside the
//! values the chosen intent would read from it ("create a task to restart the workers" asks to
//! create a task).

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::catalogue::Catalogue;
use crate::nlu::{Analyzer, Lexicon, Reading};
use crate::pipeline::Pipeline;
use crate::slots::fill::Said;

/// The words the configuration's intents act with.
#[derive(Debug, Default)]
pub struct Scope {
    known: HashSet<String>,
}

impl Scope {
    /// Collects the words of every intent's examples (outside their values), keywords,
    /// description and slot phrases.
    pub fn build(pipelines: &[Pipeline], keywords: &[&str], catalogue: &Catalogue, analyzer: &Analyzer) -> Scope {
        let mut scope = Scope::default();
        for pipeline in pipelines.iter().filter(|p| !p.fallback) {
            for example in &pipeline.examples {
                let reading = analyzer.read(example);
                let values = value_words(pipeline, &reading, catalogue, analyzer);
                for word in reading.words.iter().filter(|w| !values.contains(&w.text)) {
                    scope.learn(&word.text, analyzer);
                }
            }
            let phrases = pipeline.slots.iter().flat_map(|s| s.phrases.iter().map(|p| p.written.as_str()));
            for text in std::iter::once(pipeline.description.as_str()).chain(phrases) {
                for word in crate::nlu::text::words(text) {
                    scope.learn(&word.text, analyzer);
                }
            }
        }
        for word in keywords.iter().flat_map(|k| crate::nlu::text::words(k)) {
            scope.learn(&word.text, analyzer);
        }
        scope
    }

    fn learn(&mut self, word: &str, analyzer: &Analyzer) {
        self.known.insert(word.to_owned());
        self.known.insert(analyzer.stem(word));
        self.known.extend(analyzer.canonical(word));
    }

    fn knows(&self, word: &str, analyzer: &Analyzer) -> bool {
        self.known.contains(word)
            || self.known.contains(&analyzer.stem(word))
            || analyzer.canonical(word).is_some_and(|term| self.known.contains(&term))
    }

    /// The verb of a request no intent serves ("reboot"), as typed; `None` when every action in
    /// it is one the configuration knows. `chosen` is the intent the rules would pick: words in
    /// the values it reads are not actions ("a task to *restart the workers*").
    pub fn unsupported(
        &self,
        chosen: Option<&Pipeline>,
        reading: &Reading,
        catalogue: &Catalogue,
        analyzer: &Analyzer,
    ) -> Option<String> {
        let english = Lexicon::english();
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
        reading
            .words
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                !in_a_droplet_name(*i) && !values.contains(&w.text) && !values.contains(&analyzer.stem(&w.text))
            })
            .map(|(_, w)| w)
            // "cool, thanks": an interjection is no action
            .filter(|w| english.action_verbs.contains(&w.text) && !is_courtesy(&w.text))
            .find(|w| !self.knows(&w.text, analyzer))
            .map(|w| reading.text[w.start..w.end].to_owned())
    }
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
