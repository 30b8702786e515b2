//! Rule-based intent resolution: deterministic, explainable, no LLM.
//!
//! Each intent scores the message from three signals:
//! - a pattern (`match.any`, with every `match.all`) that matches scores [`PATTERN_SCORE`];
//! - the closest `examples` entry scores its word overlap (Dice coefficient on content words),
//!   scaled by [`EXAMPLE_WEIGHT`] so a perfect example ties below a pattern;
//! - each `keywords` word present adds [`KEYWORD_BONUS`] (up to [`KEYWORD_CAP`]).
//!
//! A `match.none` pattern vetoes the intent. The best score at or above [`MIN_SCORE`] wins; ties
//! go to the higher `priority`, then to the intent id, so the same message always resolves the
//! same way. Below the threshold the fallback intent answers. Every resolution carries the
//! reason it won and the runner-up, for traces and `explain`.

use std::collections::BTreeSet;

use regex::Regex;
use serde::Serialize;

pub const PATTERN_SCORE: f64 = 1.0;
pub const EXAMPLE_WEIGHT: f64 = 0.9;
pub const KEYWORD_BONUS: f64 = 0.15;
pub const KEYWORD_CAP: f64 = 0.45;
pub const MIN_SCORE: f64 = 0.5;

/// Words too common to say anything about intent.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "please", "me", "my", "i", "to", "of", "for", "is", "are", "can", "you", "could", "would",
    "what", "whats", "what's", "do", "does", "it", "in", "on", "and", "or", "with", "this", "that", "be", "want",
    "like", "pls", "hey", "just", "some", "us", "we", "our", "your",
];

/// The compiled rules of one intent.
#[derive(Debug, Default)]
pub struct IntentRules {
    pub intent: String,
    pub priority: i64,
    pub any: Vec<Regex>,
    pub all: Vec<Regex>,
    pub none: Vec<Regex>,
    pub keywords: Vec<String>,
    pub examples: Vec<(String, BTreeSet<String>)>,
    /// Checked even while a slot-filling action is pending (e.g. `cancel`).
    pub interrupts: bool,
}

impl IntentRules {
    pub fn example(text: &str) -> (String, BTreeSet<String>) {
        (text.to_owned(), content_words(text))
    }

    /// This intent's score for a message, or `None` when vetoed or silent. The reason is
    /// only written out (by [`Scored::candidate`]) for the few candidates anyone reads.
    fn score(&self, text: &str, words: &BTreeSet<String>, matched: Matched<'_>) -> Option<Scored<'_>> {
        let hit = |kind: usize, index: usize, regex: &Regex| match matched {
            Matched::Set(set, offsets) => set.matched(offsets[kind] + index),
            Matched::Each => regex.is_match(text),
        };
        if self.none.iter().enumerate().any(|(i, r)| hit(NONE, i, r)) {
            return None;
        }
        let mut best: Option<(f64, Evidence, Why)> = None;
        let mut consider = |score: f64, evidence: Evidence, why: Why| {
            if score > 0.0 && best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, evidence, why));
            }
        };
        if self.all.iter().enumerate().all(|(i, r)| hit(ALL, i, r)) {
            if let Some(regex) = self.any.iter().enumerate().position(|(i, r)| hit(ANY, i, r)) {
                consider(PATTERN_SCORE, Evidence::Pattern, Why::Pattern { regex });
            }
        }
        for (index, (_, example_words)) in self.examples.iter().enumerate() {
            let similarity = dice(words, example_words);
            consider(similarity * EXAMPLE_WEIGHT, Evidence::Example, Why::Example { index, similarity });
        }
        let hits = self.keywords.iter().filter(|k| words.contains(k.as_str())).count();
        let bonus = (hits as f64 * KEYWORD_BONUS).min(KEYWORD_CAP);
        let (base, evidence, why) = best.unwrap_or((0.0, Evidence::Keywords, Why::Keywords));
        let score = base + bonus;
        (score > 0.0).then_some(Scored { rules: self, score: round(score), evidence, why })
    }
}

/// Which signal gave an intent its score, kept as positions so scoring allocates nothing.
#[derive(Debug, Clone)]
enum Why {
    Pattern { regex: usize },
    Example { index: usize, similarity: f64 },
    Keywords,
}

