//! Slot values from natural phrasing: the phrases a steward declares per slot (`from:
//! ["called {value}", "id {value}"]`) and the slot's own name ("id 77", "the name is Billing").
//!
//! A phrase is words before and/or after `{value}`. After the words before it, a connector
//! people put there is skipped ("id *is* 77", "priority *should be* 2"). The value is then read
//! by the slot's type:
//! - numbers: one number in digits or words ("seventy seven");
//! - droplets: a droplet name or "droplet 14";
//! - text: up to the next clause break, the start of another slot's phrase, the words after
//!   `{value}` or the end of the message, without the joining and filler words at its ends
//!   ("register Billing *with* id 77", "called Payments Gateway*, please*"), or exactly what is
//!   in quotes.
//!
//! The connectors, joining, leading and filler words and the pronouns that stand for a value are
//! the lexicon's ([`Lexicon::connectors`], [`Lexicon::trailing`], [`Lexicon::leading`],
//! [`Lexicon::pronouns`]); the mesh's nouns that are never a value on their own ("service") are
//! the stewards' (`generic_nouns`, in [`GenericWords`]).

use super::{GenericWords, SlotKind};
use crate::nlu::numbers;
use crate::nlu::text::{self, Word};
use crate::nlu::Lexicon;

/// The longest text value read, in words (a task title may be a sentence).
const MAX_VALUE_WORDS: usize = 24;

/// One compiled phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub written: String,
    before: Vec<String>,
    after: Vec<String>,
    /// Letters written right against `{value}` ("p{value}" reads "p3" as 3): a number's prefix
    /// inside one word, as in "P1" for a priority or "v2" for a version.
    glued: Option<String>,
}

impl Phrase {
    /// Compiles "called {value}"; says what is wrong with a phrase that cannot be one.
    pub fn new(written: &str) -> Result<Phrase, String> {
        let count = written.matches("{value}").count();
        if count != 1 {
            return Err(format!("the phrase \"{written}\" must contain `{{value}}` exactly once (it has {count})"));
        }
        let (before, after) = written.split_once("{value}").unwrap_or_default();
        let words = |t: &str| text::words(t).into_iter().map(|w| w.text).collect::<Vec<_>>();
        let glued_to = before.chars().last().is_some_and(|c| !c.is_whitespace());
        if glued_to {
            let prefix = before.trim().to_lowercase();
            if prefix.contains(char::is_whitespace) || !after.trim().is_empty() || prefix.len() > 8 {
                return Err(format!(
                    "the phrase \"{written}\" writes letters against `{{value}}`; that form is one prefix \
                     and the value in one word, like \"p{{value}}\" for \"p3\""
                ));
            }
            return Ok(Phrase {
                written: written.to_owned(),
                before: Vec::new(),
                after: Vec::new(),
                glued: Some(prefix),
            });
        }
        let phrase = Phrase { written: written.to_owned(), before: words(before), after: words(after), glued: None };
        if phrase.before.is_empty() && phrase.after.is_empty() {
            return Err(format!(
                "the phrase \"{written}\" has no words around `{{value}}`, so it would match anything"
            ));
        }
        Ok(phrase)
    }

    /// The implicit phrase of a slot's name or alias: "id {value}", "service name {value}".
    pub fn of_key(key: &str) -> Option<Phrase> {
        Phrase::new(&format!("{} {{value}}", key.replace(['_', '-'], " "))).ok()
    }

    /// Whether the phrase reads only numbers ("p{value}"): a `check` error on a text slot.
    pub fn is_glued(&self) -> bool {
        self.glued.is_some()
    }

