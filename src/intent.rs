//! Rule-based intent resolution: deterministic, explainable, no language model.
//!
//! Each intent scores the message from three signals:
//! - a pattern (`match.any`, with every `match.all`) that matches scores [`PATTERN_SCORE`]: the
//!   steward said so explicitly, and it wins;
//! - the closest `examples` entry scores its similarity ([`crate::nlu::matcher`]: stems,
//!   synonyms, typo correction, entity placeholders, terms weighted by how much they tell
//!   intents apart), scaled by [`EXAMPLE_WEIGHT`] so a perfect example ties below a pattern;
//! - each `keywords` word present adds [`KEYWORD_BONUS`] (up to [`KEYWORD_CAP`]).
//!
//! A `match.none` pattern vetoes the intent. The best score at or above [`MIN_SCORE`] wins; ties
//! go to the higher `priority`, then to the intent id, so the same message always resolves the
//! same way. Below the threshold the fallback intent answers. A resolution is *confident* when
//! a pattern decided, or the best example is close ([`CONFIDENT_SCORE`]) and clearly ahead of
//! the runner-up ([`CONFIDENT_MARGIN`]); with a language model configured, anything less is
//! asked of the model. Every resolution carries the reason it won, the terms that decided, and
//! the runner-up, for traces and `explain`.
//!
//! A message that asks for several things ("show the registry and the dashboard metrics") is
//! split into clauses ([`Resolver::resolve_parts`]) when at least two of them resolve
//! confidently on their own.

use std::collections::BTreeSet;
use std::sync::Arc;

use regex::Regex;
use serde::Serialize;

use crate::nlu::matcher::{ExampleMatcher, Similarity};
use crate::nlu::{Analysis, Analyzer, Entities, Lexicon, Reading};

pub const PATTERN_SCORE: f64 = 1.0;
pub const EXAMPLE_WEIGHT: f64 = 0.9;
pub const KEYWORD_BONUS: f64 = 0.15;
pub const KEYWORD_CAP: f64 = 0.45;
pub const MIN_SCORE: f64 = 0.4;
/// An example-decided resolution at least this strong, and [`CONFIDENT_MARGIN`] ahead of the
/// runner-up, needs no second opinion.
pub const CONFIDENT_SCORE: f64 = 0.55;
pub const CONFIDENT_MARGIN: f64 = 0.08;
/// Two intents closer than this (neither decided by a pattern) are a tie: the fallback asks
/// which was meant instead of picking. Scores are kept to three decimals, so this is as near as
/// two scores get without being equal; a command needs a wider lead (`commands.lead`).
pub const TIE_MARGIN: f64 = 0.01;
/// An intent's similarity blends its closest example (this share) with all its examples taken
/// together ([`ExampleMatcher::profile_similarity`]).
pub const EXAMPLE_BLEND: f64 = 0.7;

/// The compiled rules of one intent.
#[derive(Debug, Default)]
pub struct IntentRules {
    pub intent: String,
    pub priority: i64,
    pub any: Vec<Regex>,
    pub all: Vec<Regex>,
    pub none: Vec<Regex>,
    pub keywords: Vec<String>,
    pub examples: Vec<String>,
    /// Checked even while a slot-filling action is pending (e.g. `cancel`).
    pub interrupts: bool,
    /// The intent has a droplet slot: droplet names in its examples are values (`#droplet`).
    pub droplet_slot: bool,
    /// The pipeline only replies (greetings, thanks): not worth running beside another request
    /// in the same message ("thanks, now show me all droplets").
    pub conversational: bool,
    /// Running it changes something (a command): chosen from examples only with a clear win.
    pub changes_state: bool,
    /// The first words of its slots' keys and phrases: a clause starting with one gives a value
    /// to this intent's request rather than asking for something else ("…with priority 5 and
    /// description move the table").
    pub slot_leads: Vec<String>,
}

/// Which signal gave an intent its score, kept as positions so scoring allocates little.
#[derive(Debug, Clone)]
enum Why {
    Pattern { regex: usize },
    Example(Similarity),
    Keywords,
}