/// Which patterns match a message: from one pass of the resolver's `RegexSet`, or (if the set
/// could not be built) each pattern tried on its own.
#[derive(Clone, Copy)]
enum Matched<'a> {
    /// The set's matches, and where this intent's `any`, `all` and `none` patterns start in it.
    Set(&'a regex::SetMatches, [usize; 3]),
    Each,
}

const ANY: usize = 0;
const ALL: usize = 1;
const NONE: usize = 2;

/// One intent's score before its reason is written out.
struct Scored<'r> {
    rules: &'r IntentRules,
    score: f64,
    evidence: Evidence,
    why: Why,
}

impl Scored<'_> {
    /// The candidate with its reason in words.
    fn candidate(&self, text: &str, words: &BTreeSet<String>) -> Candidate {
        let rules = self.rules;
        let reason = match self.why {
            Why::Pattern { regex } => {
                let pattern = rules.any.get(regex);
                let found = pattern.and_then(|r| r.find(text)).map(|m| m.as_str()).unwrap_or_default();
                format!("pattern `{}` matched \"{found}\"", pattern.map(Regex::as_str).unwrap_or_default())
            }
            Why::Example { index, similarity } => format!(
                "similar to example \"{}\" ({:.0}%)",
                rules.examples.get(index).map(|(e, _)| e.as_str()).unwrap_or_default(),
                similarity * 100.0
            ),
            Why::Keywords => String::new(),
        };
        let hits: Vec<&str> =
            rules.keywords.iter().filter(|k| words.contains(k.as_str())).map(String::as_str).collect();
        let reason = match (reason.is_empty(), hits.is_empty()) {
            (false, true) => reason,
            (false, false) => format!("{reason}; keywords {}", hits.join(", ")),
            (true, _) => format!("keywords {}", hits.join(", ")),
        };
        Candidate {
            intent: rules.intent.clone(),
            score: self.score,
            evidence: self.evidence,
            priority: rules.priority,
            reason,
        }
    }
}

/// How many of the best candidates a resolution describes (the winner, its runner-up, and a
/// few more for `explain`).
pub const DESCRIBED_CANDIDATES: usize = 5;

/// What gave an intent its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// A `match.any` pattern (with every `match.all`) matched: the steward said so explicitly.
    Pattern,
    /// The message resembles one of the intent's examples.
    Example,
    /// Only keywords were found.
    Keywords,
}

/// One intent's claim on a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub intent: String,
    pub score: f64,
    /// The strongest signal behind the score.
    pub evidence: Evidence,
    /// The intent's `priority`, which breaks ties.
    pub priority: i64,
    pub reason: String,
}

/// The outcome of resolving a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolution {
    pub intent: String,
    pub score: f64,
    /// What decided; `None` when nothing reached the threshold and the fallback answers.
    pub evidence: Option<Evidence>,
    pub reason: String,
    pub runner_up: Option<Candidate>,
    /// The best-scoring intents, best first (at most [`DESCRIBED_CANDIDATES`]).
    pub candidates: Vec<Candidate>,
}

/// All intents' rules, ready to resolve messages.
#[derive(Debug)]
pub struct Resolver {
    rules: Vec<IntentRules>,
    fallback: String,
    /// Every pattern of every intent in one set, so a message is scanned once, not once per
    /// pattern; `None` if the set would exceed the size limit (then each pattern runs alone).
    patterns: Option<regex::RegexSet>,
    /// Per intent: where its `any`, `all` and `none` patterns start in `patterns`.
    offsets: Vec<[usize; 3]>,
}

impl Resolver {
    pub fn new(rules: Vec<IntentRules>, fallback: String) -> Self {
        let mut sources = Vec::new();
        let mut offsets = Vec::new();
        for rule in &rules {
            let mut starts = [0; 3];
            for (kind, patterns) in [(ANY, &rule.any), (ALL, &rule.all), (NONE, &rule.none)] {
                starts[kind] = sources.len();
                sources.extend(patterns.iter().map(|r| r.as_str().to_owned()));
            }
            offsets.push(starts);
        }
        let patterns =
            regex::RegexSetBuilder::new(&sources).case_insensitive(true).size_limit(64 * 1024 * 1024).build().ok();
        Resolver { rules, fallback, patterns, offsets }
    }

    pub fn fallback(&self) -> &str {
        &self.fallback
    }

    /// The best intent for a message, or the fallback.
    pub fn resolve(&self, text: &str) -> Resolution {
        self.resolve_among(text, |_| true)
    }

