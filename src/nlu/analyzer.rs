//! From a text to the terms the intent matcher compares: the same steps for the stewards'
//! examples (at load time) and for every message.
//!
//! 1. words, normalised ([`super::text`]);
//! 2. a word the configuration does not know is corrected to the closest known word, when one is
//!    a single edit away (two for long words): "regster" → "register", "dashbord" → "dashboard";
//! 3. entities stand as their type: a number → `#number`, a droplet name or alias → `#droplet`,
//!    a quoted value → `#value`, so "status of the registry" teaches "status of the dashboard";
//!    a droplet that is the topic of a request rather than a value ("show the registry") is one
//!    term of its own, `@registry`, however many words its name has;
//!    a capitalised name inside a typed sentence ("sign up Metrics Collector") gives no term, so
//!    a name made of words the intents use does not pull the message elsewhere;
//! 4. the stewards' synonyms become their canonical term ("big picture" → `overview`);
//! 5. what is left loses filler words ([`Lexicon::fillers`]) and is stemmed (Snowball English):
//!    "registered" → `regist`.

use std::collections::{BTreeMap, HashSet};

use rust_stemmers::{Algorithm, Stemmer};

use super::lexicon::Lexicon;
use super::numbers;
use super::text::{self, Word};
use super::vocabulary::Vocabulary;
use crate::catalogue::Catalogue;

pub const NUMBER: &str = "#number";
pub const DROPLET: &str = "#droplet";
pub const VALUE: &str = "#value";

/// How an entity in the text is turned into terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entities {
    /// A user's message: a droplet name gives its words *and* `#droplet` (the message may be
    /// about that droplet as a value, or about the droplet as a topic: "show the registry").
    Message,
    /// An example of an intent that has a droplet slot: the name is the slot's value, `#droplet`.
    ExampleWithDropletSlot,
    /// An example of any other intent: the name is part of what is asked ("show the registry").
    Example,
}

/// What the analyzer made of a text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Terms in order of first appearance, each once.
    pub terms: Vec<String>,
    /// Typos corrected: (as typed, as read).
    pub corrections: Vec<(String, String)>,
    /// Synonyms read: (as said, canonical term).
    pub synonyms: Vec<(String, String)>,
    /// Droplets named, in order of first mention, each once.
    pub droplets: Vec<i64>,
    /// The words after typo correction.
    pub words: Vec<Word>,
    /// The original text with each corrected word put right, when any was (stewards' patterns
    /// are tried on it too: "regster a service" matches `\bregister\b`).
    pub corrected_text: Option<String>,
}

/// A message as read once per turn: its words after typo correction, the numbers in them and
/// the droplets they name. Planning, the resolver and the slot reader all start from it, so a
/// turn corrects and tokenises its message once, not once per reader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// The text as it was said.
    pub text: String,
    /// Its words after typo correction.
    pub words: Vec<Word>,
    /// Typos corrected: (as typed, as read).
    pub corrections: Vec<(String, String)>,
    /// The numbers among the words.
    pub numbers: Vec<numbers::Found>,
    /// The droplets named: (first word, end word, droplet id).
    pub droplets: Vec<(usize, usize, i64)>,
}

/// The configuration's way of reading text: its vocabulary, droplet names and known words.
pub struct Analyzer {
    stemmer: Stemmer,
    vocabulary: Vocabulary,
    /// Droplet names and aliases as word sequences with their id, longest first.
    droplet_names: Vec<(Vec<String>, i64)>,
    /// Every word the configuration uses, by length, for typo correction.
    known_by_length: BTreeMap<usize, Vec<String>>,
    known: HashSet<String>,
    /// Droplet ids that exist (for "droplet 14").
    droplet_ids: Vec<(i64, i64)>,
    /// Each droplet's term when it is the topic of a request: `@registry`, `@visibility_deck`.
    droplet_terms: Vec<(i64, String)>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("known_words", &self.known.len()).finish_non_exhaustive()
    }
}

/// A quoted text of at most this many words stands as a value (`#value`).
const QUOTED_VALUE_WORDS: usize = 4;

/// The most unknown words a message gets corrected (bounded time for any input).
const MAX_CORRECTIONS: usize = 24;