/// Which patterns match a message (as typed, or with its typos put right): from one pass of
/// the resolver's `RegexSet`, or (if the set could not be built) each pattern tried on its own.
#[derive(Clone, Copy)]
enum Matched<'a> {
    /// Per pattern of the set, whether it matched; and where this intent's `any`, `all` and
    /// `none` patterns start in it.
    Set(&'a [bool], [usize; 3]),
    Each(Option<&'a str>),
}

const ANY: usize = 0;
const ALL: usize = 1;
const NONE: usize = 2;

/// One intent's score before its reason is written out.
struct Scored<'r> {
    rules: &'r IntentRules,
    /// The message with its typos put right, when any were.
    corrected: Option<String>,
    score: f64,
    evidence: Evidence,
    why: Why,
    keyword_hits: Vec<&'r str>,
}

impl Scored<'_> {
    /// The candidate with its reason in words.
    fn candidate(&self, text: &str) -> Candidate {
        let rules = self.rules;
        let reason = match &self.why {
            Why::Pattern { regex } => {
                let pattern = rules.any.get(*regex);
                let found = pattern
                    .and_then(|r| r.find(text).or_else(|| self.corrected.as_deref().and_then(|c| r.find(c))))
                    .map(|m| m.as_str())
                    .unwrap_or_default();
                format!("pattern `{}` matched \"{found}\"", pattern.map(Regex::as_str).unwrap_or_default())
            }
            Why::Example(similarity) => {
                let terms: Vec<String> =
                    similarity.shared.iter().map(|(t, share)| format!("{t} {:.0}%", share * 100.0)).collect();
                format!(
                    "similar to example \"{}\" ({:.0}%: {})",
                    rules.examples.get(similarity.example).map(String::as_str).unwrap_or_default(),
                    similarity.score * 100.0,
                    terms.join(", ")
                )
            }
            Why::Keywords => String::new(),
        };
        let reason = match (reason.is_empty(), self.keyword_hits.is_empty()) {
            (false, true) => reason,
            (false, false) => format!("{reason}; keywords {}", self.keyword_hits.join(", ")),
            (true, _) => format!("keywords {}", self.keyword_hits.join(", ")),
        };
        Candidate {
            intent: rules.intent.clone(),
            score: self.score,
            evidence: self.evidence,
            priority: rules.priority,
            reason,
            shared_terms: match &self.why {
                Why::Example(similarity) => similarity.shared.len(),
                _ => 0,
            },
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
    /// How many terms the message shares with the closest example (0 for a pattern).
    #[serde(skip)]
    pub shared_terms: usize,
}

/// The outcome of resolving a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolution {
    pub intent: String,
    pub score: f64,
    /// What decided; `None` when nothing reached the threshold and the fallback answers.
    pub evidence: Option<Evidence>,
    /// A pattern decided, or the closest example was close and clearly ahead.
    pub confident: bool,
    pub reason: String,
    pub runner_up: Option<Candidate>,
    /// The best-scoring intents, best first (at most [`DESCRIBED_CANDIDATES`]).
    pub candidates: Vec<Candidate>,
    /// When the fallback answers because the message is torn between intents (a near tie, or a
    /// command without a clear win): those intents, best first.
    pub tied: Vec<String>,
}

/// One request of a message that asks for several.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The words of the message this request is made of (a clause, with any clause after it
    /// that did not resolve on its own: "register Billing and its id is 77").
    pub text: String,
    pub resolution: Resolution,
    /// Clauses attached to this request that nothing in the configuration reads at all
    /// ("…and blorp the frobnicator"): said back to the user rather than silently dropped.
    pub unread: Vec<String>,
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
    analyzer: Arc<Analyzer>,
    matcher: ExampleMatcher,
    /// Per intent: its keywords as stems.
    keyword_stems: Vec<Vec<String>>,
    /// How far ahead of the runner-up a command must score when examples choose it.
    command_lead: f64,
}

