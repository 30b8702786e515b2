//! Numbers as people type and say them: digits ("77", "1,200"), English number words
//! ("seventy seven", "three hundred and one", "twelve") and ordinals ("third", "2nd").
//!
//! Number words are read by `text2num` (built for speech transcripts); digits are read here.
//! Both work on [`Word`]s, so a number found keeps its place in the message.

use std::borrow::Cow;
use std::sync::OnceLock;

use text2num::{find_numbers, Language, Token};

use super::lexicon::Lexicon;
use super::text::Word;

/// A number found in a run of words.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Index of its first word and one past its last.
    pub first: usize,
    pub end: usize,
    pub value: f64,
    pub ordinal: bool,
}

impl Found {
    /// The value as a whole number, when it is one.
    pub fn integer(&self) -> Option<i64> {
        (self.value.fract() == 0.0 && self.value.abs() < 9.0e15).then_some(self.value as i64)
    }
}

fn english() -> &'static Language {
    static EN: OnceLock<Language> = OnceLock::new();
    EN.get_or_init(Language::english)
}

/// One word as text2num reads it. A clause break before a word separates two numbers
/// ("five, six" is not fifty-six).
struct Spoken<'a> {
    word: &'a Word,
}

impl Token for Spoken<'_> {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.word.text)
    }

    fn text_lowercase(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.word.text)
    }

    fn nt_separated(&self, _previous: &Self) -> bool {
        self.word.after_break
    }

    fn not_a_number_part(&self) -> bool {
        // a lone "a" or "one" in "a task", "which one" is not a number; text2num still reads
        // "a hundred" because the next word makes it one
        false
    }
}

/// Digits, with an optional ordinal suffix ("2nd") and thousands separators typed as one word.
fn digits(word: &str) -> Option<(f64, bool)> {
    let (body, ordinal) = Lexicon::english()
        .ordinal_suffixes
        .iter()
        .find_map(|s| word.strip_suffix(s).filter(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit())))
        .map(|b| (b, true))
        .unwrap_or((word, false));
    if body.is_empty() || body.len() > 15 || !body.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    body.parse::<f64>().ok().map(|v| (v, ordinal))
}

/// Every number in `words`, in order. Words that are only digits are numbers on their own;
/// runs of number words are read together ("three hundred and one" is one number).
pub fn find(words: &[Word]) -> Vec<Found> {
    let mut out = Vec::new();
    let mut run_start = 0;
    let flush_words = |from: usize, to: usize, out: &mut Vec<Found>| {
        if from >= to {
            return;
        }
        let spoken: Vec<Spoken<'_>> = words[from..to].iter().map(|word| Spoken { word }).collect();
        for occurrence in find_numbers(spoken.into_iter(), english(), 0.0) {
            let text = &words[from + occurrence.start..from + occurrence.end];
            // "a" alone, or "a" before a non-number, is an article
            if text.len() == 1 && Lexicon::english().indefinite_articles.contains(&text[0].text) {
                continue;
            }
            // "that one", "the other one": a pronoun, not the number 1
            let before = (from + occurrence.start).checked_sub(1).and_then(|i| words.get(i));
            if text.len() == 1
                && Lexicon::english().pronoun_ones.contains(&text[0].text)
                && before.is_some_and(|w| Lexicon::english().pointing_words.contains(&w.text))
            {
                continue;
            }
            out.push(Found {
                first: from + occurrence.start,
                end: from + occurrence.end,
                value: occurrence.value,
                ordinal: occurrence.is_ordinal,
            });
        }
    };
    for (index, word) in words.iter().enumerate() {
        if let Some((value, ordinal)) = digits(&word.text) {
            flush_words(run_start, index, &mut out);
            out.push(Found { first: index, end: index + 1, value, ordinal });
            run_start = index + 1;
        }
    }
    flush_words(run_start, words.len(), &mut out);
    out.sort_by_key(|f| f.first);
    read_digit_by_digit(words, out)
}

/// The spoken digit word of a single digit ("five" → 5; the lexicon's spoken zeros, "oh" and
/// "o", are zero, but only inside a run of digits: "one oh five").
fn single_digit(word: &Word, found: Option<&Found>) -> Option<u8> {
    if let Some(found) = found {
        let one_word = found.end == found.first + 1 && !found.ordinal;
        let is_word = !word.text.bytes().all(|b| b.is_ascii_digit());
        return found.integer().filter(|v| one_word && is_word && (0..=9).contains(v)).map(|v| v as u8);
    }
    Lexicon::english().spoken_zeros.contains(&word.text).then_some(0)
}

