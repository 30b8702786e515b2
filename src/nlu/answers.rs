//! Yes and no as people say them ("yes please", "sure", "go ahead", "nope", "not yet"): whole
//! answers for a yes/no slot ([`whole`], [`leading`]), and what an answer to a read-back says
//! word by word ([`Stance`]: yes, no, wait, stop, and what else). The forms and the courtesy around
//! them are the lexicon's ([`Lexicon::yes`], [`Lexicon::no`], [`Lexicon::wait_words`],
//! [`Lexicon::stop_words`], [`Lexicon::courtesy`]).

use super::lexicon::Lexicon;
use super::text;

/// What a short answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YesNo {
    Yes,
    No,
}

/// `Some` when the text starts with a yes or a no ("yes", "sure, go ahead", "no, the id is 78"),
/// with the number of words that said it; `None` otherwise.
pub fn leading(text: &str) -> Option<(YesNo, usize)> {
    let words = text::words(text);
    // "no" before "yes": "not yet" must not read as "not" + nothing
    let english = Lexicon::english();
    let no = english.no.iter().chain(english.switch_no.iter());
    let yes = english.yes.iter().chain(english.switch_yes.iter());
    text::longest_phrase_at(no, &words, 0)
        .map(|used| (YesNo::No, used))
        .or_else(|| text::longest_phrase_at(yes, &words, 0).map(|used| (YesNo::Yes, used)))
}

/// `Some` when the whole text is only a yes or a no: one or more forms of the same answer with
/// courtesy words around them ("yeah go ahead", "yes, that's correct, thanks", "ok, no").
pub fn whole(text: &str) -> Option<YesNo> {
    let courtesy = &Lexicon::english().courtesy;
    let words: Vec<String> = text::words(text).into_iter().map(|w| w.text).collect();
    let mut answer: Option<YesNo> = None;
    // "ok, no" / "well, yes": leading courtesy before the answer itself
    let mut index = words.iter().take_while(|w| courtesy.contains(w)).count();
    if index == words.len() {
        index = 0;
    }
    while index < words.len() {
        if answer.is_some() && courtesy.contains(&words[index]) {
            index += 1;
            continue;
        }
        let rest = words[index..].join(" ");
        match leading(&rest) {
            Some((found, used)) if answer.is_none_or(|a| a == found) => {
                answer = Some(found);
                index += used;
            }
            // courtesy before the real answer ("ok, no"; "well, yes")
            _ if answer.is_none() && courtesy.contains(&words[index]) => index += 1,
            _ => return None,
        }
    }
    answer
}

/// What an answer to "shall I go ahead?" says, word by word: which of yes, no, wait and stop it
/// holds (one message can hold several: "sure, no wait"), and which words say something else.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stance {
    pub yes: bool,
    pub no: bool,
    pub wait: bool,
    pub stop: bool,
    /// The words that are none of these and no courtesy ("the id is 78"), by index.
    pub other: Vec<usize>,
}

/// The four kinds of answer word at a read-back, in the order tried among forms of one length.
#[derive(Clone, Copy)]
enum Kind {
    Stop,
    Wait,
    No,
    Yes,
}

impl Stance {
    /// Reads the words of an answer. `courteous` says which other words only talk about the
    /// action or are politeness ("yes, please proceed with the removal").
    pub fn read(words: &[text::Word], courteous: impl Fn(&str) -> bool) -> Stance {
        let english = Lexicon::english();
        let lists = [
            (Kind::Stop, &english.stop_words),
            (Kind::Wait, &english.wait_words),
            (Kind::No, &english.no),
            (Kind::Yes, &english.yes),
        ];
        let mut stance = Stance::default();
        let mut index = 0;
        while index < words.len() {
            // the longest form here; among forms of one length, stop before wait before no before yes
            let found = lists
                .iter()
                .filter_map(|(kind, list)| Some((*kind, text::longest_phrase_at(list.iter(), words, index)?)))
                .fold(None, |best: Option<(Kind, usize)>, (kind, used)| match best {
                    Some((_, longest)) if longest >= used => best,
                    _ => Some((kind, used)),
                });
            match found {
                Some((kind, used)) => {
                    match kind {
                        Kind::Stop => stance.stop = true,
                        Kind::Wait => stance.wait = true,
                        Kind::No => stance.no = true,
                        Kind::Yes => stance.yes = true,
                    }
                    index += used;
                }
                None => {
                    let word = words[index].text.as_str();
                    if !(english.consent_courtesy.contains(word) || english.courtesy.contains(word) || courteous(word))
                    {
                        stance.other.push(index);
                    }
                    index += 1;
                }
            }
        }
        stance
    }

    /// It holds the action back: a no, a wait or a stop, anywhere in it.
    pub fn holds_back(&self) -> bool {
        self.no || self.wait || self.stop
    }

    /// A yes with nothing holding it back.
    pub fn consents(&self) -> bool {
        self.yes && !self.holds_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_forms() {
        for yes in ["yes", "Yes please", "sure", "go ahead", "do it", "yep!", "ok"] {
            assert_eq!(whole(yes), Some(YesNo::Yes), "{yes}");
        }
        for no in ["no", "nope", "not yet", "no thanks", "nah"] {
            assert_eq!(whole(no), Some(YesNo::No), "{no}");
        }
        assert_eq!(whole("no, the id is 78"), None);
        for yes in ["yeah go ahead", "Yes, is correct", "Yes, go", "ok, yes please", "sure, do it"] {
            assert_eq!(whole(yes), Some(YesNo::Yes), "{yes}");
        }
        assert_eq!(whole("ok, no"), Some(YesNo::No));
        assert_eq!(whole("hmm actually no"), Some(YesNo::No));
        assert_eq!(whole("yes no"), None, "two answers are no answer");
        assert_eq!(leading("no, the id is 78"), Some((YesNo::No, 1)));
        assert_eq!(whole("Billing"), None);
    }

    fn stance(text: &str) -> Stance {
        Stance::read(&text::words(text), |w| ["removal", "proceed", "with", "the"].contains(&w))
    }

    #[test]
    fn a_stance_holds_every_kind_of_answer_said() {
        for yes in ["yup, fire away", "all good, send", "perfect, do it", "absolutely", "uh yeah go ahead thanks"] {
            let read = stance(yes);
            assert!(read.consents() && read.other.is_empty(), "{yes}: {read:?}");
        }
        for mixed in ["yes no", "sure, no", "fine, no", "go ahead, no wait", "yes, do not", "ok hold on"] {
            let read = stance(mixed);
            assert!(read.yes && read.holds_back() && !read.consents(), "{mixed}: {read:?}");
        }
        for stray in ["1", "on", "true", "y", "right", "correct", "go", "alright"] {
            assert!(!stance(stray).consents(), "{stray}");
        }
        assert!(stance("nah scrap that").stop && stance("hold off").wait && stance("not yet").wait);
        let correction = stance("no, the id is 78");
        assert!(correction.no && !correction.other.is_empty(), "{correction:?}");
    }
}