impl Resolver {
    pub fn new(rules: Vec<IntentRules>, fallback: String, analyzer: Arc<Analyzer>) -> Self {
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
        let patterns = crate::util::cached_regex_set(&sources).ok();
        let analyzed: Vec<Vec<Analysis>> = rules
            .iter()
            .map(|rule| {
                let entities = if rule.droplet_slot { Entities::ExampleWithDropletSlot } else { Entities::Example };
                rule.examples.iter().map(|e| analyzer.analyze(e, entities)).collect()
            })
            .collect();
        let matcher = ExampleMatcher::build(&analyzed);
        let keyword_stems = rules
            .iter()
            .map(|rule| rule.keywords.iter().flat_map(|k| analyzer.analyze(k, Entities::Message).terms).collect())
            .collect();
        Resolver { rules, fallback, patterns, offsets, analyzer, matcher, keyword_stems, command_lead: 0.0 }
    }

    /// Sets how far ahead of the runner-up a command must score when examples choose it.
    pub fn with_command_lead(mut self, lead: f64) -> Self {
        self.command_lead = lead;
        self
    }

    pub fn fallback(&self) -> &str {
        &self.fallback
    }

    /// How this configuration reads text (shared with slot filling).
    pub fn analyzer(&self) -> &Arc<Analyzer> {
        &self.analyzer
    }

    /// The best intent for a message, or the fallback.
    pub fn resolve(&self, text: &str) -> Resolution {
        self.resolve_among(text, |_| true)
    }

    /// The best intent for a message already read (the turn's one reading), or the fallback.
    pub fn resolve_reading(&self, reading: &Reading) -> Resolution {
        let analysis = self.analyzer.analyze_reading(reading, Entities::Message);
        self.decide(&reading.text, &analysis, |_| true)
    }

    /// The best *interrupting* intent (checked while an action is pending). Only a pattern
    /// counts here: an answer such as `title:Stop` resembles the example "stop" but must not
    /// cancel what it answers.
    pub fn resolve_interrupt(&self, reading: &Reading) -> Option<Resolution> {
        let analysis = self.analyzer.analyze_reading(reading, Entities::Message);
        let resolution = self.decide(&reading.text, &analysis, |r| r.interrupts);
        (resolution.evidence == Some(Evidence::Pattern)).then_some(resolution)
    }

    /// The examples of intent `intent` that another intent claims: (example, the intent that
    /// wins it, why). For `check`.
    pub fn claimed_examples(&self) -> Vec<(String, String, Resolution)> {
        let mut out = Vec::new();
        for rule in &self.rules {
            for example in &rule.examples {
                let resolution = self.resolve(example);
                if resolution.intent != rule.intent {
                    out.push((rule.intent.clone(), example.clone(), resolution));
                }
            }
        }
        out
    }

