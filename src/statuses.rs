//! The states a droplet can be in, and the words droplets use for them (`statuses:` in
//! `catalogue/droplets.yaml`).
//!
//! Droplets report their status in their own words ("healthy", "degraded", "up"…). Replies
//! should not each decide what those words mean: the steward lists, once, which words mean
//! which state, with the icon and the words a reply shows for it. The engine then gives every
//! query outcome its state (`o.state`, `o.icon`, `o.reported`) and every fan-out a count of its
//! outcomes by state ([`Tally`]), so templates print values instead of classifying them.
//!
//! Two states are the engine's own and always exist: `unknown` (a status word no state lists,
//! or an answer without one) and `no_answer` (the call brought no data back).

use serde::Serialize;
use serde_json::{json, Value};

/// The state of an answer whose status word no state lists, or that has none.
pub const UNKNOWN: &str = "unknown";
/// The state of a call that brought no data back.
pub const NO_ANSWER: &str = "no_answer";

/// One state as a reply shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub name: String,
    pub icon: String,
    /// How a chat reply names the state ("in error").
    pub label: String,
    /// How a voice reply names it ("in an unknown state").
    pub spoken: String,
    /// The status words that mean it, lowercased; none for the engine's two states.
    #[serde(skip)]
    pub words: Vec<String>,
}

impl State {
    /// How a reply names the status of an answer in this state, reported as `word`: the
    /// state's label and spoken form, except that a word no state lists is said as it is
    /// ("sleepy" tells more than "unknown").
    pub fn naming(&self, word: Option<&str>) -> (String, String) {
        match word {
            Some(word) if self.name == UNKNOWN => (word.to_owned(), word.to_owned()),
            _ => (self.label.clone(), self.spoken.clone()),
        }
    }

    /// A state with its name as label and spoken form.
    pub fn named(name: &str, icon: &str, words: &[&str]) -> State {
        State {
            name: name.to_owned(),
            icon: icon.to_owned(),
            label: name.replace('_', " "),
            spoken: name.replace('_', " "),
            words: words.iter().map(|w| w.to_lowercase()).collect(),
        }
    }
}

/// Every state, in the order replies list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuses {
    states: Vec<State>,
}

impl Default for Statuses {
    /// Only the engine's two states: every reported word reads as `unknown`.
    fn default() -> Self {
        Statuses::new(Vec::new())
    }
}

impl Statuses {
    /// The steward's states in their order; `unknown` and `no_answer` are added at the end when
    /// not declared. Checking that no word is listed twice is the compiler's job.
    pub fn new(mut states: Vec<State>) -> Statuses {
        for name in [UNKNOWN, NO_ANSWER] {
            if !states.iter().any(|s| s.name == name) {
                states.push(State::named(name, "⚪", &[]));
            }
        }
        Statuses { states }
    }

    pub fn states(&self) -> &[State] {
        &self.states
    }

    fn named(&self, name: &str) -> &State {
        // `new` guarantees both engine states
        self.states.iter().find(|s| s.name == name).unwrap_or(&self.states[0])
    }

    /// The state a reported status word means; `unknown` for any other word, or no word.
    pub fn of_word(&self, word: Option<&str>) -> &State {
        let Some(word) = word else { return self.named(UNKNOWN) };
        let word = word.trim().to_lowercase();
        self.states.iter().find(|s| s.words.contains(&word)).unwrap_or_else(|| self.named(UNKNOWN))
    }

    /// The state of a call's answer: `no_answer` without data, else what its `status` field says.
    pub fn of_answer<'a>(&self, data: Option<&'a Value>) -> (&State, Option<&'a str>) {
        match data {
            None => (self.named(NO_ANSWER), None),
            Some(answer) => {
                let word = answer.get("status").and_then(Value::as_str);
                (self.of_word(word), word)
            }
        }
    }

    /// The icon of a status word, for lists inside an answer (`{{ e.status | status_icon }}`).
    pub fn icon_of(&self, word: Option<&str>) -> &str {
        &self.of_word(word).icon
    }
}

/// A fan-out's outcomes counted by state: what `<as>_summary` holds.
#[derive(Debug)]
pub struct Tally<'s> {
    statuses: &'s Statuses,
    /// Per state (in the table's order): the names of the droplets in it.
    names: Vec<Vec<String>>,
    /// The outcomes that brought no data, as templates see them.
    unanswered: Vec<Value>,
    /// Why they did not, each sentence once.
    problems: Vec<String>,
}