impl Analyzer {
    /// `known_texts` are every text the stewards wrote that users may echo: examples, keywords,
    /// slot phrases, descriptions.
    pub fn new<'a>(catalogue: &Catalogue, vocabulary: Vocabulary, known_texts: impl Iterator<Item = &'a str>) -> Self {
        let mut droplet_names: Vec<(Vec<String>, i64)> = Vec::new();
        let mut droplet_ids = Vec::new();
        let droplet_terms = catalogue.droplets.iter().map(|d| (d.id, format!("@{}", d.key))).collect();
        for droplet in &catalogue.droplets {
            droplet_ids.push((droplet.id, droplet.id));
            droplet_ids.extend(droplet.alias_ids.iter().map(|alias| (*alias, droplet.id)));
            let mut names = vec![droplet.name.clone(), droplet.key.replace('_', " ")];
            names.extend(droplet.aliases.iter().cloned());
            for name in names {
                let mut words: Vec<String> = text::words(&name).into_iter().map(|w| w.text).collect();
                if words.first().is_some_and(|w| Lexicon::english().definite_articles.contains(w)) {
                    words.remove(0);
                }
                if !words.is_empty() && !droplet_names.iter().any(|(n, _)| *n == words) {
                    droplet_names.push((words, droplet.id));
                }
            }
        }
        droplet_names.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));

        let mut known = HashSet::new();
        for text in known_texts {
            known.extend(text::words(text).into_iter().map(|w| w.text));
        }
        for text in vocabulary.phrases_text() {
            known.extend(text::words(text).into_iter().map(|w| w.text));
        }
        for (name, _) in &droplet_names {
            known.extend(name.iter().cloned());
        }
        known.extend(Lexicon::english().fillers.iter().map(str::to_owned));
        let mut known_by_length: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for word in &known {
            if word.chars().all(|c| c.is_alphabetic()) {
                known_by_length.entry(word.chars().count()).or_default().push(word.clone());
            }
        }
        for words in known_by_length.values_mut() {
            words.sort();
        }
        Analyzer {
            stemmer: Stemmer::create(Algorithm::English),
            vocabulary,
            droplet_names,
            known_by_length,
            known,
            droplet_ids,
            droplet_terms,
        }
    }

    /// The droplets a name or alias of which has `word` in it ("orchestrator": the Orchestrator
    /// and the Chat Orchestrator), each once.
    pub fn droplets_named_with(&self, word: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = Vec::new();
        for (name, id) in &self.droplet_names {
            if name.iter().any(|w| w == word) && !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids
    }

    /// Whether `word` introduces a droplet's id ("droplet" in "droplet 14"; the stewards' words).
    pub fn introduces_droplet(&self, word: &str) -> bool {
        self.vocabulary.introduces_droplet(word)
    }

    pub fn stem(&self, word: &str) -> String {
        self.stemmer.stem(word).into_owned()
    }

    /// Whether `word`, with no droplet named, means every droplet (the stewards'
    /// `every_droplet_words`).
    pub fn means_every_droplet(&self, word: &str) -> bool {
        self.vocabulary.means_every_droplet(word)
    }

    /// The canonical term a single word is a synonym of ("svc" → `servic`, as a stem).
    pub fn canonical(&self, word: &str) -> Option<String> {
        let stem = self.stem(word);
        self.vocabulary
            .longest_at(std::slice::from_ref(&stem))
            .filter(|(length, _)| *length == 1)
            .map(|(_, c)| c.to_owned())
    }

    /// The closest known word to an unknown one, if it is near enough to be a typo.
    fn correct(&self, word: &str) -> Option<String> {
        let length = word.chars().count();
        if !(3..=24).contains(&length) || !word.chars().all(|c| c.is_alphabetic()) || self.known.contains(word) {
            return None;
        }
        // "four" is a number, not a typo of "your"; "last" is a word, not a typo of "list"
        let english = Lexicon::english();
        if numbers::is_number_word(word) || english.is_common_word(word) {
            return None;
        }
        let allowed = if length >= 9 { 2 } else { 1 };
        let first = word.chars().next();
        let mut best: Option<(usize, bool, &String)> = None;
        for (_, candidates) in self.known_by_length.range(length.saturating_sub(allowed)..=length + allowed) {
            for candidate in candidates {
                // a filler word is never what a typo meant to say; a three-letter word is only
                // read as a longer one missing a letter ("wat" → "what", "lst" → "list")
                let candidate_length = candidate.chars().count();
                if candidate_length < 4 || english.fillers.contains(candidate) || (length == 3 && candidate_length != 4)
                {
                    continue;
                }
                // one edit is checked without allocating; two (long words only) with strsim,
                // for candidates sharing the first letter
                let distance = if one_edit_apart(word, candidate) {
                    1
                } else if allowed == 2 && candidate.chars().next() == first {
                    strsim::damerau_levenshtein(word, candidate)
                } else {
                    continue;
                };
                if distance == 0 || distance > allowed {
                    continue;
                }
                let same_first = candidate.chars().next() == first;
                let better = match best {
                    None => true,
                    Some((d, f, _)) => distance < d || (distance == d && same_first && !f),
                };
                if better {
                    best = Some((distance, same_first, candidate));
                }
            }
        }
        best.map(|(_, _, w)| w.clone())
    }

    /// The words of a text after typo correction, with the corrections made.
    pub fn corrected_words(&self, text: &str) -> (Vec<Word>, Vec<(String, String)>) {
        let mut words = text::words(text);
        let mut corrections = Vec::new();
        for (index, word) in words.iter_mut().enumerate() {
            if corrections.len() >= MAX_CORRECTIONS {
                break;
            }
            // a capitalised word inside a sentence is a name ("John Doe", "Kassa"), not a typo
            let capitalised = text[word.start..word.end].chars().next().is_some_and(char::is_uppercase);
            if capitalised && index > 0 && !word.after_break {
                continue;
            }
            if let Some(better) = self.correct(&word.text) {
                corrections.push((std::mem::replace(&mut word.text, better.clone()), better));
            }
        }
        (words, corrections)
    }

    /// The droplets a run of words names, with the word ranges naming them: names and aliases
    /// (longest first) and numbers after one of the stewards' `droplet_words` ("droplet 14",
    /// "droplet number 14").
    pub fn droplet_mentions(&self, words: &[Word], numbers: &[numbers::Found]) -> Vec<(usize, usize, i64)> {
        let english = Lexicon::english();
        let mut found = Vec::new();
        let mut index = 0;
        while index < words.len() {
            let named = self.droplet_names.iter().find(|(name, _)| {
                words.len() - index >= name.len() && name.iter().zip(&words[index..]).all(|(n, w)| *n == w.text)
            });
            if let Some((name, id)) = named {
                found.push((index, index + name.len(), *id));
                index += name.len();
                continue;
            }
            if self.vocabulary.introduces_droplet(&words[index].text) {
                let mut next = index + 1;
                if words.get(next).is_some_and(|w| english.id_markers.contains(&w.text)) {
                    next += 1;
                }
                // "droplet 14", and the numbers listed after it: "droplets 1, 2 and 14"
                let mut start = index;
                let mut listed = false;
                while let Some(number) = numbers.iter().find(|n| n.first == next) {
                    let Some((_, id)) = number.integer().and_then(|n| self.droplet_ids.iter().find(|(a, _)| *a == n))
                    else {
                        break;
                    };
                    found.push((start, number.end, *id));
                    listed = true;
                    start = number.end;
                    next = number.end;
                    if words.get(next).is_some_and(|w| english.list_joiners.contains(&w.text)) {
                        next += 1;
                    }
                }
                if listed {
                    index = start;
                    continue;
                }
            }
            index += 1;
        }
        found
    }

    /// Which words are part of a name: capitalised inside a sentence ("register Metrics
    /// Collector", "our new Notifier service"), not "I", not an acronym the configuration uses
    /// ("the API of the registry"). A text written in title case or capitals has no such names:
    /// its capitals say nothing.
    fn names(&self, text: &str, words: &[Word]) -> Vec<bool> {
        let typed = |word: &Word| &text[word.start..word.end];
        let capitalised = |word: &Word| typed(word).chars().next().is_some_and(char::is_uppercase);
        let mut names: Vec<bool> = words
            .iter()
            .enumerate()
            .map(|(index, word)| {
                // "That's" is read as "that is": only the first word of a contraction is typed
                let typed_here = index == 0 || words[index - 1].start != word.start;
                let inside = index > 0 && !word.after_break && typed_here;
                let acronym = typed(word).chars().all(|c| !c.is_lowercase()) && self.known.contains(&word.text);
                inside && capitalised(word) && word.text != "i" && !acronym
            })
            .collect();
        let capitals = words.iter().skip(1).filter(|w| capitalised(w) && w.text != "i").count();
        if words.len() >= 3 && capitals * 2 > words.len() - 1 {
            names.iter_mut().for_each(|n| *n = false);
        }
        names
    }

    /// Reads a text: its words corrected, its numbers and the droplets it names.
    pub fn read(&self, text: &str) -> Reading {
        let (words, corrections) = self.corrected_words(text);
        let numbers = numbers::find(text, &words);
        let droplets = self.droplet_mentions(&words, &numbers);
        Reading { text: text.to_owned(), words, corrections, numbers, droplets }
    }

    /// The terms of a text, for comparing it with intents' examples.
    pub fn analyze(&self, text: &str, entities: Entities) -> Analysis {
        self.analyze_reading(&self.read(text), entities)
    }

    /// The terms of a text already read.
    pub fn analyze_reading(&self, reading: &Reading, entities: Entities) -> Analysis {
        let Reading { text, words, corrections, numbers, droplets } = reading;
        let text = text.as_str();
        // a short quoted text is a value ("called 'Audit Log'"); a quoted sentence is what the
        // user wants ("customer asks: 'what API does the orchestrator offer?'")
        let quoted: Vec<(usize, usize)> = quoted_ranges(text)
            .into_iter()
            .filter(|(s, e)| text::words(&text[*s..*e]).len() <= QUOTED_VALUE_WORDS)
            .collect();
        let stems: Vec<String> = words.iter().map(|w| self.stem(&w.text)).collect();
        let names = self.names(text, words);

        let mut analysis = Analysis { corrections: corrections.clone(), ..Analysis::default() };
        let push = |analysis: &mut Analysis, term: &str| {
            if !analysis.terms.iter().any(|t| t == term) {
                analysis.terms.push(term.to_owned());
            }
        };
        let mut index = 0;
        while index < words.len() {
            let word = &words[index];
            if quoted.iter().any(|(s, e)| word.start >= *s && word.end <= *e) {
                push(&mut analysis, VALUE);
                while index < words.len()
                    && quoted.iter().any(|(s, e)| words[index].start >= *s && words[index].end <= *e)
                {
                    index += 1;
                }
                continue;
            }
            if let Some((_, end, id)) = droplets.iter().find(|(start, _, _)| *start == index) {
                if !analysis.droplets.contains(id) {
                    analysis.droplets.push(*id);
                }
                // the droplet as the topic ("show the registry"): one term, whatever its name's length
                if entities != Entities::ExampleWithDropletSlot {
                    if let Some((_, term)) = self.droplet_terms.iter().find(|(d, _)| d == id) {
                        push(&mut analysis, term);
                    }
                }
                if entities != Entities::Example {
                    push(&mut analysis, DROPLET);
                }
                index = *end;
                continue;
            }
            if let Some(number) = numbers.iter().find(|n| n.first == index) {
                push(&mut analysis, NUMBER);
                index = number.end;
                continue;
            }
            // a name tells nothing about the intent (a steward's example with "Billing" must not
            // make every capitalised word a registration), it only keeps its words from counting
            if names[index] {
                index += 1;
                continue;
            }
            if let Some((length, canonical)) = self.vocabulary.longest_at(&stems[index..]) {
                let said: Vec<&str> = words[index..index + length].iter().map(|w| w.text.as_str()).collect();
                analysis.synonyms.push((said.join(" "), canonical.to_owned()));
                push(&mut analysis, canonical);
                index += length;
                continue;
            }
            if !Lexicon::english().fillers.contains(&word.text) {
                push(&mut analysis, &stems[index]);
            }
            index += 1;
        }
        if !analysis.corrections.is_empty() {
            let mut corrected = String::with_capacity(text.len());
            let mut at = 0;
            for word in words {
                let typed = &text[word.start..word.end];
                let corrected_here =
                    analysis.corrections.iter().any(|(was, now)| *now == word.text && typed.to_lowercase() == *was);
                if corrected_here && word.start >= at {
                    corrected.push_str(&text[at..word.start]);
                    corrected.push_str(&word.text);
                    at = word.end;
                }
            }
            corrected.push_str(&text[at..]);
            analysis.corrected_text = Some(corrected);
        }
        analysis.words = words.clone();
        analysis
    }
}