    /// The requests of a message that asks for several things, each with its own resolution;
    /// empty when the message is one request (the usual case). Clauses are split at `,` `;`
    /// `.` and joining words ([`Lexicon::conjunctions`]: "and", "then", "also"); a clause that
    /// does not resolve confidently on its own belongs to the one before it (it may hold that
    /// one's values). A request that only replies (thanks, hello) is dropped next to a real one.
    pub fn resolve_parts(&self, text: &str) -> Vec<Part> {
        let words = crate::nlu::text::words(text);
        let conjunctions = &Lexicon::english().conjunctions;
        let mut clauses: Vec<(usize, usize)> = Vec::new();
        let mut start: Option<usize> = None;
        for (index, word) in words.iter().enumerate() {
            let joins = conjunctions.contains(&word.text);
            if word.after_break || joins {
                if let Some(s) = start.take() {
                    clauses.push((s, index));
                }
            }
            if !joins && start.is_none() {
                start = Some(index);
            }
        }
        if let Some(s) = start {
            clauses.push((s, words.len()));
        }
        if clauses.len() < 2 {
            return Vec::new();
        }
        // "please stop, I don't want to register it": an interrupt for the whole message
        let whole = self.resolve(text);
        if whole.evidence == Some(Evidence::Pattern) && self.rules_of(&whole.intent).is_some_and(|r| r.interrupts) {
            return Vec::new();
        }
        let slice = |(first, end): (usize, usize)| &text[words[first].start..words[end - 1].end];
        // (word range, resolution) of the clauses that stand on their own
        let mut parts: Vec<((usize, usize), Resolution)> = Vec::new();
        let mut leading: Option<usize> = None;
        // clauses no intent reads at all
        let mut unread: Vec<String> = Vec::new();
        for clause in clauses {
            let gives_value = parts.last().is_some_and(|(_, previous): &((usize, usize), Resolution)| {
                self.rules_of(&previous.intent).is_some_and(|r| r.slot_leads.contains(&words[clause.0].text))
            });
            let analysis = self.analyzer.analyze(slice(clause), Entities::Message);
            let resolution = self.decide(slice(clause), &analysis, |_| true);
            let stands = !gives_value && stands_alone(&words[clause.0..clause.1], &analysis, &resolution);
            // words (not just fillers, or "hold on", "ok") of which no intent reads any
            let only_an_answer =
                crate::nlu::answers::Stance::read(&words[clause.0..clause.1], |_| false).other.is_empty();
            if !stands && !only_an_answer && !analysis.terms.is_empty() && resolution.candidates.is_empty() {
                unread.push(slice(clause).to_owned());
            }
            if stands {
                let first = leading.take().unwrap_or(clause.0);
                parts.push(((first, clause.1), resolution));
            } else if let Some(last) = parts.last_mut() {
                last.0 .1 = clause.1;
            } else if leading.is_none() {
                leading = Some(clause.0);
            }
        }
        // the same intent twice ("status of the registry and status of the deck") is one
        // request: its slots take every value
        let mut merged: Vec<((usize, usize), Resolution)> = Vec::new();
        for (range, resolution) in parts {
            match merged.iter_mut().find(|(_, r)| r.intent == resolution.intent) {
                Some(existing) => existing.0 .1 = range.1,
                None => merged.push((range, resolution)),
            }
        }
        let substantive =
            |r: &Resolution| self.rules.iter().any(|rule| rule.intent == r.intent && !rule.conversational);
        if merged.iter().filter(|(_, r)| substantive(r)).count() >= 1 {
            merged.retain(|(_, r)| substantive(r));
        }
        // one request is not a compound one, unless part of the message must be said back
        if merged.len() < 2 && (merged.is_empty() || unread.is_empty()) {
            return Vec::new();
        }
        let count = merged.len();
        merged
            .into_iter()
            .enumerate()
            .map(|(i, (range, resolution))| Part {
                text: slice(range).to_owned(),
                resolution,
                // every part not understood is said once, after the last request
                unread: if i + 1 == count { std::mem::take(&mut unread) } else { Vec::new() },
            })
            .collect()
    }

