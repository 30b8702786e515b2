//! Slots: the facts a pipeline needs, and how they are read from a message.
//!
//! Users give values in natural phrasing ("register Billing with id 77", "called Payments
//! Gateway", "seventy seven"): see [`phrases`]. `key:value` (or `key=value`, or spoken "name colon
//! Billing") works too; such a value runs until the next known key, so "name:John Doe id:456"
//! gives `John Doe` and `456`. Raw text is then coerced to the slot's type (numbers in digits or
//! words) and validated with the slot's JSON Schema. Droplet slots are also recognised from free
//! text ("status of the dashboard").

pub mod fill;
pub mod model;
pub mod phrases;

use std::collections::HashSet;

use regex::Regex;
use serde_json::{json, Value};

use crate::catalogue::{Catalogue, Recognition};
use crate::nlu::Lexicon;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    String,
    Integer,
    Number,
    Boolean,
    Droplet,
}

impl SlotKind {
    /// The type's name as written in a pipeline (`droplet`, `integer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::String => "string",
            SlotKind::Integer => "integer",
            SlotKind::Number => "number",
            SlotKind::Boolean => "boolean",
            SlotKind::Droplet => "droplet",
        }
    }

    fn json_type(self) -> &'static str {
        match self {
            SlotKind::String => "string",
            SlotKind::Integer | SlotKind::Droplet => "integer",
            SlotKind::Number => "number",
            SlotKind::Boolean => "boolean",
        }
    }
}

/// Words that on their own are no slot's value, in one pipeline: its own words, and the mesh's
/// generic nouns.
#[derive(Debug, Default)]
pub struct GenericWords {
    /// The pipeline's description, slot prompts, names and aliases, as words and as stems
    /// ("register a new *service*" names no service): trimmed from a text value's ends.
    own: HashSet<String>,
    /// The stewards' `generic_nouns` (`vocabulary.yaml`), which alone are no value in any
    /// pipeline ("add a new *service*"), though a value may hold one ("Billing Service").
    nouns: Vec<String>,
}

impl GenericWords {
    /// A pipeline's own words (as words and stems) and the configuration's generic nouns.
    pub fn new(own: HashSet<String>, nouns: Vec<String>) -> Self {
        GenericWords { own, nouns }
    }

    /// Whether `word` (as a word or a stem) is one of the pipeline's own words.
    pub fn contains(&self, word: &str) -> bool {
        self.own.contains(word)
    }

    /// Whether `word` is one of the mesh's generic nouns.
    pub fn is_noun(&self, word: &str) -> bool {
        self.nouns.iter().any(|noun| noun == word)
    }

    /// Whether `stem` is the stem of one of the mesh's generic nouns (a synonym's term is a stem:
    /// "svc" reads as "servic").
    pub fn is_noun_stem(&self, stem: &str, stemmer: &dyn Fn(&str) -> String) -> bool {
        self.nouns.iter().any(|noun| noun == stem || stemmer(noun) == stem)
    }
}

/// One declared slot, compiled.
#[derive(Debug)]
pub struct SlotDef {
    pub name: String,
    pub kind: SlotKind,
    pub prompt: String,
    pub example: Option<Value>,
    /// Keys users may type for it: its name and aliases, lowercased.
    pub keys: Vec<String>,
    /// Phrases that introduce its value: the steward's `from:`, then the slot's keys ("id 77").
    pub phrases: Vec<phrases::Phrase>,
    /// The question asking for it alone, per channel (minijinja text), when the steward wrote one.
    pub question: Option<(String, String)>,
    /// Masked wherever the turn is kept (`sensitive: true`).
    pub sensitive: bool,
    /// A follow-up that does not give it may take the value from what the conversation is
    /// about ("is it up?" after "status of the deck"): `from_context:`, on by default for
    /// droplet slots. A sensitive value never is.
    pub from_context: bool,
    validator: jsonschema::Validator,
}