/// Whether `a` becomes `b` by one insertion, deletion, substitution or swap of neighbours.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..].iter().rev().zip(b[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (rest_a, rest_b) = (a.len() - prefix - suffix, b.len() - prefix - suffix);
    match (rest_a, rest_b) {
        (1, 1) | (0, 1) | (1, 0) => true,
        // a swap of neighbours: "stauts" / "status"
        (2, 2) => a[prefix] == b[prefix + 1] && a[prefix + 1] == b[prefix],
        _ => false,
    }
}

/// Byte ranges of text in quotes ("…", '…', “…”, `…`), without the quotes.
fn quoted_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    let mut previous: Option<char> = None;
    for (index, c) in text.char_indices() {
        match open {
            None => {
                // an apostrophe inside a word ("what's") opens nothing
                let starts =
                    matches!(c, '"' | '\u{201C}' | '`') || (c == '\'' && !previous.is_some_and(char::is_alphanumeric));
                if starts {
                    open = Some((c, index + c.len_utf8()));
                }
            }
            Some((quote, start)) => {
                let closes = match quote {
                    '\u{201C}' => c == '\u{201D}' || c == '"',
                    _ => c == quote,
                };
                if closes && index > start {
                    out.push((start, index));
                    open = None;
                }
            }
        }
        previous = Some(c);
    }
    out
}