    fn score<'r>(
        &'r self,
        index: usize,
        text: &str,
        analysis: &Analysis,
        norm: f64,
        matched: Matched<'_>,
        examples_apply: bool,
    ) -> Option<Scored<'r>> {
        let rules = &self.rules[index];
        let hit = |kind: usize, i: usize, regex: &Regex| match matched {
            Matched::Set(set, offsets) => set.get(offsets[kind] + i).copied().unwrap_or(false),
            Matched::Each(corrected) => regex.is_match(text) || corrected.is_some_and(|c| regex.is_match(c)),
        };
        if rules.none.iter().enumerate().any(|(i, r)| hit(NONE, i, r)) {
            return None;
        }
        let mut best: Option<(f64, Evidence, Why)> = None;
        if rules.all.iter().enumerate().all(|(i, r)| hit(ALL, i, r)) {
            // a pattern matched right after a negation ("don't create the task", "I don't want
            // to register it") asks for the opposite
            let affirmed = |regex: &Regex| match regex.find(text) {
                Some(found) => !negated_before(&text[..found.start()]),
                None => true,
            };
            if let Some(regex) = rules.any.iter().enumerate().position(|(i, r)| hit(ANY, i, r) && affirmed(r)) {
                best = Some((PATTERN_SCORE, Evidence::Pattern, Why::Pattern { regex }));
            }
        }
        if best.is_none() && examples_apply {
            if let Some(mut similarity) = self.matcher.closest(index, analysis, norm) {
                let profile = self.matcher.profile_similarity(index, analysis, norm);
                similarity.score = EXAMPLE_BLEND * similarity.score + (1.0 - EXAMPLE_BLEND) * profile;
                best = Some((similarity.score * EXAMPLE_WEIGHT, Evidence::Example, Why::Example(similarity)));
            }
        }
        let keyword_hits: Vec<&str> = rules
            .keywords
            .iter()
            .zip(&self.keyword_stems[index])
            .filter(|(_, stem)| analysis.terms.contains(stem))
            .map(|(k, _)| k.as_str())
            .collect();
        let bonus = (keyword_hits.len() as f64 * KEYWORD_BONUS).min(KEYWORD_CAP);
        let (base, evidence, why) = best.unwrap_or((0.0, Evidence::Keywords, Why::Keywords));
        let score = base + bonus;
        (score > 0.0).then_some(Scored {
            rules,
            corrected: analysis.corrected_text.clone(),
            score: round(score),
            evidence,
            why,
            keyword_hits,
        })
    }

    /// Which of `among` a message says, when it clearly says one ("remove it" between removing a
    /// service and listing the Registry).
    pub fn pick(&self, reading: &Reading, among: &[String]) -> Option<String> {
        let analysis = self.analyzer.analyze_reading(reading, Entities::Message);
        let resolution = self.decide(&reading.text, &analysis, |r| among.contains(&r.intent));
        among.contains(&resolution.intent).then_some(resolution.intent)
    }

    fn resolve_among(&self, text: &str, eligible: impl Fn(&IntentRules) -> bool) -> Resolution {
        let analysis = self.analyzer.analyze(text, Entities::Message);
        self.decide(text, &analysis, eligible)
    }

    /// The resolution of a text already analysed.
    fn decide(&self, text: &str, analysis: &Analysis, eligible: impl Fn(&IntentRules) -> bool) -> Resolution {
        let norm = self.matcher.norm(analysis);
        let corrected = analysis.corrected_text.as_deref();
        let matches: Option<Vec<bool>> = self.patterns.as_ref().map(|set| {
            let typed = set.matches(text);
            let fixed = corrected.map(|c| set.matches(c));
            (0..set.len()).map(|i| typed.matched(i) || fixed.as_ref().is_some_and(|f| f.matched(i))).collect()
        });
        // a message mostly made of words no example uses ("who won the football last night")
        // resembles nothing, whatever one shared word says
        let known = analysis.terms.iter().filter(|t| self.matcher.knows(t)).count();
        let terms = analysis.terms.len();
        let examples_apply = 2 * known >= terms || (known >= 2 && 3 * known >= terms);
        let mut scored: Vec<Scored<'_>> = (0..self.rules.len())
            .filter(|i| eligible(&self.rules[*i]))
            .filter_map(|i| {
                let matched = match &matches {
                    Some(set) => Matched::Set(set, self.offsets[i]),
                    None => Matched::Each(corrected),
                };
                self.score(i, text, analysis, norm, matched, examples_apply)
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| b.rules.priority.cmp(&a.rules.priority))
                .then_with(|| a.rules.intent.cmp(&b.rules.intent))
        });
        let candidates: Vec<Candidate> = scored.iter().take(DESCRIBED_CANDIDATES).map(|s| s.candidate(text)).collect();
        let read_as = read_as(analysis);
        let candidates = self.every_droplet_first(analysis, candidates);
        match candidates.first() {
            Some(best) if best.score >= MIN_SCORE => {
                let runner_up = candidates.get(1).cloned();
                let margin = best.score - runner_up.as_ref().map(|r| r.score).unwrap_or(0.0);
                let only_values = analysis.terms.iter().all(|t| t.starts_with('#'));
                if let Some(torn) = self.torn(analysis, only_values, best, runner_up.as_ref(), margin) {
                    // values alone ("and 6?") are no choice between two intents: the usual fallback
                    let tied = if only_values {
                        Vec::new()
                    } else {
                        std::iter::once(best).chain(&runner_up).map(|c| c.intent.clone()).collect()
                    };
                    return Resolution {
                        intent: self.fallback.clone(),
                        score: 0.0,
                        evidence: None,
                        confident: false,
                        reason: format!("{torn}{read_as}"),
                        tied,
                        runner_up: Some(best.clone()),
                        candidates,
                    };
                }
                let confident =
                    best.evidence == Evidence::Pattern || (best.score >= CONFIDENT_SCORE && margin >= CONFIDENT_MARGIN);
                Resolution {
                    intent: best.intent.clone(),
                    score: best.score,
                    evidence: Some(best.evidence),
                    confident,
                    reason: format!("{}{read_as}", best.reason),
                    runner_up,
                    candidates,
                    tied: Vec::new(),
                }
            }
            _ => Resolution {
                intent: self.fallback.clone(),
                score: 0.0,
                evidence: None,
                confident: false,
                reason: match candidates.first() {
                    Some(best) => format!(
                        "no intent reached {MIN_SCORE}; closest was {} at {} ({}){read_as}",
                        best.intent, best.score, best.reason
                    ),
                    None => format!("no rule, example or keyword matched{read_as}"),
                },
                runner_up: candidates.first().cloned(),
                candidates,
                tied: Vec::new(),
            },
        }
    }

    /// The rules of `intent`, if it is one the resolver knows.
    fn rules_of(&self, intent: &str) -> Option<&IntentRules> {
        self.rules.iter().find(|r| r.intent == intent)
    }

    /// Why the examples' best intent is not chosen, when the message is torn: a command (an
    /// intent that changes something) needs a pattern, or a lead of `commands.lead` over the next
    /// intent, and is never chosen from a message of only values ("and 6?"); any two intents
    /// [`TIE_MARGIN`] apart are a tie. `None` when the best intent stands.
    fn torn(
        &self,
        analysis: &Analysis,
        only_values: bool,
        best: &Candidate,
        runner_up: Option<&Candidate>,
        margin: f64,
    ) -> Option<String> {
        if best.evidence == Evidence::Pattern {
            return None;
        }
        let command = self.rules_of(&best.intent).is_some_and(|r| r.changes_state);
        let next = runner_up.map(|r| format!("{} at {}", r.intent, r.score)).unwrap_or_else(|| "nothing".to_owned());
        if command && only_values {
            return Some(format!("{} is a command, and the message names only values", best.intent));
        }
        if command && margin < self.command_lead {
            return Some(format!(
                "{} at {} is a command, and not {} ahead of {next}",
                best.intent, best.score, self.command_lead
            ));
        }
        // a droplet named fits the intent that asks about one ("how is the deck": its status,
        // not the overview): no tie between an intent that reads it and one that does not
        let reads_droplet = |intent: &str| self.rules_of(intent).is_some_and(|r| r.droplet_slot);
        let decided_by_droplet =
            |r: &Candidate| !analysis.droplets.is_empty() && reads_droplet(&best.intent) && !reads_droplet(&r.intent);
        let tie = runner_up.is_some_and(|r| {
            r.evidence != Evidence::Pattern && r.score >= MIN_SCORE && margin < TIE_MARGIN && !decided_by_droplet(r)
        });
        tie.then(|| format!("a near tie between {} at {} and {next}", best.intent, best.score))
    }

    /// "status of the droplets", "how is the mesh": with no droplet named, a word that means
    /// every droplet puts the best intent without a droplet slot first.
    fn every_droplet_first(&self, analysis: &Analysis, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
        let has_droplet_slot = |intent: &str| self.rules_of(intent).is_some_and(|r| r.droplet_slot);
        let Some(best) = candidates.first().filter(|best| has_droplet_slot(&best.intent)).cloned() else {
            return candidates;
        };
        let named = !analysis.droplets.is_empty() || analysis.terms.iter().any(|t| t.starts_with('#'));
        let every = analysis.words.iter().find(|w| self.analyzer.means_every_droplet(&w.text));
        let (Some(every), false) = (every, named) else { return candidates };
        if let Some(at) = candidates.iter().position(|c| c.score >= MIN_SCORE && !has_droplet_slot(&c.intent)) {
            let promoted = candidates.remove(at);
            // it takes the place (and the strength) of the droplet question it stands for
            let reason = format!("{}; no droplet named, and \"{}\" means every droplet", promoted.reason, every.text);
            candidates.insert(0, Candidate { score: best.score, evidence: best.evidence, reason, ..promoted });
        }
        candidates
    }
}