impl<'s> Tally<'s> {
    pub fn new(statuses: &'s Statuses) -> Tally<'s> {
        Tally { statuses, names: vec![Vec::new(); statuses.states.len()], unanswered: Vec::new(), problems: Vec::new() }
    }

    /// Counts one outcome: its droplet's name, its state, and (without data) the outcome itself
    /// and the sentence saying why.
    pub fn add(&mut self, state: &State, droplet: &str, outcome: &Value, problem: Option<&str>) {
        if let Some(index) = self.statuses.states.iter().position(|s| s.name == state.name) {
            self.names[index].push(droplet.to_owned());
        }
        if state.name == NO_ANSWER {
            self.unanswered.push(outcome.clone());
            if let Some(problem) = problem {
                if !self.problems.iter().any(|p| p == problem) {
                    self.problems.push(problem.to_owned());
                }
            }
        }
    }

    /// The summary templates read:
    /// `{total, answered, counts: {state: n}, states: [{name, icon, label, spoken, answered,
    /// count, names}], unanswered: [outcome], problems: [sentence]}`, where `states` holds only
    /// the states some droplet is in, in the table's order. `ResultShape::summary` is what
    /// `check` reads it with; the tests of `config::template_reads` fail when the two differ.
    pub fn into_value(self) -> Value {
        let statuses = self.statuses;
        let total: usize = self.names.iter().map(Vec::len).sum();
        let counts: serde_json::Map<String, Value> =
            statuses.states.iter().zip(&self.names).map(|(s, names)| (s.name.clone(), json!(names.len()))).collect();
        let states: Vec<Value> = statuses
            .states
            .iter()
            .zip(self.names)
            .filter(|(_, names)| !names.is_empty())
            .map(|(s, names)| {
                json!({
                    "name": s.name,
                    "icon": s.icon,
                    "label": s.label,
                    "spoken": s.spoken,
                    "answered": s.name != NO_ANSWER,
                    "count": names.len(),
                    "names": names,
                })
            })
            .collect();
        json!({
            "total": total,
            "answered": total - self.unanswered.len(),
            "counts": counts,
            "states": states,
            "unanswered": self.unanswered,
            "problems": self.problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Statuses {
        Statuses::new(vec![
            State::named("active", "🟢", &["active", "healthy", "up"]),
            State { label: "in error".into(), ..State::named("error", "🔴", &["error", "down"]) },
        ])
    }

    #[test]
    fn words_read_as_their_state_in_any_case_and_others_as_unknown() {
        let statuses = table();
        assert_eq!(statuses.of_word(Some("Healthy")).name, "active");
        assert_eq!(statuses.of_word(Some(" DOWN ")).label, "in error");
        assert_eq!(statuses.of_word(Some("sleepy")).name, UNKNOWN);
        assert_eq!(statuses.of_word(None).name, UNKNOWN);
        assert_eq!(statuses.icon_of(Some("up")), "🟢");
        assert_eq!(statuses.icon_of(Some("sleepy")), "⚪");
    }

    #[test]
    fn an_answer_is_read_by_its_status_field_and_no_data_is_no_answer() {
        let statuses = table();
        let up = json!({"status": "up", "version": "2"});
        let (state, word) = statuses.of_answer(Some(&up));
        assert_eq!((state.name.as_str(), word), ("active", Some("up")));
        let list = json!([1, 2]);
        let (state, word) = statuses.of_answer(Some(&list));
        assert_eq!((state.name.as_str(), word), (UNKNOWN, None));
        assert_eq!(statuses.of_answer(None).0.name, NO_ANSWER);
    }

    #[test]
    fn a_reply_names_a_status_by_its_state_unless_no_state_lists_the_word() {
        let statuses = table();
        let down = statuses.of_word(Some("down"));
        assert_eq!(down.naming(Some("down")), ("in error".to_owned(), "error".to_owned()));
        let sleepy = statuses.of_word(Some("sleepy"));
        assert_eq!(sleepy.naming(Some("sleepy")), ("sleepy".to_owned(), "sleepy".to_owned()));
        let silent = statuses.of_answer(None).0;
        assert_eq!(silent.naming(None), ("no answer".to_owned(), "no answer".to_owned()));
    }

    #[test]
    fn declared_engine_states_keep_their_place_and_wording() {
        let statuses = Statuses::new(vec![
            State { spoken: "in an unknown state".into(), ..State::named(UNKNOWN, "❔", &[]) },
            State::named("active", "🟢", &["up"]),
        ]);
        let names: Vec<&str> = statuses.states().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [UNKNOWN, "active", NO_ANSWER]);
        assert_eq!(statuses.of_word(Some("x")).spoken, "in an unknown state");
        assert_eq!(statuses.of_word(Some("x")).icon, "❔");
    }

    #[test]
    fn a_tally_counts_by_state_lists_the_silent_and_says_each_problem_once() {
        let statuses = table();
        let mut tally = Tally::new(&statuses);
        let active = statuses.of_word(Some("up")).clone();
        let silent = statuses.of_answer(None).0.clone();
        let unknown = statuses.of_word(Some("hmm")).clone();
        tally.add(&active, "Registry", &json!({"n": 1}), None);
        tally.add(&silent, "Deck", &json!({"n": 2}), Some("The mesh is unreachable."));
        tally.add(&active, "Dashboard", &json!({"n": 3}), None);
        tally.add(&silent, "Voice", &json!({"n": 4}), Some("The mesh is unreachable."));
        tally.add(&unknown, "Brain", &json!({"n": 5}), None);
        let summary = tally.into_value();
        assert_eq!(summary["total"], 5);
        assert_eq!(summary["answered"], 3);
        assert_eq!(summary["counts"], json!({"active": 2, "error": 0, "unknown": 1, "no_answer": 2}));
        let states: Vec<(&str, u64, bool)> = summary["states"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| (s["name"].as_str().unwrap_or(""), s["count"].as_u64().unwrap_or(0), s["answered"] == true))
            .collect();
        assert_eq!(states, [("active", 2, true), ("unknown", 1, true), ("no_answer", 2, false)]);
        assert_eq!(summary["states"][0]["names"], json!(["Registry", "Dashboard"]));
        assert_eq!(summary["unanswered"], json!([{"n": 2}, {"n": 4}]));
        assert_eq!(summary["problems"], json!(["The mesh is unreachable."]));
    }
}