impl SlotDef {
    /// Builds a slot; `extra` holds the steward's additional JSON Schema rules.
    pub fn new(
        name: &str,
        kind: SlotKind,
        prompt: &str,
        example: Option<Value>,
        aliases: &[String],
        extra: Option<&serde_json::Map<String, Value>>,
    ) -> Result<SlotDef, String> {
        let mut schema = extra.cloned().unwrap_or_default();
        schema.insert("type".to_owned(), json!(kind.json_type()));
        let validator = jsonschema::draft202012::new(&Value::Object(schema)).map_err(|e| e.to_string())?;
        let mut keys = vec![name.to_lowercase()];
        keys.extend(aliases.iter().map(|a| a.to_lowercase()));
        let phrases = keys.iter().filter_map(|k| phrases::Phrase::of_key(k)).collect();
        Ok(SlotDef {
            name: name.to_owned(),
            kind,
            prompt: prompt.to_owned(),
            example,
            keys,
            phrases,
            question: None,
            sensitive: false,
            from_context: kind == SlotKind::Droplet,
            validator,
        })
    }

    /// Marks the value as one that must not be kept (`sensitive: true`).
    pub fn with_sensitive(mut self, sensitive: bool) -> Self {
        self.sensitive = sensitive;
        self
    }

    /// Says whether a follow-up may take the value from the conversation's focus (`None`: the
    /// default for the slot's type).
    pub fn with_from_context(mut self, from_context: Option<bool>) -> Self {
        if let Some(from_context) = from_context {
            self.from_context = from_context;
        }
        self
    }

    /// Sets the steward's question (chat, voice).
    pub fn with_question(mut self, question: Option<(String, String)>) -> Self {
        self.question = question;
        self
    }

    /// The question when the steward wrote none: "Which droplet?", "What is its numeric id?".
    pub fn default_question(&self) -> String {
        let prompt = self.prompt.trim();
        let first = prompt.split_whitespace().next().unwrap_or_default().to_lowercase();
        if Lexicon::english().question_words.contains(&first) {
            let mut chars = prompt.chars();
            let capital: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
            format!("{capital}{}?", chars.as_str().trim_end_matches('?'))
        } else {
            format!("What is {}?", prompt.trim_end_matches('?'))
        }
    }

    /// Adds the steward's phrases, which are tried before the slot's own keys.
    pub fn with_phrases(mut self, declared: Vec<phrases::Phrase>) -> Self {
        let implicit = std::mem::take(&mut self.phrases);
        self.phrases = declared;
        for phrase in implicit {
            if !self.phrases.contains(&phrase) {
                self.phrases.push(phrase);
            }
        }
        self
    }