/// "; read "regster" as "register", "big picture" as overview" — how the message was read,
/// when that was more than its plain words.
fn read_as(analysis: &Analysis) -> String {
    let mut read: Vec<String> =
        analysis.corrections.iter().map(|(typed, word)| format!("\"{typed}\" as \"{word}\"")).collect();
    read.extend(analysis.synonyms.iter().map(|(said, term)| format!("\"{said}\" as {term}")));
    if read.is_empty() {
        String::new()
    } else {
        format!("; read {}", read.join(", "))
    }
}

/// Whether a clause is a request of its own: confidently resolved, not negated ("don't create
/// the task"), more than droplet names ("…and the dashboard" names a value), and more than one
/// word like an example ("tasks are stuck" is a remark, not a request).
fn stands_alone(words: &[crate::nlu::text::Word], analysis: &Analysis, resolution: &Resolution) -> bool {
    let english = Lexicon::english();
    let negated = words.iter().take(4).any(|w| english.negations.contains(&w.text))
        || words.first().is_some_and(|w| english.negating_no.contains(&w.text));
    // "show every droplet and its health": a part about what came before is not a request of its own
    let refers_back = words.first().is_some_and(|w| english.back_references.contains(&w.text));
    let only_droplets = analysis.terms.iter().all(|t| t.starts_with('@') || t == crate::nlu::analyzer::DROPLET);
    let shared = resolution.candidates.first().map(|c| c.shared_terms).unwrap_or(0);
    let substantial = resolution.evidence == Some(Evidence::Pattern) || shared >= 2;
    !negated && !refers_back && !only_droplets && resolution.confident && substantial
}

