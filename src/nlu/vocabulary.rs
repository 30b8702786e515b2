//! The stewards' synonyms (`vocabulary.yaml`): words and phrases that mean the same thing in
//! this assistant ("service" and "node" are droplets here; "big picture" is an overview).
//!
//! Each entry names one canonical term and what else people say for it. Matching is on stems,
//! longest phrase first, so "summaries" matches "summary" and "get rid of" wins over "get".
//!
//! Beside the synonyms, the mesh's own nouns that the engine relies on ([`MeshNouns`]): which
//! words introduce a droplet's id, which are never a value. They are this mesh's words, not
//! English grammar, so they are the stewards' to write, not the engine's
//! ([`super::lexicon`] holds the grammar).

/// One problem with the vocabulary as written, with where it is (`synonyms/<term>/<index>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
    pub help: String,
}

/// The mesh's nouns the engine reads by their job (`droplet_words`, `generic_nouns` in
/// `vocabulary.yaml`), as lowercase words. A configuration that lists none has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshNouns {
    /// Words that introduce a droplet's id ("droplet 14", "drop 14", "droplets 2 and 5").
    pub droplet_words: Vec<String>,
    /// Words that are never a slot's value on their own ("register a new service" names no
    /// service), in every pipeline.
    pub generic_nouns: Vec<String>,
    /// Words that, with no droplet named, mean every droplet ("status of the *mesh*").
    pub every_droplet_words: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// (phrase as stems, canonical term's stem, phrase as written), longest phrase first.
    phrases: Vec<(Vec<String>, String, String)>,
    /// The canonical terms as written, for typo correction and `explain`.
    terms: Vec<String>,
    nouns: MeshNouns,
    /// For how many of the user's messages a value they named stays in the conversation's focus.
    focus_turns: u32,
    /// How far ahead of the next intent a command must score when examples choose it.
    command_lead: f64,
}

impl Vocabulary {
    /// Builds the vocabulary from `(term, synonyms)` entries in file order, stemming with `stem`
    /// and splitting phrases into words with `words`. Returns every problem found.
    pub fn build(
        entries: &[(String, Vec<String>)],
        stem: impl Fn(&str) -> String,
        words: impl Fn(&str) -> Vec<String>,
    ) -> Result<Vocabulary, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut phrases: Vec<(Vec<String>, String, String)> = Vec::new();
        let terms: Vec<String> = entries.iter().map(|(t, _)| t.to_lowercase()).collect();
        let term_stems: Vec<Vec<String>> = terms.iter().map(|t| words(t).iter().map(|w| stem(w)).collect()).collect();
        for (index, (term, synonyms)) in entries.iter().enumerate() {
            let canonical = term_stems[index].join(" ");
            for (position, phrase) in synonyms.iter().enumerate() {
                let pointer = format!("/synonyms/{term}/{position}");
                let stems: Vec<String> = words(phrase).iter().map(|w| stem(w)).collect();
                if stems.is_empty() {
                    problems.push(Problem {
                        pointer,
                        message: format!("the synonym \"{phrase}\" of `{term}` has no words"),
                        help: "write a word or phrase people say, or remove the entry".to_owned(),
                    });
                    continue;
                }
                if let Some(other) = term_stems.iter().position(|t| *t == stems).filter(|o| *o != index) {
                    problems.push(Problem {
                        pointer,
                        message: format!(
                            "\"{phrase}\" is listed as a synonym of `{term}` but is itself the term `{}`: a synonym cycle",
                            terms[other]
                        ),
                        help: format!(
                            "merge the two entries under one term (e.g. put everything under `{}`)",
                            terms[other]
                        ),
                    });
                    continue;
                }
                if let Some((_, owner, _)) = phrases.iter().find(|(p, _, _)| *p == stems) {
                    let owner_term = term_stems
                        .iter()
                        .position(|t| t.join(" ") == *owner)
                        .map(|i| terms[i].clone())
                        .unwrap_or_default();
                    if owner_term != term.to_lowercase() {
                        problems.push(Problem {
                            pointer,
                            message: format!(
                                "\"{phrase}\" is a synonym of both `{owner_term}` and `{term}`; it can mean only one"
                            ),
                            help: format!("keep \"{phrase}\" under one of `{owner_term}` and `{term}`"),
                        });
                    }
                    continue;
                }
                if stems == term_stems[index] {
                    continue;
                }
                phrases.push((stems, canonical.clone(), phrase.clone()));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        phrases.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(Vocabulary { phrases, terms, nouns: MeshNouns::default(), focus_turns: 0, command_lead: 0.0 })
    }

    /// A vocabulary from literal pairs, stemmed like the analyzer does (for tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &[&str])]) -> Vocabulary {
        let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
        let entries: Vec<(String, Vec<String>)> =
            pairs.iter().map(|(t, s)| (t.to_string(), s.iter().map(|x| x.to_string()).collect())).collect();
        Vocabulary::build(
            &entries,
            |w| stemmer.stem(w).into_owned(),
            |t| super::text::words(t).into_iter().map(|w| w.text).collect(),
        )
        .expect("test vocabulary")
    }

