//! The words the engine itself relies on, one [`Lexicon`] per language: grammar and courtesy
//! (fillers, stopwords, yes and no, the words around a slot's value, contractions, ordinal
//! suffixes, …), never this mesh's nouns, which are the stewards' (`catalogue/vocabulary.yaml`:
//! `droplet_words`, `generic_nouns`).
//!
//! Each language is one data file beside this module (`en.yaml`), compiled into the binary and
//! read once, on first use; its common-word list (`en_common_words.txt`, which protects real
//! words from typo correction) comes with it. A caller takes a list by its job:
//!
//! ```ignore
//! let english = Lexicon::english();
//! if english.fillers.contains("um") { … }
//! ```
//!
//! Only English is shipped. Another language is one more file and one more line in
//! `LANGUAGES`; [`Lexicon::get`] finds it by its code.

use std::collections::HashSet;
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde::Deserialize;

/// The code of the language every reading uses today.
pub const ENGLISH: &str = "en";

/// One language as compiled in: its code (ISO 639-1), its lexicon and its common words.
struct Source {
    code: &'static str,
    lexicon: &'static str,
    common_words: &'static str,
}

/// Every language compiled in.
const LANGUAGES: &[Source] =
    &[Source { code: ENGLISH, lexicon: include_str!("en.yaml"), common_words: include_str!("en_common_words.txt") }];

/// A list of words (or of short phrases, where a list says so), in the order written: some
/// lists are tried in order. Looking a word up is a hash lookup (every word of every message is
/// looked up in several lists, some of them hundreds long).
#[derive(Debug, Default, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct Words {
    list: Vec<String>,
    set: HashSet<String>,
}

impl From<Vec<String>> for Words {
    fn from(list: Vec<String>) -> Self {
        let set = list.iter().cloned().collect();
        Words { list, set }
    }
}

impl Words {
    /// Whether `word` is on the list, exactly as written.
    pub fn contains(&self, word: &str) -> bool {
        self.set.contains(word)
    }

    /// The entries in the order written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(String::as_str)
    }
}