/// Whether the last few words before a point negate what follows ("don't create", "do not
/// want to register", "never mind the").
fn negated_before(before: &str) -> bool {
    let words = crate::nlu::text::words(before);
    // only within the clause: "stop, don't create" looks back to the comma
    let clause = words.iter().rposition(|w| w.after_break).unwrap_or(0);
    let english = Lexicon::english();
    words[clause..]
        .iter()
        .rev()
        .take(3)
        .any(|w| english.negations.contains(&w.text) || english.negating_no.contains(&w.text))
}

/// Lowercased words of a text minus stopwords ([`Lexicon::stopwords`]): plain word overlap,
/// for grounding a model's slot values and telling a short answer.
pub fn content_words(text: &str) -> BTreeSet<String> {
    let stopwords = &Lexicon::english().stopwords;
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty() && !stopwords.contains(w))
        .collect()
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
            examples: examples.iter().map(|e| e.to_string()).collect(),
            ..IntentRules::default()
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
            Arc::new(Analyzer::new(
                &crate::catalogue::Catalogue::new(vec![]),
                crate::nlu::vocabulary::Vocabulary::default(),
                std::iter::empty(),
            )),
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
    fn a_negated_pattern_does_not_count() {
        let r = resolver();
        assert_eq!(r.resolve("please register it").intent, "register");
        assert_ne!(r.resolve("I don't want to register it").intent, "register");
        assert_eq!(r.resolve("no, register it").intent, "register", "the negation belongs to another clause");
        assert!(negated_before("stop, don't create the "));
        assert!(!negated_before("I don't know how I could "));
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