    /// Turns raw text into a valid value, or says in plain words why it is not one.
    pub fn coerce(&self, raw: &str, catalogue: &Catalogue) -> Result<Value, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("did not come through".to_owned());
        }
        let value = match self.kind {
            SlotKind::String => {
                // invisible characters are not part of a name; a value of only emoji or symbols
                // would leave a hole in every sentence that says it ("Done. is now registered")
                let visible: String = raw.chars().filter(|c| !crate::nlu::text::is_invisible(*c)).collect();
                let visible = visible.trim();
                if !visible.chars().any(char::is_alphanumeric) {
                    return Err("needs letters or digits in it".to_owned());
                }
                // a NUL or an escape code would reach the droplet that stores the value
                if visible.chars().any(|c| c.is_control() && !c.is_whitespace()) {
                    return Err("must not hold control characters".to_owned());
                }
                // "Вilling" (a Cyrillic В) beside "Billing": letters that look alike from two
                // alphabets in one word are refused, not stored as a look-alike
                if let Some(word) =
                    visible.split_whitespace().find(|w| !unicode_security::MixedScript::is_single_script(*w))
                {
                    return Err(format!("mixes letters of different alphabets in \"{word}\""));
                }
                Value::String(visible.to_owned())
            }
            SlotKind::Integer => match raw.replace('_', "").parse::<i64>() {
                Ok(whole) => Value::from(whole),
                // read whole or refused, never cut short: "1,000" is 1000, "5.5" and
                // "ninety nine quintillion" are no value for this slot
                Err(_) => match crate::nlu::numbers::parse(raw) {
                    Some(number) => match (number.integer(), number.whole) {
                        (Some(whole), _) => Value::from(whole),
                        (None, Some(_)) => return Err(format!("is too large a number (\"{raw}\")")),
                        (None, None) => return Err(format!("must be a whole number, not \"{raw}\"")),
                    },
                    None => return Err(format!("must be a whole number, not \"{raw}\"")),
                },
            },
            SlotKind::Number => raw
                .parse::<f64>()
                .ok()
                .or_else(|| crate::nlu::numbers::parse(raw).map(|n| n.value))
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("must be a number, not \"{raw}\""))?,
            SlotKind::Boolean => match crate::nlu::answers::whole(raw) {
                Some(crate::nlu::answers::YesNo::Yes) => Value::Bool(true),
                Some(crate::nlu::answers::YesNo::No) => Value::Bool(false),
                None => return Err(format!("must be yes or no, not \"{raw}\"")),
            },
            SlotKind::Droplet => {
                match catalogue.by_name(raw).map(|d| d.id).ok_or(()).or_else(|_| match catalogue.recognize(raw) {
                    Recognition::Found(id) => Ok(id),
                    _ => Err(()),
                }) {
                    Ok(id) => Value::from(id),
                    // the ask template lists the droplets there are
                    Err(()) => return Err(format!("\"{raw}\" is not one I know")),
                }
            }
        };
        self.validate(&value)?;
        Ok(value)
    }

    fn validate(&self, value: &Value) -> Result<(), String> {
        use jsonschema::error::ValidationErrorKind as Kind;
        let Some(error) = self.validator.iter_errors(value).next() else {
            return Ok(());
        };
        Err(match error.kind() {
            Kind::Minimum { limit } => format!("must be at least {limit}"),
            Kind::Maximum { limit } => format!("must be at most {limit}"),
            Kind::ExclusiveMinimum { limit } => format!("must be more than {limit}"),
            Kind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
            Kind::MinLength { limit } => format!("must be at least {limit} characters long"),
            Kind::MaxLength { limit } => format!("must be at most {limit} characters long"),
            Kind::Pattern { pattern } => format!("must match the pattern {pattern}"),
            Kind::Enum { options } => format!("must be one of {options}"),
            _ => error.to_string(),
        })
    }
}

/// Finds `key:value` pairs for a pipeline's slots.
#[derive(Debug)]
pub struct KeyValueParser {
    /// Matches any known key followed by `:` or `=`; capture 1 is the key.
    key_pattern: Option<Regex>,
    /// A clause break followed by a known key as a word: where a keyed value ends even when the
    /// next value is phrased ("service: Geo3, id 88").
    next_key: Option<Regex>,
}

