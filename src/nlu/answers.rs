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

/// `Some` when the whole text is only a yes or a no (fillers such as "please" allowed).
pub fn whole(text: &str) -> Option<YesNo> {
    let (answer, used) = leading(text)?;
    let rest = text::words(text).into_iter().skip(used).filter(|w| {
        !matches!(
            w.text.as_str(),
            "please" | "thanks" | "thank" | "you" | "sir" | "mate" | "then" | "it" | "is" | "that"
        )
    });
    (rest.count() == 0).then_some(answer)
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
        assert_eq!(leading("no, the id is 78"), Some((YesNo::No, 1)));
        assert_eq!(whole("Billing"), None);
    }
}
