//! Yes and no as people say them ("yes please", "sure", "go ahead", "nope", "not yet"), for
//! boolean slots and confirmations.

use super::text;

/// Whole answers that mean yes or no, as word sequences. Longer forms first.
const YES: &[&str] = &[
    "yes please",
    "yes do it",
    "go ahead",
    "do it",
    "go for it",
    "sounds good",
    "that is right",
    "that is correct",
    "yes",
    "yeah",
    "yep",
    "yup",
    "ya",
    "yea",
    "sure",
    "ok",
    "okay",
    "correct",
    "right",
    "affirmative",
    "true",
    "y",
    "confirm",
    "confirmed",
    "absolutely",
    "definitely",
    "please do",
    "on",
    "1",
    "proceed",
    "alright",
    "fine",
    "please proceed",
    "go",
    "go on",
    "carry on",
    "sure thing",
    "of course",
    "yes it is",
    "is correct",
    "that is fine",
    "looks good",
    "all good",
    "perfect",
    "great",
];
const NO: &[&str] = &[
    "no thanks",
    "not yet",
    "not now",
    "do not",
    "dont",
    "no way",
    "hold on",
    "wait",
    "no",
    "nope",
    "nah",
    "n",
    "false",
    "negative",
    "off",
    "0",
    "stop",
    "not really",
    "never",
];

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
    for (answer, forms) in [(YesNo::No, NO), (YesNo::Yes, YES)] {
        let mut forms: Vec<&&str> = forms.iter().collect();
        forms.sort_by_key(|f| std::cmp::Reverse(f.split(' ').count()));
        if let Some(form) = forms.into_iter().find(|f| starts(f)) {
            return Some((answer, form.split(' ').count()));
        }
    }
    None
}

/// Courtesy words around a yes or a no.
const COURTESY: &[&str] = &[
    "please", "thanks", "thank", "you", "sir", "mate", "then", "it", "is", "that", "oh", "well", "um", "uh", "ok",
    "okay", "hmm", "er", "erm", "actually", "so",
];

/// `Some` when the whole text is only a yes or a no: one or more forms of the same answer with
/// courtesy words around them ("yeah go ahead", "yes, that's correct, thanks", "ok, no").
pub fn whole(text: &str) -> Option<YesNo> {
    let words: Vec<String> = text::words(text).into_iter().map(|w| w.text).collect();
    let mut answer: Option<YesNo> = None;
    // "ok, no" / "well, yes": leading courtesy before the answer itself
    let mut index = words.iter().take_while(|w| COURTESY.contains(&w.as_str())).count();
    if index == words.len() {
        index = 0;
    }
    while index < words.len() {
        if answer.is_some() && COURTESY.contains(&words[index].as_str()) {
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
            _ if answer.is_none() && COURTESY.contains(&words[index].as_str()) => index += 1,
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
