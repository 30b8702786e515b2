//! Yes and no as people say them ("yes please", "sure", "go ahead", "nope", "not yet"), for
//! boolean slots and confirmations. The forms and the courtesy around them are the lexicon's
//! ([`Lexicon::yes`], [`Lexicon::no`], [`Lexicon::courtesy`]).

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
    let words: Vec<String> = text::words(text).into_iter().map(|w| w.text).collect();
    let starts = |form: &str| {
        let form: Vec<&str> = form.split(' ').collect();
        words.len() >= form.len() && form.iter().zip(&words).all(|(f, w)| f == w)
    };
    // "no" before "yes": "not yet" must not read as "not" + nothing
    let english = Lexicon::english();
    for (answer, forms) in [(YesNo::No, &english.no), (YesNo::Yes, &english.yes)] {
        // longer forms first; among forms of one length, the order written
        let mut forms: Vec<&str> = forms.iter().collect();
        forms.sort_by_key(|f| std::cmp::Reverse(f.split(' ').count()));
        if let Some(form) = forms.into_iter().find(|f| starts(f)) {
            return Some((answer, form.split(' ').count()));
        }
    }
    None
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
}