/// The words one language gives the engine, each list named for its job. The data file says,
/// per list, how it is used; here is why each exists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lexicon {
    /// The language's code (`en`), from `LANGUAGES`.
    #[serde(skip)]
    code: &'static str,
    /// Words that say nothing about what a person wants: intent matching drops them, and typo
    /// correction never corrects into them.
    pub fillers: Words,
    /// Words too common to count in plain word overlap (grounding a model's values, short
    /// answers). Apart from `fillers` on purpose: they differ on question words and requests.
    pub stopwords: Words,
    /// Words joining two requests in one message, where a compound request is split.
    pub conjunctions: Words,
    /// Words negating what follows them in a clause ("don't create the task").
    pub negations: Words,
    /// "no", which negates only where it cannot abbreviate "number" ("droplet no 5").
    pub negating_no: Words,
    /// Words starting a clause about what came before ("…and its health").
    pub back_references: Words,
    /// Contractions and their spelt-out words ("what's" → "what is").
    pub contractions: IndexMap<String, Vec<String>>,
    /// Contracted endings and their word ("n't" → "not"), when no whole form applies; in order.
    pub contraction_suffixes: IndexMap<String, String>,
    /// Possessive endings, which are not part of a name ("registry's").
    pub possessive_suffixes: Words,
    /// Endings that make digits an ordinal ("2nd").
    pub ordinal_suffixes: Words,
    /// Words for zero inside a number read digit by digit ("one oh five").
    pub spoken_zeros: Words,
    /// Articles the number reader would take for one ("a task").
    pub indefinite_articles: Words,
    /// Words before a number that is a whole answer ("number 12").
    pub number_markers: Words,
    /// Words that make the number after them negative ("minus five").
    pub minus_words: Words,
    /// Scale words the number reader does not know, with their power of ten ("trillion": 12).
    pub large_scales: IndexMap<String, u32>,
    /// Between groups of three digits ("1,000").
    pub thousands_separator: String,
    /// Between a number's whole part and its fraction ("5.5").
    pub decimal_point: String,
    /// Words between a droplet word and its id ("droplet number 14").
    pub id_markers: Words,
    /// Words joining a list of droplet ids ("droplets 1, 2 and 14").
    pub list_joiners: Words,
    /// Articles that are not part of a name ("the registry").
    pub definite_articles: Words,
    /// Whole answers meaning yes, as phrases; in order.
    pub yes: Words,
    /// Whole answers meaning no, as phrases; in order.
    pub no: Words,
    /// Courtesy words around a yes or a no.
    pub courtesy: Words,
    /// Answers that hold an action back ("hold on", "not yet"), as phrases.
    pub wait_words: Words,
    /// Answers that stop an action ("scrap that", "stop"), as phrases.
    pub stop_words: Words,
    /// Yes for a yes/no slot only ("on", "true"), never consent to a command.
    pub switch_yes: Words,
    /// No for a yes/no slot only ("off", "false").
    pub switch_no: Words,
    /// Words between a slot's phrase and its value ("id *is* 77").
    pub connectors: Words,
    /// Words that end no text value ("Billing *with* id 77").
    pub trailing: Words,
    /// Words that start no text value ("*the* title").
    pub leading: Words,
    /// Words standing for a value without being one ("register *it*").
    pub pronouns: Words,
    /// Words that make a slot's prompt a question already ("which droplet").
    pub question_words: Words,
    /// Words between a clause break and the next slot's key ("…, and its id 88").
    pub key_lead_ins: Words,
    /// Words joining two keyed values ("name:Billing and id:7").
    pub value_joiners: Words,
    /// Words that alone can answer a yes/no slot, for deciding what a model may have read.
    pub switch_words: Words,
    /// Openings that make a message a question or a request ("what", "show me"), as phrases.
    pub question_openers: Words,
    /// Lead-ins before a bare answer ("it's called"), as phrases; in order. Read by
    /// `slots::fill::bare_answer`.
    pub answer_lead_ins: Words,
    /// Courtesy after a bare answer (" please"), with the separator before it; in order. Read
    /// by `slots::fill::bare_answer`.
    pub answer_tails: Words,
    /// Words starting a correction of the previous answer ("oops", "i mean"). Read by
    /// the `extract` step.
    pub correction_markers: Words,
    /// Words before the values of a correction at a read-back ("no, actually …"). Read by
    /// `dialogue::answers`.
    pub consent_lead_ins: Words,
    /// Courtesy before a yes or a no at a read-back ("thank you. yes"). Read by
    /// `dialogue::answers`.
    pub consent_courtesy: Words,
    /// Words about the action after a yes or a no at a read-back ("yes, proceed with the
    /// removal"). Read by `dialogue::answers`.
    pub about_the_action: Words,
    /// Words that stand for a thing rather than a count after a pointing word ("that *one*"):
    /// never read as a number there. Read by `numbers::find`.
    pub pronoun_ones: Words,
    /// Words that point at a thing ("*that* one", "*the other* one", "*which* one"). Read by
    /// `numbers::find`.
    pub pointing_words: Words,
    /// Words that say a message goes on from what was said before ("*and* the deck?", "*what
    /// about* 14", "*same for* the registry", "the dashboard *too*"). Read by `dialogue::focus`.
    pub follow_up_markers: Words,
    /// The markers that also close a follow-up ("the deck *too*"); "right *now*" does not.
    /// Read by `dialogue::focus`.
    pub follow_up_closers: Words,
    /// "the *other* one", "the *other* orchestrator": pointing past the thing last talked about.
    /// Read by `dialogue::focus`.
    pub other_words: Words,
    /// Before an `other_words` word, what makes it point at one thing ("*the* other one").
    pub other_determiners: Words,
    /// "endpoints for *both*": the two things last talked about. Read by `dialogue::focus`.
    pub both_words: Words,
    /// Words a follow-up wraps around the value it names, besides its markers and the fillers
    /// ("*sorry, I meant* the deck", "*no, not that one,* the dashboard"): a message of only
    /// these and values asks the last request again. Read by `dialogue::focus`.
    pub follow_up_words: Words,
    /// Words before the verb of a request ("can you please …"). Read by `config::capabilities`.
    pub request_lead_ins: Words,
    /// After a number, a count of more of something ("3 *more*"). Read by `config::capabilities`
    /// and `slots::phrases`.
    pub count_words: Words,
    /// Verbs whose noun says what is asked ("make a registration"). Read by `config::capabilities`.
    pub light_verbs: Words,
    /// Verbs a person asks an assistant to act with ("restart", "book"). Read by `config::capabilities`.
    pub action_verbs: Words,
    /// Common words of the language, never taken for typos ("last" is not "list").
    #[serde(skip)]
    common_words: HashSet<&'static str>,
}