impl KeyValueParser {
    /// `keys` are lowercased slot names and aliases.
    pub fn new<'a>(keys: impl Iterator<Item = &'a str>) -> Result<Self, regex::Error> {
        let alternatives: Vec<String> = keys.map(regex::escape).collect();
        if alternatives.is_empty() {
            return Ok(KeyValueParser { key_pattern: None, next_key: None });
        }
        // A key starts the text or follows a separator; the separator stays out of the previous
        // value. Trailing spaces are not consumed, so an empty value cannot swallow the next key.
        let pattern = crate::util::cached_regex(&format!(r"(?:^|[\s,;(])({})\s*[:=]", alternatives.join("|")), true)?;
        // the words that may come between the break and the key ("…, and its id 88")
        let lead_ins: Vec<String> = Lexicon::english().key_lead_ins.iter().map(regex::escape).collect();
        let next_key = crate::util::cached_regex(
            &format!(r"[,;.]\s*(?:(?:{})\s+)*(?:{})\b", lead_ins.join("|"), alternatives.join("|")),
            true,
        )?;
        Ok(KeyValueParser { key_pattern: Some(pattern), next_key: Some(next_key) })
    }

    /// `(key as typed, lowercased; raw value)` in message order.
    pub fn parse(&self, text: &str) -> Vec<(String, String)> {
        self.parse_spans(text).into_iter().map(|(key, value, _)| (key, value)).collect()
    }

    /// Like [`KeyValueParser::parse`], with the byte range each pair covers (key to value end).
    /// Speech-to-text writes the separator as a word ("name colon Billing"); that reads the same.
    pub fn parse_spans(&self, text: &str) -> Vec<(String, String, std::ops::Range<usize>)> {
        let Some(pattern) = &self.key_pattern else {
            return Vec::new();
        };
        let spoken;
        let text = if text.to_lowercase().contains("colon") || text.to_lowercase().contains("equals") {
            spoken = spoken_separators().replace_all(text, |c: &regex::Captures<'_>| {
                // same length, so byte ranges still point into the original text
                let separator = if c[1].eq_ignore_ascii_case("colon") { ":" } else { "=" };
                format!("{separator}{}", " ".repeat(c[0].len() - 1))
            });
            spoken.as_ref()
        } else {
            text
        };
        // (key, where its match starts, where its value starts)
        let found: Vec<(String, usize, usize)> = pattern
            .captures_iter(text)
            .filter_map(|c| {
                let key = c.get(1)?;
                let whole = c.get(0)?;
                Some((key.as_str().to_lowercase(), whole.start(), whole.end()))
            })
            .collect();
        found
            .iter()
            .enumerate()
            .map(|(i, (key, key_start, value_start))| {
                let value_end = found.get(i + 1).map(|(_, next_start, _)| *next_start).unwrap_or(text.len());
                let value_end = self
                    .next_key
                    .as_ref()
                    .and_then(|next| next.find(&text[*value_start..value_end]))
                    .map(|m| value_start + m.start())
                    .unwrap_or(value_end);
                (key.clone(), clean_value(&text[*value_start..value_end]), *key_start..value_end)
            })
            .collect()
    }
}

/// " colon " and " equals " as speech-to-text writes a typed separator (the leading space is
/// replaced as well, so "name colon Billing" reads as "name: Billing").
fn spoken_separators() -> &'static Regex {
    static PATTERN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"(?i)\s(colon|equals)\b").expect("static regex"))
}