    /// The best *interrupting* intent (checked while an action is pending). Only a pattern
    /// counts here: an answer such as `title:Stop` resembles the example "stop" but must not
    /// cancel what it answers.
    pub fn resolve_interrupt(&self, text: &str) -> Option<Resolution> {
        let resolution = self.resolve_among(text, |r| r.interrupts);
        (resolution.evidence == Some(Evidence::Pattern)).then_some(resolution)
    }

    fn resolve_among(&self, text: &str, eligible: impl Fn(&IntentRules) -> bool) -> Resolution {
        let words = content_words(text);
        let matches = self.patterns.as_ref().map(|set| set.matches(text));
        let mut scored: Vec<Scored<'_>> = self
            .rules
            .iter()
            .zip(&self.offsets)
            .filter(|(r, _)| eligible(r))
            .filter_map(|(r, offsets)| {
                let matched = match &matches {
                    Some(set) => Matched::Set(set, *offsets),
                    None => Matched::Each,
                };
                r.score(text, &words, matched)
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| b.rules.priority.cmp(&a.rules.priority))
                .then_with(|| a.rules.intent.cmp(&b.rules.intent))
        });
        let candidates: Vec<Candidate> =
            scored.iter().take(DESCRIBED_CANDIDATES).map(|s| s.candidate(text, &words)).collect();
        match candidates.first() {
            Some(best) if best.score >= MIN_SCORE => Resolution {
                intent: best.intent.clone(),
                score: best.score,
                evidence: Some(best.evidence),
                reason: best.reason.clone(),
                runner_up: candidates.get(1).cloned(),
                candidates,
            },
            _ => Resolution {
                intent: self.fallback.clone(),
                score: 0.0,
                evidence: None,
                reason: match candidates.first() {
                    Some(best) => format!(
                        "no intent reached {MIN_SCORE}; closest was {} at {} ({})",
                        best.intent, best.score, best.reason
                    ),
                    None => "no rule, example or keyword matched".to_owned(),
                },
                runner_up: candidates.first().cloned(),
                candidates,
            },
        }
    }
}

/// Lowercased words of a text minus stopwords.
pub fn content_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(&w.as_str()))
        .collect()
}

fn dice(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    2.0 * a.intersection(b).count() as f64 / (a.len() + b.len()) as f64
}

fn round(score: f64) -> f64 {
    (score * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::RegexBuilder;

    fn re(p: &str) -> Regex {
        RegexBuilder::new(p).case_insensitive(true).build().expect("test regex")
    }

    fn rules(intent: &str, any: &[&str], none: &[&str], examples: &[&str], keywords: &[&str]) -> IntentRules {
        IntentRules {
            intent: intent.into(),
            priority: 0,
            any: any.iter().map(|p| re(p)).collect(),
            all: vec![],
            none: none.iter().map(|p| re(p)).collect(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            examples: examples.iter().map(|e| IntentRules::example(e)).collect(),
            interrupts: false,
        }
    }

    fn resolver() -> Resolver {
        Resolver::new(
            vec![
                rules("register", &[r"\bregister\b"], &[r"\bderegister\b"], &["register a new service"], &[]),
                rules("deregister", &[r"\bderegister\b"], &[], &[], &[]),
                rules("all_droplets", &[], &[], &["show me all droplets"], &["droplets"]),
            ],
            "fallback".into(),
        )
    }

    #[test]
    fn patterns_win_and_vetoes_apply() {
        let r = resolver();
        assert_eq!(r.resolve("Register a new service").intent, "register");
        let de = r.resolve("deregister service 5");
        assert_eq!(de.intent, "deregister");
        assert!(de.candidates.iter().all(|c| c.intent != "register"), "vetoed by none");
    }

    #[test]
    fn examples_and_keywords_score_and_explain() {
        let r = resolver();
        let res = r.resolve("list all the droplets");
        assert_eq!(res.intent, "all_droplets");
        assert!(res.reason.contains("similar to example"), "{}", res.reason);
        assert!(res.reason.contains("keywords droplets"), "{}", res.reason);
    }

    #[test]
    fn nothing_matching_falls_back_with_a_reason() {
        let res = resolver().resolve("blorp");
        assert_eq!(res.intent, "fallback");
        assert_eq!(res.reason, "no rule, example or keyword matched");
    }

    #[test]
    fn resolution_is_deterministic() {
        let r = resolver();
        let first = r.resolve("show droplets register");
        for _ in 0..10 {
            assert_eq!(r.resolve("show droplets register"), first);
        }
    }
}