    /// Where this phrase's leading words start, at each position of `words`.
    pub fn starts_at(&self, words: &[Word], index: usize) -> bool {
        if let Some(prefix) = &self.glued {
            // "fix login, P2" and "P1: restart the cache", not the "p99" inside a sentence
            let clause_edge = index == 0
                || words.get(index).is_some_and(|w| w.after_break)
                || words.get(index + 1).is_none_or(|w| w.after_break);
            return clause_edge
                && words.get(index).is_some_and(|w| {
                    w.text.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                        let rest = rest.trim_start_matches('-');
                        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                    })
                });
        }
        let marker = if self.before.is_empty() { &self.after } else { &self.before };
        !marker.is_empty()
            && words.len() - index >= marker.len()
            && marker.iter().zip(&words[index..]).all(|(m, w)| *m == w.text)
    }
}

/// A value a phrase found: the text to coerce and the words it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub raw: String,
    pub first: usize,
    pub end: usize,
}

/// What the reader needs to know about the message besides the phrase.
pub struct Reading<'a> {
    pub text: &'a str,
    pub words: &'a [Word],
    pub numbers: &'a [numbers::Found],
    /// Droplet mentions: (first word, end, id).
    pub droplets: &'a [(usize, usize, i64)],
    /// Whether a text value must stop before this word (a clause break is checked apart).
    pub stops: &'a dyn Fn(usize) -> bool,
    /// Words that on their own say nothing about a value: the intent's own vocabulary (as words
    /// and as stems) and the stewards' generic nouns.
    pub generic: &'a GenericWords,
    /// The stemmer the generic words were stemmed with.
    pub stem: &'a dyn Fn(&str) -> String,
    /// The stewards' canonical term for a word, when it is a synonym ("svc" → service).
    pub canonical: &'a dyn Fn(&str) -> Option<String>,
}

impl Reading<'_> {
    fn is_generic(&self, word: &str) -> bool {
        self.generic.contains(word) || self.generic.contains(&(self.stem)(word))
    }

    /// [`Reading::is_generic`], or a synonym of a generic word ("svc" for service): only for the
    /// words a value starts with ("add svc payments-api"), since a synonym at its end may be
    /// part of it ("Clean up logs", where "log" also means create).
    fn is_generic_lead(&self, word: &str) -> bool {
        self.is_generic(word) || (self.canonical)(word).is_some_and(|term| self.generic.contains(&term))
    }
}