/// Trims separators and quotes around a raw value: `"John Doe",` → `John Doe`.
fn clean_value(raw: &str) -> String {
    let mut trimmed = raw.trim().trim_end_matches([',', ';', '.']).trim();
    // a closing parenthesis belongs to the value only when the value opened it
    while trimmed.ends_with(')') && trimmed.matches(')').count() > trimmed.matches('(').count() {
        trimmed = trimmed[..trimmed.len() - 1].trim_end();
    }
    // "name:Billing and id:7": the joining word belongs to neither value
    for joiner in Lexicon::english().value_joiners.iter().map(|word| format!(" {word}")) {
        let tail = trimmed.len().checked_sub(joiner.len()).and_then(|at| trimmed.get(at..));
        if trimmed.len() > joiner.len() && tail.is_some_and(|t| t.eq_ignore_ascii_case(&joiner)) {
            trimmed = trimmed[..trimmed.len() - joiner.len()].trim_end_matches([',', ';']).trim_end();
        }
    }
    let unquoted = ['"', '\'', '`']
        .iter()
        .find_map(|q| trimmed.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
        .unwrap_or(trimmed);
    unquoted.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> KeyValueParser {
        KeyValueParser::new(["name", "id", "service", "service_name", "title"].into_iter()).expect("valid keys")
    }

    #[test]
    fn empty_values_do_not_swallow_the_next_key() {
        assert_eq!(parser().parse("name: id:5"), vec![("name".into(), "".into()), ("id".into(), "5".into())]);
    }

    #[test]
    fn parentheses_are_kept_only_when_balanced() {
        assert_eq!(parser().parse("name:Foo (id:5)"), vec![("name".into(), "Foo".into()), ("id".into(), "5".into())]);
        assert_eq!(parser().parse("title:Fix login (urgent)"), vec![("title".into(), "Fix login (urgent)".into())]);
    }

    #[test]
    fn values_may_hold_any_unicode() {
        assert_eq!(
            parser().parse("name:Zoë — 東京 id:7"),
            vec![("name".into(), "Zoë — 東京".into()), ("id".into(), "7".into())]
        );
    }

    #[test]
    fn multi_word_values_run_until_the_next_key() {
        assert_eq!(
            parser().parse("register name:John Doe id:456"),
            vec![("name".into(), "John Doe".into()), ("id".into(), "456".into())]
        );
    }

    #[test]
    fn separators_quotes_and_case_are_tolerated() {
        assert_eq!(
            parser().parse("Name = \"My Service\", ID: 7."),
            vec![("name".into(), "My Service".into()), ("id".into(), "7".into())]
        );
        assert_eq!(parser().parse("service_name:X"), vec![("service_name".into(), "X".into())]);
    }

    #[test]
    fn unknown_keys_stay_inside_values() {
        assert_eq!(parser().parse("name:note: hi"), vec![("name".into(), "note: hi".into())]);
        assert_eq!(parser().parse("nickname:x"), vec![], "`name` must start a word");
    }

    #[test]
    fn coercion_explains_failures() {
        let catalogue = Catalogue::new(vec![]);
        let min = serde_json::json!({"minimum": 1}).as_object().cloned();
        let id = SlotDef::new("id", SlotKind::Integer, "its id", None, &[], min.as_ref()).expect("valid schema");
        assert_eq!(id.coerce(" 42 ", &catalogue), Ok(Value::from(42)));
        assert_eq!(id.coerce("abc", &catalogue), Err("must be a whole number, not \"abc\"".to_owned()));
        assert_eq!(id.coerce("0", &catalogue), Err("must be at least 1".to_owned()));
    }

    #[test]
    fn a_text_value_needs_something_to_say() {
        let catalogue = Catalogue::new(vec![]);
        let name = SlotDef::new("name", SlotKind::String, "the name", None, &[], None).expect("valid");
        assert_eq!(name.coerce("🎉🎉", &catalogue), Err("needs letters or digits in it".to_owned()));
        assert_eq!(name.coerce("\u{200B}\u{202E}", &catalogue), Err("needs letters or digits in it".to_owned()));
        assert_eq!(name.coerce("Bi\u{200B}lling", &catalogue), Ok(Value::from("Billing")));
        assert_eq!(name.coerce("Zoë 🎉", &catalogue), Ok(Value::from("Zoë 🎉")));
    }

    #[test]
    fn a_text_value_holds_no_control_characters_and_no_look_alike_letters() {
        let catalogue = Catalogue::new(vec![]);
        let name = SlotDef::new("name", SlotKind::String, "the name", None, &[], None).expect("valid");
        assert_eq!(name.coerce("Bill\u{0}ing", &catalogue), Err("must not hold control characters".to_owned()));
        assert_eq!(name.coerce("Billing\u{1b}[31m", &catalogue), Err("must not hold control characters".to_owned()));
        assert_eq!(
            name.coerce("Fix the keys\nthen the certs", &catalogue),
            Ok(Value::from("Fix the keys\nthen the certs"))
        );
        // a Cyrillic В in a Latin word
        assert_eq!(
            name.coerce("\u{412}illing", &catalogue),
            Err("mixes letters of different alphabets in \"\u{412}illing\"".to_owned())
        );
        // one alphabet per word is a name like any other
        assert_eq!(name.coerce("Billing Сервис", &catalogue), Ok(Value::from("Billing Сервис")));
        assert_eq!(name.coerce("東京 Gateway 2", &catalogue), Ok(Value::from("東京 Gateway 2")));
    }
}
