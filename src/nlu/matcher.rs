//! How much a message resembles each intent's examples, with every term weighted by how much
//! it tells intents apart.
//!
//! Built at load time from the analyzed examples. A term's weight is its inverse intent
//! frequency, `ln(1 + N / n)` for `N` intents of which `n` use the term in an example: "status"
//! in one intent weighs more than "show" in six. A message is compared with every example by
//! cosine similarity over those weights; an intent's similarity is its closest example's. A
//! message term no example uses (a service name, a stray word) counts with a small weight, so a
//! message mostly made of unknown words stays unlike everything. Deterministic, and every score
//! can be explained term by term.

use std::collections::HashMap;

use super::analyzer::Analysis;

/// The weight of a message term no example uses.
const UNKNOWN_WEIGHT: f64 = 1.0;

#[derive(Debug, Default)]
pub struct ExampleMatcher {
    weights: HashMap<String, f64>,
    /// Per intent (in the resolver's order), its examples' weighted terms.
    intents: Vec<Vec<ExampleTerms>>,
    /// Per intent, all its examples as one profile: each term weighted by how rare it is across
    /// intents and how common it is among this intent's examples.
    profiles: Vec<(HashMap<String, f64>, f64)>,
}

#[derive(Debug)]
struct ExampleTerms {
    terms: Vec<String>,
    norm: f64,
}

/// An intent's closest example, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Similarity {
    /// Index of the example within its intent.
    pub example: usize,
    /// Cosine similarity, 0 to 1.
    pub score: f64,
    /// The shared terms, each with its share of the score, largest first.
    pub shared: Vec<(String, f64)>,
}

impl ExampleMatcher {
    /// `intents[i]` are intent `i`'s analyzed examples.
    pub fn build(intents: &[Vec<Analysis>]) -> Self {
        let count = intents.len().max(1) as f64;
        let mut users: HashMap<&str, usize> = HashMap::new();
        for examples in intents {
            let mut seen: Vec<&str> = examples.iter().flat_map(|e| e.terms.iter().map(String::as_str)).collect();
            seen.sort_unstable();
            seen.dedup();
            for term in seen {
                *users.entry(term).or_default() += 1;
            }
        }
        let weights: HashMap<String, f64> =
            users.into_iter().map(|(term, n)| (term.to_owned(), (1.0 + count / n as f64).ln())).collect();
        let intents: Vec<Vec<ExampleTerms>> = intents
            .iter()
            .map(|examples| {
                examples
                    .iter()
                    .map(|e| {
                        let norm =
                            e.terms.iter().map(|t| weights.get(t).copied().unwrap_or(0.0).powi(2)).sum::<f64>().sqrt();
                        ExampleTerms { terms: e.terms.clone(), norm }
                    })
                    .collect()
            })
            .collect();
        let profiles = intents
            .iter()
            .map(|examples| {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for example in examples {
                    for term in &example.terms {
                        *counts.entry(term.clone()).or_default() += 1;
                    }
                }
                let total = examples.len().max(1) as f64;
                let profile: HashMap<String, f64> = counts
                    .into_iter()
                    .map(|(term, n)| {
                        let weight = weights.get(&term).copied().unwrap_or(0.0) * (n as f64 / total).sqrt();
                        (term, weight)
                    })
                    .collect();
                let norm = profile.values().map(|w| w * w).sum::<f64>().sqrt();
                (profile, norm)
            })
            .collect();
        ExampleMatcher { weights, intents, profiles }
    }

    /// How much the message resembles the intent's examples taken together (cosine with its
    /// profile): robust where no single example is close but several share its words.
    pub fn profile_similarity(&self, intent: usize, message: &Analysis, message_norm: f64) -> f64 {
        let Some((profile, norm)) = self.profiles.get(intent) else { return 0.0 };
        if *norm == 0.0 || message_norm == 0.0 {
            return 0.0;
        }
        let dot: f64 = message.terms.iter().filter_map(|t| profile.get(t).map(|p| p * self.weight(t))).sum();
        dot / (norm * message_norm)
    }

    /// A term's weight in a message.
    pub fn weight(&self, term: &str) -> f64 {
        self.weights.get(term).copied().unwrap_or(UNKNOWN_WEIGHT)
    }

    /// Whether any example uses the term.
    pub fn knows(&self, term: &str) -> bool {
        self.weights.contains_key(term)
    }

    /// The message's weighted length (computed once per message, shared by every intent).
    pub fn norm(&self, message: &Analysis) -> f64 {
        message.terms.iter().map(|t| self.weight(t).powi(2)).sum::<f64>().sqrt()
    }

    /// Intent `intent`'s closest example to the message, if any shares a term with it.
    pub fn closest(&self, intent: usize, message: &Analysis, message_norm: f64) -> Option<Similarity> {
        if message_norm == 0.0 {
            return None;
        }
        let mut best: Option<(usize, f64)> = None;
        for (index, example) in self.intents.get(intent)?.iter().enumerate() {
            if example.norm == 0.0 {
                continue;
            }
            let dot: f64 =
                example.terms.iter().filter(|t| message.terms.contains(t)).map(|t| self.weight(t).powi(2)).sum();
            let score = dot / (message_norm * example.norm);
            if score > 0.0 && best.is_none_or(|(_, s)| score > s) {
                best = Some((index, score));
            }
        }
        let (index, score) = best?;
        let example = &self.intents[intent][index];
        let dot: f64 = example.terms.iter().filter(|t| message.terms.contains(t)).map(|t| self.weight(t).powi(2)).sum();
        let mut shared: Vec<(String, f64)> = example
            .terms
            .iter()
            .filter(|t| message.terms.contains(t))
            .map(|t| (t.clone(), score * self.weight(t).powi(2) / dot))
            .collect();
        shared.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Some(Similarity { example: index, score, shared })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(terms: &[&str]) -> Analysis {
        Analysis { terms: terms.iter().map(|t| t.to_string()).collect(), ..Analysis::default() }
    }

    #[test]
    fn rare_terms_weigh_more() {
        let matcher = ExampleMatcher::build(&[
            vec![analysis(&["show", "status", "#droplet"])],
            vec![analysis(&["show", "metric"])],
            vec![analysis(&["show", "regist"])],
        ]);
        assert!(matcher.weight("status") > matcher.weight("show"));
        let message = analysis(&["status", "#droplet", "pleas"]);
        let norm = matcher.norm(&message);
        let status = matcher.closest(0, &message, norm).expect("shares terms");
        assert!(status.score > 0.6, "{status:?}");
        let shared: Vec<&str> = status.shared.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(shared, ["#droplet", "status"], "equal weights, then by name");
        assert!(matcher.closest(1, &message, norm).is_none());
    }

    #[test]
    fn unknown_words_alone_resemble_nothing_much() {
        let matcher = ExampleMatcher::build(&[vec![analysis(&["regist", "new"])], vec![analysis(&["metric"])]]);
        let clean = analysis(&["regist", "new"]);
        let noisy = analysis(&["purpl", "monkey", "dishwash", "new"]);
        let clean = matcher.closest(0, &clean, matcher.norm(&clean)).expect("the example itself");
        let noisy = matcher.closest(0, &noisy, matcher.norm(&noisy)).expect("shares new");
        assert!((clean.score - 1.0).abs() < 1e-9);
        assert!(noisy.score < 0.6, "{noisy:?}");
    }
}