/// A small configuration's analyzer (Registry, Dashboard, Visibility Deck; a few synonyms), for
/// the unit tests of the modules that read with it.
#[cfg(test)]
pub(crate) fn test_analyzer() -> Analyzer {
    use crate::catalogue::Droplet;
    use crate::nlu::vocabulary::MeshNouns;

    let droplet = |id, key: &str, name: &str, aliases: &[&str]| Droplet {
        id,
        key: key.into(),
        name: name.into(),
        purpose: String::new(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        alias_ids: vec![],
        endpoints: vec![],
    };
    let catalogue = Catalogue::new(vec![
        droplet(1, "registry", "Registry", &["the registry"]),
        droplet(2, "dashboard", "Dashboard", &["dash"]),
        droplet(14, "visibility_deck", "Visibility Deck", &["deck"]),
    ]);
    let nouns = MeshNouns { droplet_words: vec!["droplet".into()], generic_nouns: vec![], every_droplet_words: vec![] };
    let vocabulary =
        Vocabulary::from_pairs(&[("overview", &["big picture", "summary"]), ("droplet", &["service", "node"])])
            .with_nouns(nouns);
    Analyzer::new(&catalogue, vocabulary, ["register a new service", "show me the status"].into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        test_analyzer()
    }

    #[test]
    fn entities_stand_as_their_type() {
        let a = analyzer();
        let message = a.analyze("status of the dashboard", Entities::Message);
        assert_eq!(message.terms, ["status", "@dashboard", DROPLET]);
        assert_eq!(message.droplets, [2]);
        let example = a.analyze("status of the registry", Entities::ExampleWithDropletSlot);
        assert_eq!(example.terms, ["status", DROPLET]);
        assert_eq!(a.analyze("is droplet 14 up", Entities::Message).droplets, [14]);
        assert_eq!(
            a.analyze("is drop 14 up", Entities::Message).droplets,
            Vec::<i64>::new(),
            "not a droplet word here"
        );
        assert_eq!(a.analyze("remove service 12", Entities::Message).terms, ["remov", "droplet", NUMBER]);
        assert_eq!(a.analyze("call it \"Payments Gateway\" ok", Entities::Message).terms, ["call", VALUE, "ok"]);
    }

    #[test]
    fn capitalised_names_stand_as_a_name() {
        let a = analyzer();
        let terms = |text: &str| a.analyze(text, Entities::Message).terms;
        assert_eq!(terms("sign up Metrics Collector with id 61"), ["sign", "up", "with", "id", NUMBER]);
        assert_eq!(terms("Status of the dashboard"), ["status", "@dashboard", DROPLET], "first word of a sentence");
        assert_eq!(terms("can I see the status"), ["see", "status"]);
        assert_eq!(terms("That's all I need"), ["all", "need"], "a contraction is one word typed");
        assert_eq!(terms("Show The Status Of Everything"), terms("show the status of everything"), "title case");
    }

    #[test]
    fn synonyms_and_typos() {
        let a = analyzer();
        let analysis = a.analyze("give me the big picture", Entities::Message);
        assert_eq!(analysis.terms, ["give", "overview"]);
        assert_eq!(analysis.synonyms, [("big picture".to_owned(), "overview".to_owned())]);
        let typo = a.analyze("regster a new servce", Entities::Message);
        assert_eq!(typo.terms, ["regist", "new", "droplet"]);
        assert_eq!(typo.corrections.len(), 2);
        assert_eq!(a.analyze("the dashbord", Entities::Message).droplets, [2]);
    }

    #[test]
    fn one_edit() {
        assert!(one_edit_apart("regster", "register"));
        assert!(one_edit_apart("stauts", "status"));
        assert!(one_edit_apart("servce", "service"));
        assert!(one_edit_apart("dashbord", "dashboard"));
        assert!(!one_edit_apart("registry", "register"));
        assert!(!one_edit_apart("same", "same") && !one_edit_apart("abc", "xyz"));
    }

    #[test]
    fn quotes_and_apostrophes() {
        assert_eq!(quoted_ranges("name it 'Billing' what's"), vec![(9, 16)]);
        assert_eq!(quoted_ranges("what's up"), vec![]);
    }
}
