//! Words of a message, normalised the same way for examples and for what users say.
//!
//! Lowercase; typographic apostrophes and full-width letters folded; invisible characters
//! dropped; contractions spelt out ("what's" → "what is", "can't" → "can not": the lexicon's
//! [`Lexicon::contractions`] and [`Lexicon::contraction_suffixes`]); a possessive
//! `'s` dropped ("the registry's status" → "registry status"). Every word remembers where it
//! came from in the original text (byte offsets), so slot values can be cut from what the user
//! actually typed, with its capitals.

use super::lexicon::Lexicon;

/// A word and the byte range of the original text it came from. Spelt-out contractions give
/// several words sharing one range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// The text before this word (since the previous one) holds a clause break: `,` `;` `.`
    /// `!` `?` `+` `&` or a line break.
    pub after_break: bool,
}

/// How many words of a message are read at most. Intent words come early; a message of
/// thousands of words is not read further (bounded time whatever the input).
pub const MAX_WORDS: usize = 400;

/// A character as a reader sees it: `None` for the invisible and formatting ones (zero-width
/// and bidirectional controls, soft hyphen, byte-order mark), and full-width ASCII forms
/// (Ｒｅｇｉｓｔｅｒ, ＊) as their ASCII character. Messages, slot values and spoken replies all
/// read characters this way.
pub fn visible(c: char) -> Option<char> {
    match c {
        c if is_invisible(c) => None,
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        _ => Some(c),
    }
}

/// Zero-width and bidirectional controls, soft hyphen, byte-order mark: characters that show
/// nothing but can hide or reorder what is shown.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{00AD}' | '\u{FEFF}')
}

/// Folds one character; `None` drops it (see [`visible`]).
fn fold(c: char) -> Option<char> {
    match visible(c)? {
        '\u{2018}' | '\u{2019}' | '\u{02BC}' | '`' | '\u{00B4}' => Some('\''),
        c => Some(c),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '\''
}

/// The word count of the longest of `phrases` that starts at `words[at]`. A phrase is written as
/// the lexicon writes one: words as [`words`] reads them, separated by single spaces ("go ahead").
pub fn longest_phrase_at<'p>(phrases: impl IntoIterator<Item = &'p str>, words: &[Word], at: usize) -> Option<usize> {
    phrases
        .into_iter()
        .filter_map(|phrase| {
            let length = phrase.split(' ').count();
            let run = words.get(at..at.checked_add(length)?)?;
            phrase.split(' ').zip(run).all(|(part, word)| part == word.text).then_some(length)
        })
        .max()
}

/// The words of `text`, normalised, at most [`MAX_WORDS`].
pub fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let mut broken = false;
    let mut pending_break = false;
    let flush = |current: &mut String, start: usize, end: usize, broken: bool, out: &mut Vec<Word>| {
        if current.is_empty() {
            return;
        }
        let raw = std::mem::take(current);
        // quotes around a word are not part of it: 'Audit starts after its quote (measured in
        // the original text, where a quote may be a longer character than the folded `'`)
        let original = &text[start..end];
        let is_quote = |c: char| fold(c).is_none_or(|f| f == '\'');
        let start = start + (original.len() - original.trim_start_matches(is_quote).len());
        let end = (end - (original.len() - original.trim_end_matches(is_quote).len())).max(start);
        push_word(raw.trim_matches('\''), start, end, broken, out);
    };
    for (index, c) in text.char_indices() {
        if out.len() >= MAX_WORDS {
            break;
        }
        let Some(folded) = fold(c) else { continue };
        if is_word_char(folded) {
            if current.is_empty() {
                start = index;
                broken = pending_break;
                pending_break = false;
            }
            current.extend(folded.to_lowercase());
        } else {
            flush(&mut current, start, index, broken, &mut out);
            if matches!(folded, ',' | ';' | '.' | '!' | '?' | '\n' | '+' | '&' | '\u{3002}' | '\u{FF0C}') {
                pending_break = true;
            }
        }
    }
    flush(&mut current, start, text.len(), broken, &mut out);
    out.truncate(MAX_WORDS);
    out
}

fn push_word(raw: &str, start: usize, end: usize, after_break: bool, out: &mut Vec<Word>) {
    if raw.is_empty() {
        return;
    }
    let word = |text: &str, first: bool| Word { text: text.to_owned(), start, end, after_break: after_break && first };
    let english = Lexicon::english();
    if let Some(spelt) = english.contractions.get(raw) {
        out.extend(spelt.iter().enumerate().map(|(i, w)| word(w, i == 0)));
        return;
    }
    for (suffix, spelt) in &english.contraction_suffixes {
        if let Some(stem) = raw.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            // "can't" → "ca" + "n't" is handled above; "don't" → "do not"
            out.push(word(stem, true));
            out.push(word(spelt, false));
            return;
        }
    }
    let raw = english.possessive_suffixes.iter().find_map(|suffix| raw.strip_suffix(suffix)).unwrap_or(raw);
    // inner apostrophes left after the forms above ("o'clock") join the word's parts
    let joined: String = raw.chars().filter(|c| *c != '\'').collect();
    if !joined.is_empty() {
        out.push(word(&joined, true));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_longest_phrase_starting_at_a_word_is_found() {
        let said = super::words("ok, go ahead then");
        assert_eq!(super::longest_phrase_at(["go", "go ahead", "ahead then"], &said, 1), Some(2));
        assert_eq!(super::longest_phrase_at(["go ahead then now"], &said, 1), None, "past the end");
        assert_eq!(super::longest_phrase_at(["ok"], &said, 3), None);
    }

    use super::*;

    fn texts(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn contractions_possessives_and_punctuation() {
        assert_eq!(
            texts("What's up with the Registry's status?"),
            ["what", "is", "up", "with", "the", "registry", "status"]
        );
        assert_eq!(texts("I can't see it, don't"), ["i", "can", "not", "see", "it", "do", "not"]);
        assert_eq!(texts("whats the deck doing"), ["what", "is", "the", "deck", "doing"]);
        assert_eq!(texts("they're here’s"), ["they", "are", "here", "is"]);
    }

    #[test]
    fn offsets_point_into_the_original() {
        let text = "register  Payments Gateway, id 7";
        let found = words(text);
        assert_eq!(&text[found[1].start..found[2].end], "Payments Gateway");
        assert!(found[3].after_break, "the comma breaks the clause");
        assert!(!found[2].after_break);
    }

    #[test]
    fn invisible_and_full_width_characters() {
        assert_eq!(texts("re\u{200B}gister Ｂｉｌｌｉｎｇ"), ["register", "billing"]);
        assert_eq!(texts("\u{202E}\u{200B}"), Vec::<String>::new());
    }

    #[test]
    fn long_messages_are_bounded() {
        let text = "word ".repeat(10_000);
        assert_eq!(words(&text).len(), MAX_WORDS);
    }
}