impl Lexicon {
    /// The English lexicon, read on first use.
    pub fn english() -> &'static Lexicon {
        // compiled in, and every lexicon is read by the tests: this cannot miss at run time
        Lexicon::get(ENGLISH).expect("the English lexicon is compiled in")
    }

    /// The lexicon of the language with this code (`en`), if one is compiled in.
    pub fn get(code: &str) -> Option<&'static Lexicon> {
        all().iter().find(|lexicon| lexicon.code == code)
    }

    /// The language's code (`en`).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Whether `word` is a common word of the language (what the user meant, never a typo).
    pub fn is_common_word(&self, word: &str) -> bool {
        self.common_words.contains(word)
    }

    /// Reads one compiled-in language.
    fn read(source: &Source) -> Result<Lexicon, String> {
        let mut lexicon: Lexicon = serde_saphyr::from_str(source.lexicon).map_err(|e| e.to_string())?;
        lexicon.code = source.code;
        lexicon.common_words = source.common_words.lines().collect();
        Ok(lexicon)
    }
}

/// Every compiled-in lexicon, read once. A data file that does not read is a build mistake the
/// tests catch (`every_language_reads`), not something a steward can cause.
fn all() -> &'static [Lexicon] {
    static ALL: OnceLock<Vec<Lexicon>> = OnceLock::new();
    ALL.get_or_init(|| {
        LANGUAGES
            .iter()
            .map(|source| {
                Lexicon::read(source).unwrap_or_else(|e| panic!("the lexicon `{}` does not read: {e}", source.code))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_reads() {
        for source in LANGUAGES {
            let lexicon = Lexicon::read(source).unwrap_or_else(|e| panic!("{}: {e}", source.code));
            assert_eq!(Lexicon::get(source.code).map(Lexicon::code), Some(source.code));
            assert!(!lexicon.fillers.list.is_empty() && !lexicon.common_words.is_empty(), "{}", source.code);
        }
        assert!(Lexicon::get("xx").is_none());
    }

    /// Entries the normaliser spells out before any list is read ("gonna" arrives as "going
    /// to"), so they never match; kept so that moving the lists here changed nothing.
    const NEVER_READ: &[(&str, &str)] =
        &[("negations", "dont"), ("connectors", "gonna"), ("yes", "ya"), ("no", "dont"), ("about_the_action", "dont")];

    #[test]
    fn words_are_written_as_text_reads_them() {
        // a list read against a message's words can only hold what `text::words` gives
        let english = Lexicon::english();
        let lists = [
            ("fillers", &english.fillers),
            ("conjunctions", &english.conjunctions),
            ("negations", &english.negations),
            ("negating_no", &english.negating_no),
            ("back_references", &english.back_references),
            ("spoken_zeros", &english.spoken_zeros),
            ("number_markers", &english.number_markers),
            ("minus_words", &english.minus_words),
            ("id_markers", &english.id_markers),
            ("list_joiners", &english.list_joiners),
            ("definite_articles", &english.definite_articles),
            ("yes", &english.yes),
            ("no", &english.no),
            ("courtesy", &english.courtesy),
            ("wait_words", &english.wait_words),
            ("question_openers", &english.question_openers),
            ("action_verbs", &english.action_verbs),
            ("light_verbs", &english.light_verbs),
            ("count_words", &english.count_words),
            ("request_lead_ins", &english.request_lead_ins),
            ("stop_words", &english.stop_words),
            ("switch_yes", &english.switch_yes),
            ("switch_no", &english.switch_no),
            ("connectors", &english.connectors),
            ("trailing", &english.trailing),
            ("leading", &english.leading),
            ("pronouns", &english.pronouns),
            ("consent_lead_ins", &english.consent_lead_ins),
            ("consent_courtesy", &english.consent_courtesy),
            ("about_the_action", &english.about_the_action),
        ];
        for (name, list) in lists {
            for entry in list.iter().filter(|entry| !NEVER_READ.contains(&(name, *entry))) {
                let read: Vec<String> = crate::nlu::text::words(entry).into_iter().map(|w| w.text).collect();
                assert_eq!(read.join(" "), entry, "{name}: {entry}");
            }
        }
    }

    #[test]
    fn ambiguous_scalars_stay_text() {
        let english = Lexicon::english();
        assert!(
            english.switch_yes.contains("on") && english.switch_yes.contains("1") && english.switch_yes.contains("y")
        );
        assert!(english.no.contains("no") && english.switch_no.contains("off") && english.switch_no.contains("0"));
        assert_eq!(english.contractions.get("'em").map(Vec::as_slice), Some(&["them".to_owned()][..]));
        assert!(english.is_common_word("last"));
    }
}