/// Ids and codes are often read out one digit at a time ("one oh five" is 105, "two three zero"
/// is 230): a run of three or more single digit words, with no clause break inside, is one number.
/// A lone "oh" is a word ("oh, and the dashboard"), never a number.
fn read_digit_by_digit(words: &[Word], found: Vec<Found>) -> Vec<Found> {
    let at = |index: usize| found.iter().find(|f| f.first == index);
    let mut out = Vec::with_capacity(found.len());
    let mut index = 0;
    while index < words.len() {
        let mut digits = String::new();
        let mut end = index;
        while end < words.len() && (end == index || !words[end].after_break) {
            match single_digit(&words[end], at(end)) {
                // a run starts with a real digit word, not with "oh"
                Some(_) if digits.is_empty() && at(end).is_none() => break,
                Some(digit) => digits.push(char::from(b'0' + digit)),
                None => break,
            }
            end += 1;
        }
        // a trailing "oh" is not part of the number ("one oh" is one, then a word)
        while end > index && at(end - 1).is_none() {
            end -= 1;
            digits.pop();
        }
        // two digit words are more often two numbers ("droplets two six and ten"); an id read
        // out digit by digit has three or more
        if digits.len() >= 3 {
            if let Ok(value) = digits.parse::<f64>() {
                out.push(Found { first: index, end, value, ordinal: false });
                index = end;
                continue;
            }
        }
        if let Some(number) = at(index) {
            out.push(number.clone());
            index = number.end.max(index + 1);
        } else {
            index += 1;
        }
    }
    out
}

/// Whether one word is an English number word ("four", "twelfth", "hundred").
pub fn is_number_word(word: &str) -> bool {
    text2num::text2digits(word, english()).is_ok()
}

/// The number a whole answer gives ("seventy seven", "77", "number 12", "#12"), or `None` when
/// the text holds anything else besides a number.
pub fn parse(text: &str) -> Option<Found> {
    let cleaned = text.trim().trim_start_matches('#');
    let words = super::text::words(cleaned);
    let markers = &Lexicon::english().number_markers;
    let meaningful: Vec<Word> = words.into_iter().filter(|w| !markers.contains(&w.text)).collect();
    let found = find(&meaningful);
    match found.as_slice() {
        [only] if only.first == 0 && only.end == meaningful.len() => Some(only.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn one_after_a_pointing_word_is_a_pronoun() {
        let values = |text: &str| find(&crate::nlu::text::words(text)).iter().map(|f| f.value).collect::<Vec<f64>>();
        assert!(values("remove that one").is_empty());
        assert!(values("the other one please").is_empty());
        assert_eq!(values("priority one"), vec![1.0]);
        assert_eq!(values("one hundred and one"), vec![101.0]);
    }
    use super::*;
    use crate::nlu::text::words;

    fn values(text: &str) -> Vec<f64> {
        find(&words(text)).into_iter().map(|f| f.value).collect()
    }

    #[test]
    fn digits_and_words() {
        assert_eq!(values("register Billing with id 77"), [77.0]);
        assert_eq!(values("its id is three hundred and one"), [301.0]);
        assert_eq!(values("seventy seven"), [77.0]);
        assert_eq!(values("remove service twelve"), [12.0]);
        assert_eq!(values("priority one"), [1.0]);
        assert_eq!(values("five, six"), [5.0, 6.0]);
        assert_eq!(values("add a task"), Vec::<f64>::new());
    }

    #[test]
    fn digit_by_digit() {
        assert_eq!(values("get rid of service one oh five"), [105.0]);
        assert_eq!(values("id two three zero"), [230.0]);
        assert_eq!(values("oh and service five"), [5.0]);
        assert_eq!(values("one oh"), [1.0]);
        assert_eq!(values("droplets two, twelve"), [2.0, 12.0]);
        assert_eq!(values("droplets two six and ten"), [2.0, 6.0, 10.0]);
        assert_eq!(values("twenty one"), [21.0]);
        assert_eq!(values("priority 3 id 4"), [3.0, 4.0]);
    }

    #[test]
    fn ordinals() {
        let found = find(&words("the third one"));
        assert!(found.first().is_some_and(|f| f.ordinal && f.value == 3.0), "{found:?}");
        assert!(find(&words("2nd")).first().is_some_and(|f| f.ordinal && f.value == 2.0));
    }

    #[test]
    fn whole_answers() {
        assert_eq!(parse("seventy seven").and_then(|f| f.integer()), Some(77));
        assert_eq!(parse("number 12").and_then(|f| f.integer()), Some(12));
        assert_eq!(parse("#12").and_then(|f| f.integer()), Some(12));
        assert_eq!(parse("77 and Billing"), None);
        assert_eq!(parse("Billing"), None);
    }
}