    /// The vocabulary with the mesh's nouns.
    pub fn with_nouns(mut self, nouns: MeshNouns) -> Self {
        self.nouns = nouns;
        self
    }

    /// Sets for how many of the user's messages a named value stays in focus.
    pub fn with_focus_turns(mut self, turns: u32) -> Self {
        self.focus_turns = turns;
        self
    }

    /// Sets how far ahead of the next intent a command must score when examples choose it.
    pub fn with_command_lead(mut self, lead: f64) -> Self {
        self.command_lead = lead;
        self
    }

    /// How far ahead of the next intent a command must score when examples choose it.
    pub fn command_lead(&self) -> f64 {
        self.command_lead
    }

    /// Whether `word`, with no droplet named, means every droplet.
    pub fn means_every_droplet(&self, word: &str) -> bool {
        self.nouns.every_droplet_words.iter().any(|w| w == word)
    }

    /// For how many of the user's messages a value they named stays in the conversation's focus.
    pub fn focus_turns(&self) -> u32 {
        self.focus_turns
    }

    /// The mesh's nouns.
    pub fn nouns(&self) -> &MeshNouns {
        &self.nouns
    }

    /// Whether `word` introduces a droplet's id ("droplet" in "droplet 14").
    pub fn introduces_droplet(&self, word: &str) -> bool {
        self.nouns.droplet_words.iter().any(|w| w == word)
    }

    /// The longest synonym starting the given stems: its length in words and canonical term.
    pub fn longest_at(&self, stems: &[String]) -> Option<(usize, &str)> {
        self.phrases
            .iter()
            .find(|(phrase, _, _)| stems.len() >= phrase.len() && phrase.iter().zip(stems).all(|(p, s)| p == s))
            .map(|(phrase, canonical, _)| (phrase.len(), canonical.as_str()))
    }

    /// Every term and phrase as written (words users may type, for typo correction).
    pub fn phrases_text(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(String::as_str).chain(self.phrases.iter().map(|(_, _, written)| written.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(pairs: &[(&str, &[&str])]) -> Result<Vocabulary, Vec<Problem>> {
        let entries: Vec<(String, Vec<String>)> =
            pairs.iter().map(|(t, s)| (t.to_string(), s.iter().map(|x| x.to_string()).collect())).collect();
        Vocabulary::build(
            &entries,
            |w| w.trim_end_matches('s').to_owned(),
            |t| t.split_whitespace().map(str::to_owned).collect(),
        )
    }

    #[test]
    fn longest_phrase_wins() {
        let v = build(&[("remove", &["get rid of", "get"]), ("overview", &["big picture"])]).expect("valid");
        let stems: Vec<String> = ["get", "rid", "of", "it"].iter().map(|s| s.to_string()).collect();
        assert_eq!(v.longest_at(&stems), Some((3, "remove")));
        assert_eq!(v.longest_at(&stems[3..]), None);
    }

    #[test]
    fn cycles_and_double_meanings_are_located() {
        let problems = build(&[("droplet", &["service"]), ("service", &["droplet"])]).expect_err("a cycle");
        assert_eq!(problems[0].pointer, "/synonyms/droplet/0");
        assert!(problems[0].message.contains("cycle"), "{:?}", problems[0]);
        let problems = build(&[("a", &["x y"]), ("b", &["x y"])]).expect_err("twice");
        assert!(problems[0].message.contains("both `a` and `b`"), "{:?}", problems[0]);
        let problems = build(&[("a", &["  "])]).expect_err("empty");
        assert!(problems[0].message.contains("no words"));
    }
}
