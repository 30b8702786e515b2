//! The droplets of the mesh, as the compiled catalogue knows them.
//!
//! Built from `catalogue/droplets.yaml`: ids, names, aliases and endpoints. It feeds droplet
//! slots ("the dashboard" → 2), fan-out queries (`droplets: all`), templates (`droplets`) and
//! the bundled sample backend.

use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use crate::shapes::Shape;
use crate::statuses::Statuses;

#[derive(Debug, Clone, Serialize)]
pub struct Catalogue {
    pub droplets: Vec<Droplet>,
    /// Every lowercased name, key and alias with its droplet id, built once for [`Catalogue::recognize`].
    #[serde(skip)]
    names: Vec<(String, i64)>,
    /// The states droplets report and the words for them (`statuses:`).
    #[serde(skip)]
    pub statuses: Arc<Statuses>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Droplet {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub purpose: String,
    /// Lowercased names users may say; numeric aliases (Voice's 18) live in `alias_ids`.
    pub aliases: Vec<String>,
    #[serde(skip)]
    pub alias_ids: Vec<i64>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub path: String,
    pub method: String,
    pub description: String,
    pub backing: String,
    /// What the answer looks like, when the catalogue says; not shown to templates.
    #[serde(skip)]
    pub response: Option<Shape>,
    /// What body it takes, when the catalogue says; not shown to templates.
    #[serde(skip)]
    pub request: Option<Shape>,
    /// The bundled answer; not shown to templates. Shared: every call to the endpoint carries it.
    #[serde(skip)]
    pub sample: Option<Arc<Value>>,
    /// How droplet 10 answers it itself; not shown to templates.
    #[serde(skip)]
    pub native: Option<Arc<NativeForm>>,
}

/// A question or command droplet 10 answers through its own `POST /message` (MESH.md §6.1).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeForm {
    /// `query` or `command`.
    pub message_type: String,
    /// The envelope payload; strings are templates over `body` and `params`.
    pub payload: Value,
}

impl Droplet {
    /// The first endpoint at `path`, whatever its method.
    pub fn endpoint(&self, path: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.path == path)
    }

    /// The endpoint at `path` with `method` (`/tasks` can be both GET and POST), else the first
    /// at `path`.
    pub fn endpoint_for(&self, path: &str, method: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.path == path && e.method.eq_ignore_ascii_case(method)).or(self.endpoint(path))
    }
}

impl Catalogue {
    /// "What a query gives you": for every endpoint, the fields of its answer, as markdown
    /// (the table in STEWARDS.md and `chat-orchestrator answers`). Endpoints sharing a named
    /// shape are listed together.
    pub fn answers_reference(&self) -> String {
        let mut out = String::new();
        let mut shared: Vec<(String, Vec<String>, &Shape, String)> = Vec::new();
        let mut unshaped = Vec::new();
        for droplet in &self.droplets {
            for endpoint in &droplet.endpoints {
                let route = format!("{} {}", endpoint.method, endpoint.path);
                match &endpoint.response {
                    Some(shape) if shape.name.is_some() => {
                        let name = shape.name.clone().unwrap_or_default();
                        match shared.iter_mut().find(|(n, _, _, r)| *n == name && *r == route) {
                            Some((_, droplets, _, _)) => droplets.push(droplet.name.clone()),
                            None => shared.push((name, vec![droplet.name.clone()], shape, route)),
                        }
                    }
                    Some(shape) => table(&mut out, &format!("{} — {route}", droplet.name), shape),
                    None => unshaped.push(format!("{} {route}", droplet.name)),
                }
            }
        }
        for (name, droplets, shape, route) in shared {
            let title = format!("{} — {route} (shape `{name}`)", droplets.join(", "));
            table(&mut out, &title, shape);
        }
        if !unshaped.is_empty() {
            out.push_str(&format!(
                "No declared shape (templates reading these are not checked): {}.\n",
                unshaped.join(", ")
            ));
        }
        out
    }
}

/// One endpoint's answer as a markdown table under a heading.
fn table(out: &mut String, title: &str, shape: &Shape) {
    let root = shape.root();
    out.push_str(&format!("#### {title}\n\n"));
    match root.description() {
        Some(description) => out.push_str(&format!("Answer: {}. {description}\n\n", root.type_label())),
        None => out.push_str(&format!("Answer: {}.\n\n", root.type_label())),
    }
    out.push_str("| `.data…` | type | always there | what it is |\n|---|---|---|---|\n");
    for line in root.field_lines() {
        let path = if line.path.starts_with('[') { line.path.clone() } else { format!(".{}", line.path) };
        out.push_str(&format!(
            "| `{path}` | {} | {} | {} |\n",
            line.type_label,
            if line.always { "yes" } else { "" },
            line.description.replace('|', "\\|")
        ));
    }
    out.push('\n');
}