/// The first value `phrase` finds for a slot of `kind`.
pub fn find(phrase: &Phrase, kind: SlotKind, reading: &Reading<'_>) -> Option<Found> {
    let words = reading.words;
    if let Some(prefix) = &phrase.glued {
        if !matches!(kind, SlotKind::Integer | SlotKind::Number) {
            return None;
        }
        // "p3": the word's own characters, so "#12" and "P-1" read too
        return words.iter().enumerate().filter(|(index, _)| phrase.starts_at(words, *index)).find_map(
            |(index, word)| {
                let typed = reading.text[word.start..word.end].to_lowercase();
                let rest = typed.strip_prefix(prefix.as_str())?.trim_start_matches('-');
                (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) && !(reading.stops)(index))
                    .then(|| Found { raw: rest.to_owned(), first: index, end: index + 1 })
            },
        );
    }
    for index in 0..words.len() {
        if (reading.stops)(index) && !phrase.starts_at(words, index) {
            continue;
        }
        let found = if phrase.before.is_empty() {
            value_before(phrase, kind, reading, index)
        } else {
            if !phrase.starts_at(words, index) {
                continue;
            }
            value_after(phrase, kind, reading, index + phrase.before.len())
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// `{value} <after>`: the value ends right before the words after it.
fn value_before(phrase: &Phrase, kind: SlotKind, reading: &Reading<'_>, index: usize) -> Option<Found> {
    if !phrase.starts_at(reading.words, index) || index == 0 {
        return None;
    }
    let end = index;
    let mut first = end;
    while first > 0 && end - first < MAX_VALUE_WORDS && !reading.words[first].after_break && !(reading.stops)(first - 1)
    {
        first -= 1;
    }
    read_value(kind, reading, first, end, true)
}

/// `<before> {value} [<after>]`: the value starts after the phrase's words and any connector.
fn value_after(phrase: &Phrase, kind: SlotKind, reading: &Reading<'_>, mut start: usize) -> Option<Found> {
    let words = reading.words;
    // a quoted value is taken exactly
    if kind == SlotKind::String {
        if let Some(found) = quoted_after(reading, start) {
            return Some(found);
        }
        // "a task for the orchestrator: investigate the leak" — the value follows the colon
        let colon = (start..words.len().min(start + 6))
            .take_while(|i| *i == start || !words[*i].after_break)
            .find(|i| *i > 0 && reading.text[words[*i - 1].end..words[*i].start].contains(':'));
        if let Some(after_colon) = colon {
            start = after_colon;
        }
    }
    let connectors = &Lexicon::english().connectors;
    while start < words.len() && connectors.contains(&words[start].text) && !words[start].after_break {
        // "id number 5" and "the id is 5" skip; but "number" may *be* the value's first word
        // only for numbers, where it never is
        start += 1;
    }
    // a value starts right after its phrase: "make a task, title is X" has no title after "task"
    if start >= words.len() || (words[start].after_break && start > 0) {
        return None;
    }
    // "register service id 55": what follows is another slot's phrase, not this value
    if (reading.stops)(start) {
        return None;
    }
    let mut end = start;
    while end < words.len() && end - start < MAX_VALUE_WORDS {
        if end > start && (words[end].after_break || (reading.stops)(end)) {
            break;
        }
        if !phrase.after.is_empty()
            && phrase.after.iter().zip(&words[end..]).all(|(a, w)| *a == w.text)
            && words.len() - end >= phrase.after.len()
        {
            break;
        }
        end += 1;
    }
    if !phrase.after.is_empty()
        && (end >= words.len() || !phrase.after.iter().zip(&words[end..]).all(|(a, w)| *a == w.text))
    {
        return None;
    }
    read_value(kind, reading, start, end, false)
}

/// Reads a value of `kind` in words `first..end`: a number or droplet at its start (or end,
/// when the value precedes the phrase), or the words as text.
fn read_value(kind: SlotKind, reading: &Reading<'_>, first: usize, end: usize, from_end: bool) -> Option<Found> {
    if first >= end {
        return None;
    }
    match kind {
        SlotKind::Integer | SlotKind::Number => {
            let number = reading
                .numbers
                .iter()
                .find(|n| if from_end { n.end == end } else { n.first == first })
                .filter(|n| !reading.droplets.iter().any(|(s, e, _)| n.first >= *s && n.end <= *e))?;
            Some(Found { raw: number.plain(), first: number.first, end: number.end })
        }
        SlotKind::Droplet => {
            let (s, e, _) = reading.droplets.iter().find(|(s, e, _)| {
                if from_end {
                    *e == end
                } else {
                    *s == first
                        || (*s == first + 1
                            && Lexicon::english().definite_articles.contains(&reading.words[first].text))
                }
            })?;
            Some(Found { raw: span(reading, *s, *e), first: *s, end: *e })
        }
        SlotKind::Boolean => {
            let raw = span(reading, first, end);
            let (_, used) = crate::nlu::answers::leading(&raw)?;
            Some(Found { raw: span(reading, first, first + used), first, end: first + used })
        }
        SlotKind::String => {
            let english = Lexicon::english();
            let words = reading.words;
            let (mut first, mut end) = (first, end);
            // leading determiners and the intent's own words, in any order: "the title is …"
            loop {
                let before = first;
                while first < end && english.leading.contains(&words[first].text) {
                    first += 1;
                }
                while first < end
                    && reading.is_generic_lead(&words[first].text)
                    && !is_capitalised(reading, first)
                    && end - first > 1
                {
                    first += 1;
                }
                if first == before {
                    break;
                }
            }
            while end > first
                && (english.trailing.contains(&words[end - 1].text)
                    || (end - first > 1
                        && reading.is_generic(&words[end - 1].text)
                        && !is_capitalised(reading, end - 1)))
            {
                end -= 1;
            }
            while first < end
                && reading.is_generic(&words[first].text)
                && !is_capitalised(reading, first)
                && end - first > 1
            {
                first += 1;
            }
            // the stewards' synonyms count too: "register a new svc" names no service
            let vacuous = |w: &Word| {
                reading.is_generic(&w.text)
                    || english.trailing.contains(&w.text)
                    || english.pronouns.contains(&w.text)
                    || reading.generic.is_noun(&w.text)
                    || (reading.canonical)(&w.text)
                        .is_some_and(|term| reading.generic.is_noun_stem(&term, reading.stem))
            };
            if first >= end || words[first..end].iter().all(vacuous) {
                return None;
            }
            // "add 3 more replicas": a count of something, never its name
            let counted = reading.numbers.iter().any(|n| n.first == first && n.end < end)
                && reading
                    .numbers
                    .iter()
                    .find(|n| n.first == first)
                    .is_some_and(|n| english.count_words.contains(&words[n.end].text));
            if counted {
                return None;
            }
            Some(Found { raw: span(reading, first, end), first, end })
        }
    }
}

/// Whether the word was typed with a capital (a name: "Registry Mirror"), which keeps it in a
/// value even when it is also one of the intent's own words.
fn is_capitalised(reading: &Reading<'_>, index: usize) -> bool {
    let word = &reading.words[index];
    reading.text[word.start..word.end].chars().next().is_some_and(char::is_uppercase)
}

fn span(reading: &Reading<'_>, first: usize, end: usize) -> String {
    reading.text[reading.words[first].start..reading.words[end - 1].end].to_owned()
}

/// A value in quotes right after the phrase ("called 'Payments Gateway'").
fn quoted_after(reading: &Reading<'_>, start: usize) -> Option<Found> {
    let word = reading.words.get(start)?;
    let before = reading.text[..word.start].trim_end_matches([' ', ':', '=']);
    let quote = before.chars().last().filter(|c| matches!(c, '"' | '\'' | '\u{201C}' | '`'))?;
    let close = match quote {
        '\u{201C}' => '\u{201D}',
        other => other,
    };
    let rest = &reading.text[word.start..];
    let length = rest.find(close).or_else(|| (quote == '\u{201C}').then(|| rest.find('"')).flatten())?;
    let value = rest[..length].trim();
    if value.is_empty() {
        return None;
    }
    let end_byte = word.start + length;
    let end = reading.words.iter().position(|w| w.start >= end_byte).unwrap_or(reading.words.len());
    Some(Found { raw: value.to_owned(), first: start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(phrases: &[&str], kind: SlotKind, text: &str, others: &[&str]) -> Option<String> {
        let own = ["register", "service", "new", "task", "create"].iter().map(|s| s.to_string()).collect();
        read_with(&GenericWords::new(own, vec!["service".into(), "services".into()]), phrases, kind, text, others)
    }

    fn read_with(
        generic: &GenericWords,
        phrases: &[&str],
        kind: SlotKind,
        text: &str,
        others: &[&str],
    ) -> Option<String> {
        let words = text::words(text);
        let numbers = numbers::find(text, &words);
        let other_phrases: Vec<Phrase> = others.iter().map(|p| Phrase::new(p).expect("phrase")).collect();
        let stops = |i: usize| other_phrases.iter().any(|p| p.starts_at(&words, i));
        let stem = |w: &str| w.trim_end_matches('s').to_owned();
        let reading = Reading {
            text,
            words: &words,
            numbers: &numbers,
            droplets: &[],
            stops: &stops,
            generic,
            stem: &stem,
            canonical: &|_: &str| None,
        };
        phrases.iter().map(|p| Phrase::new(p).expect("phrase")).find_map(|p| find(&p, kind, &reading)).map(|f| f.raw)
    }

    #[test]
    fn names_and_ids_from_natural_phrasing() {
        let name = ["called {value}", "named {value}", "register {value}"];
        assert_eq!(
            read(&name, SlotKind::String, "can you register Billing with id 77 for me", &["id {value}"]).as_deref(),
            Some("Billing")
        );
        assert_eq!(
            read(&name, SlotKind::String, "sign up a service called Payments Gateway, its id is 301", &["id {value}"])
                .as_deref(),
            Some("Payments Gateway")
        );
        assert_eq!(read(&name, SlotKind::String, "register a new service", &["id {value}"]), None);
        assert_eq!(
            read(&name, SlotKind::String, "register the Billing service please", &[]).as_deref(),
            Some("Billing")
        );
        assert_eq!(
            read(&["id {value}"], SlotKind::Integer, "its id is three hundred and one", &[]).as_deref(),
            Some("301")
        );
        assert_eq!(read(&["id {value}"], SlotKind::Integer, "the id should be 78", &[]).as_deref(), Some("78"));
        assert_eq!(
            read(&["service {value}"], SlotKind::Integer, "remove service number twelve", &[]).as_deref(),
            Some("12")
        );
    }

    #[test]
    fn a_generic_noun_is_no_value_on_its_own() {
        let name = ["add {value}"];
        let nouns = GenericWords::new(Default::default(), vec!["service".into()]);
        assert_eq!(read_with(&nouns, &name, SlotKind::String, "add a service", &[]), None);
        assert_eq!(
            read_with(&nouns, &name, SlotKind::String, "add Billing service", &[]).as_deref(),
            Some("Billing service")
        );
        let none = GenericWords::default();
        assert_eq!(read_with(&none, &name, SlotKind::String, "add a service", &[]).as_deref(), Some("service"));
    }

    #[test]
    fn quotes_and_trailing_words() {
        assert_eq!(
            read(&["called {value}"], SlotKind::String, "call it, no, called \"Auth 2\" ok", &[]).as_deref(),
            Some("Auth 2")
        );
        let title = ["called {value}", "task {value}"];
        assert_eq!(
            read(&title, SlotKind::String, "make a task called rotate keys with priority 2", &["priority {value}"])
                .as_deref(),
            Some("rotate keys")
        );
        assert_eq!(
            read(&title, SlotKind::String, "add a task to rotate the keys", &[]).as_deref(),
            Some("rotate the keys")
        );
        assert_eq!(read(&title, SlotKind::String, "create a task", &[]), None);
    }

    #[test]
    fn values_before_a_phrase() {
        assert_eq!(
            read(&["{value} priority"], SlotKind::Integer, "make it a 2 priority task", &[]).as_deref(),
            Some("2")
        );
    }

    #[test]
    fn a_number_glued_to_its_prefix() {
        let priority = ["{value} priority", "p{value}"];
        assert_eq!(read(&priority, SlotKind::Integer, "add a task Migrate database P3", &[]).as_deref(), Some("3"));
        assert_eq!(read(&priority, SlotKind::Integer, "add a task called Backup", &[]).as_deref(), None);
        assert_eq!(read(&["p{value}"], SlotKind::Integer, "open the pdf", &[]).as_deref(), None);
        assert_eq!(
            read(&["p{value}"], SlotKind::Integer, "task: fix it, description p99 went over 2s", &[]).as_deref(),
            None
        );
        assert_eq!(read(&["p{value}"], SlotKind::Integer, "P1: restart the cache", &[]).as_deref(), Some("1"));
        assert!(Phrase::new("p {value}").is_ok_and(|p| !p.is_glued()));
        assert!(Phrase::new("ticket no{value} please").expect_err("words after").contains("one prefix"));
    }

    #[test]
    fn bad_phrases_say_why() {
        assert!(Phrase::new("called").expect_err("no value").contains("exactly once"));
        assert!(Phrase::new("{value}").expect_err("bare").contains("match anything"));
    }
}
