//! Numbers as people type and say them: digits ("77", "1,200", "5.5", "-3"), English number
//! words ("seventy seven", "three hundred and one", "minus five", "nine trillion") and ordinals
//! ("third", "2nd").
//!
//! Number words are read by `text2num` (built for speech transcripts), and the scale words it does
//! not know ("trillion" and up) are put together from its readings; digits are read here. A number
//! is read whole or not at all: never a prefix of what was said ("1,000" is never 1, "-5" never
//! 5, "nine trillion" never 9), so a slot that cannot hold it refuses it with the reason. Both work
//! on [`Word`]s, so a number found keeps its place in the message.

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
    /// The value exactly, when it is a whole number (it may be too large for any slot).
    pub whole: Option<i128>,
    pub ordinal: bool,
}

impl Found {
    fn new(first: usize, end: usize, value: f64, ordinal: bool) -> Found {
        // f64 holds every whole number up to 2^53 exactly; text2num's readings stay below that
        let whole = (value.fract() == 0.0 && value.abs() < 9.0e15).then_some(value as i128);
        Found { first, end, value, whole, ordinal }
    }

    fn exact(first: usize, end: usize, whole: i128, ordinal: bool) -> Found {
        Found { first, end, value: whole as f64, whole: Some(whole), ordinal }
    }

    /// The value as a whole number, when it is one that fits in 64 bits.
    pub fn integer(&self) -> Option<i64> {
        self.whole.and_then(|w| i64::try_from(w).ok())
    }

    /// The number written plainly ("1000", "-5", "5.5", "99000000000000000000"), as a slot reads it.
    pub fn plain(&self) -> String {
        self.whole.map(|w| w.to_string()).unwrap_or_else(|| self.value.to_string())
    }

    fn negated(mut self, first: usize) -> Found {
        self.first = first;
        self.value = -self.value;
        self.whole = self.whole.map(|w| -w);
        self
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

/// How many digits a typed number may have before it is only "too large" (i128 holds 38).
const MAX_DIGITS: usize = 36;

/// Digits, with an optional ordinal suffix ("2nd"): the value exactly, and whether it is an ordinal.
fn digits(word: &str) -> Option<(Option<i128>, f64, bool)> {
    let (body, ordinal) = Lexicon::english()
        .ordinal_suffixes
        .iter()
        .find_map(|s| word.strip_suffix(s).filter(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit())))
        .map(|b| (b, true))
        .unwrap_or((word, false));
    if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let value = body.parse::<f64>().ok()?;
    let whole = if body.len() <= MAX_DIGITS { body.parse::<i128>().ok() } else { None };
    Some((whole, value, ordinal))
}

/// A number typed in digits starting at `index`, with its thousands groups and fraction as typed
/// ("1,000,000", "5.5"), and the index one past it.
fn typed(text: &str, words: &[Word], index: usize) -> Option<Found> {
    let (mut whole, mut value, ordinal) = digits(&words[index].text)?;
    let lexicon = Lexicon::english();
    let between = |i: usize| text.get(words[i - 1].end..words[i].start).unwrap_or_default();
    let plain_digits = |i: usize| words.get(i).filter(|w| w.text.bytes().all(|c| c.is_ascii_digit()));
    let mut end = index + 1;
    if !ordinal {
        // "1,000": groups of exactly three digits after the separator, with nothing else between
        while plain_digits(end).is_some_and(|w| w.text.len() == 3) && between(end) == lexicon.thousands_separator {
            let group = &words[end].text;
            whole = whole.and_then(|w| w.checked_mul(1000)?.checked_add(group.parse::<i128>().ok()?));
            value = value * 1000.0 + group.parse::<f64>().unwrap_or_default();
            end += 1;
        }
        // "5.5": a fraction; the number is no longer whole
        if let Some(fraction) = plain_digits(end).filter(|_| between(end) == lexicon.decimal_point) {
            let written =
                format!("{}.{}", whole.map(|w| w.to_string()).unwrap_or_else(|| value.to_string()), fraction.text);
            if let Ok(exact) = written.parse::<f64>() {
                value = exact;
                if fraction.text.bytes().any(|c| c != b'0') {
                    whole = None;
                }
                end += 1;
            }
        }
    }
    Some(Found { first: index, end, value, whole, ordinal })
}

/// Whether the number typed at `index` has a minus sign right before it ("-5", "−5"), not a
/// hyphen inside a word ("drop-5").
fn signed(text: &str, words: &[Word], index: usize) -> bool {
    let before = text.get(..words[index].start).unwrap_or_default();
    let mut chars = before.chars().rev();
    matches!(chars.next(), Some('-' | '\u{2212}')) && chars.next().is_none_or(|c| !c.is_alphanumeric())
}

/// "nine trillion", "two quintillion three trillion five": the numbers text2num read on either
/// side of a scale word it does not know, put together exactly.
fn with_large_scales(words: &[Word], found: Vec<Found>) -> Vec<Found> {
    let scales = &Lexicon::english().large_scales;
    let mut found = found;
    let mut powers: Vec<u32> = scales.values().copied().collect();
    powers.sort_unstable();
    for power in powers {
        let Some(scale) = 10i128.checked_pow(power) else { continue };
        let is_scale = |i: usize| words.get(i).is_some_and(|w| scales.get(w.text.as_str()) == Some(&power));
        let mut out: Vec<Found> = Vec::with_capacity(found.len());
        let mut index = 0;
        while index < found.len() {
            let current = found[index].clone();
            if is_scale(current.end) && !current.ordinal && !words[current.end].after_break {
                let times = current.whole.and_then(|w| w.checked_mul(scale));
                let mut number = Found {
                    first: current.first,
                    end: current.end + 1,
                    value: current.value * scale as f64,
                    whole: times,
                    ordinal: false,
                };
                index += 1;
                // what follows the scale word, when it is smaller ("nine trillion five hundred")
                if let Some(rest) = found.get(index).filter(|r| r.first == number.end && !words[r.first].after_break) {
                    if rest.whole.is_some_and(|w| (0..scale).contains(&w)) {
                        number.whole = number.whole.and_then(|w| w.checked_add(rest.whole?));
                        number.value += rest.value;
                        number.end = rest.end;
                        index += 1;
                    }
                }
                out.push(number);
                continue;
            }
            out.push(current);
            index += 1;
        }
        found = out;
    }
    found
}

/// Every number in `words` (the words of `text`), in order. Digits are numbers on their own, with
/// their separators and sign as typed; runs of number words are read together ("three hundred
/// and one" is one number, and "minus" before one makes it negative).
pub fn find(text: &str, words: &[Word]) -> Vec<Found> {
    let mut out = Vec::new();
    let mut run_start = 0;
    let flush_words = |from: usize, to: usize, out: &mut Vec<Found>| {
        if from >= to {
            return;
        }
        // a word text2num does not know ends its run: the large scale words are read apart
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
            out.push(Found::new(
                from + occurrence.start,
                from + occurrence.end,
                occurrence.value,
                occurrence.is_ordinal,
            ));
        }
    };
    let mut index = 0;
    while index < words.len() {
        match typed(text, words, index) {
            Some(mut number) => {
                flush_words(run_start, index, &mut out);
                if signed(text, words, index) {
                    number = number.negated(index);
                }
                index = number.end;
                out.push(number);
                run_start = index;
            }
            None => index += 1,
        }
    }
    flush_words(run_start, words.len(), &mut out);
    out.sort_by_key(|f| f.first);
    let out = with_large_scales(words, read_digit_by_digit(words, out));
    with_minus_words(words, out)
}