/// What a text says about droplets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognition {
    Found(i64),
    /// A number was given ("droplet 99") but no droplet has it.
    UnknownNumber(i64),
    NotMentioned,
}

fn number_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    // "droplet 14", "droplet #14", "#14", "drop14", or a bare number when the whole text is one
    PATTERN.get_or_init(|| {
        Regex::new(r"(?i)(?:\bdroplet\s*#?\s*|#|\bdrop)(\d{1,6})\b|^\s*(\d{1,6})\s*$").expect("static regex")
    })
}

impl Catalogue {
    pub fn new(droplets: Vec<Droplet>) -> Catalogue {
        let mut names = Vec::new();
        for droplet in &droplets {
            names.push((droplet.name.to_lowercase(), droplet.id));
            names.push((droplet.key.replace('_', " "), droplet.id));
            names.extend(droplet.aliases.iter().map(|alias| (alias.clone(), droplet.id)));
        }
        Catalogue { droplets, names, statuses: Arc::default() }
    }

    /// The catalogue with the steward's `statuses:` (otherwise every status reads as unknown).
    pub fn with_statuses(self, statuses: Arc<Statuses>) -> Catalogue {
        Catalogue { statuses, ..self }
    }

    pub fn by_id(&self, id: i64) -> Option<&Droplet> {
        self.droplets.iter().find(|d| d.id == id || d.alias_ids.contains(&id))
    }

    /// A droplet by id, key or alias (case-insensitive), as pipelines and users name them.
    pub fn by_name(&self, name: &str) -> Option<&Droplet> {
        let wanted = name.trim().to_lowercase();
        if let Ok(id) = wanted.parse::<i64>() {
            return self.by_id(id);
        }
        self.droplets.iter().find(|d| d.key == wanted || d.name.to_lowercase() == wanted || d.aliases.contains(&wanted))
    }

    /// Finds the droplet a free text talks about: a number ("droplet 14", "#14"), else the
    /// longest name or alias found as whole words ("the visibility deck").
    pub fn recognize(&self, text: &str) -> Recognition {
        if let Some(caps) = number_pattern().captures(text) {
            let digits = caps.get(1).or_else(|| caps.get(2)).map(|m| m.as_str()).unwrap_or_default();
            if let Ok(id) = digits.parse::<i64>() {
                return match self.by_id(id) {
                    Some(d) => Recognition::Found(d.id),
                    None => Recognition::UnknownNumber(id),
                };
            }
        }
        let lowered = text.to_lowercase();
        let mut best: Option<(usize, i64)> = None;
        for (name, id) in &self.names {
            if best.is_none_or(|(len, _)| name.len() > len) && contains_words(&lowered, name) {
                best = Some((name.len(), *id));
            }
        }
        best.map(|(_, id)| Recognition::Found(id)).unwrap_or(Recognition::NotMentioned)
    }

    /// Display names of every droplet, for "known droplets are …" messages.
    pub fn names(&self) -> Vec<String> {
        self.droplets.iter().map(|d| format!("{} ({})", d.name, d.id)).collect()
    }
}

/// Whether `needle` occurs in `haystack` as whole words.
fn contains_words(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let bytes = haystack.as_bytes();
    haystack.match_indices(needle).any(|(start, _)| {
        let end = start + needle.len();
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after_ok = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        before_ok && after_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Catalogue {
        let droplet = |id, key: &str, name: &str, aliases: &[&str], alias_ids: Vec<i64>| Droplet {
            id,
            key: key.into(),
            name: name.into(),
            purpose: String::new(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            alias_ids,
            endpoints: vec![],
        };
        Catalogue::new(vec![
            droplet(2, "dashboard", "Dashboard", &["dash"], vec![]),
            droplet(6, "voice", "Voice", &[], vec![18]),
            droplet(14, "visibility_deck", "Visibility Deck", &["deck"], vec![]),
        ])
    }

    #[test]
    fn recognizes_numbers_names_and_aliases() {
        let c = sample();
        assert_eq!(c.recognize("is droplet 14 up?"), Recognition::Found(14));
        assert_eq!(c.recognize("status of #2"), Recognition::Found(2));
        assert_eq!(c.recognize("how is the Visibility Deck"), Recognition::Found(14));
        assert_eq!(c.recognize("the deck please"), Recognition::Found(14));
        assert_eq!(c.recognize("droplet 18"), Recognition::Found(6), "18 is Voice's alias");
        assert_eq!(c.recognize("droplet 99"), Recognition::UnknownNumber(99));
        assert_eq!(c.recognize("dashboards"), Recognition::NotMentioned, "whole words only");
        assert_eq!(c.recognize("14"), Recognition::Found(14), "a bare number answers a question");
    }
}