/// "minus five", "negative 3": the number after a minus word, negated and read with it.
fn with_minus_words(words: &[Word], found: Vec<Found>) -> Vec<Found> {
    let minus = &Lexicon::english().minus_words;
    found
        .into_iter()
        .map(|number| {
            let sign = number
                .first
                .checked_sub(1)
                .filter(|&i| minus.contains(&words[i].text) && !words[number.first].after_break);
            match sign {
                Some(at) if !number.ordinal => number.negated(at),
                _ => number,
            }
        })
        .collect()
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
            if let Ok(value) = digits.parse::<i128>() {
                out.push(Found::exact(index, end, value, false));
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
    let found = find(cleaned, &meaningful);
    match found.as_slice() {
        [only] if only.first == 0 && only.end == meaningful.len() => Some(only.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn one_after_a_pointing_word_is_a_pronoun() {
        let values =
            |text: &str| find(text, &crate::nlu::text::words(text)).iter().map(|f| f.value).collect::<Vec<f64>>();
        assert!(values("remove that one").is_empty());
        assert!(values("the other one please").is_empty());
        assert_eq!(values("priority one"), vec![1.0]);
        assert_eq!(values("one hundred and one"), vec![101.0]);
    }
    use super::*;
    use crate::nlu::text::words;

    fn values(text: &str) -> Vec<f64> {
        find(text, &words(text)).into_iter().map(|f| f.value).collect()
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
        let found = find("the third one", &words("the third one"));
        assert!(found.first().is_some_and(|f| f.ordinal && f.value == 3.0), "{found:?}");
        assert!(find("2nd", &words("2nd")).first().is_some_and(|f| f.ordinal && f.value == 2.0));
    }

    fn exact(text: &str) -> Vec<(Option<i128>, f64)> {
        find(text, &words(text)).into_iter().map(|f| (f.whole, f.value)).collect()
    }

    #[test]
    fn numbers_are_read_whole_never_cut_short() {
        assert_eq!(exact("deregister service 1,000"), [(Some(1000), 1000.0)]);
        assert_eq!(exact("id 1,250,000 please"), [(Some(1_250_000), 1_250_000.0)]);
        assert_eq!(exact("id 5.5"), [(None, 5.5)]);
        assert_eq!(exact("id 5.0"), [(Some(5), 5.0)]);
        assert_eq!(exact("deregister service -1"), [(Some(-1), -1.0)]);
        assert_eq!(exact("minus five"), [(Some(-5), -5.0)]);
        assert_eq!(exact("negative 3"), [(Some(-3), -3.0)]);
        assert_eq!(exact("nine trillion"), [(Some(9_000_000_000_000), 9.0e12)]);
        assert_eq!(exact("ninety nine quintillion"), [(Some(99 * 10i128.pow(18)), 9.9e19)]);
        assert_eq!(
            exact("two quintillion three trillion five hundred"),
            [(Some(2 * 10i128.pow(18) + 3 * 10i128.pow(12) + 500), 2.000003e18 + 500.0)]
        );
        assert_eq!(exact("99999999999999999999"), [(Some(99_999_999_999_999_999_999), 1e20)]);
        // a hyphen inside a word is no sign; a list is no thousands group
        assert_eq!(exact("drop-5"), [(Some(5), 5.0)]);
        assert_eq!(values("droplets 2, 12 and 14"), [2.0, 12.0, 14.0]);
        assert_eq!(values("services 1, 200"), [1.0, 200.0]);
        let big = find("99 quintillion", &words("99 quintillion"));
        assert_eq!(big.first().map(|f| (f.first, f.end, f.integer())), Some((0, 2, None)), "too large for a slot");
        let minus = find("id minus five", &words("id minus five"));
        assert_eq!(minus.first().map(|f| (f.first, f.end)), Some((1, 3)), "the minus word is part of it");
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
