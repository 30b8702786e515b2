//! YAML parsed into a tree that remembers where every node came from.
//!
//! Schema validation and the compile pass both speak in JSON pointers (`/steps/1/query/droplet`);
//! [`LocatedYaml::position_of`] turns such a pointer back into the line and column a steward
//! sees in their editor. Parsing is done by serde-saphyr (see ARCHITECTURE.md for why).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diagnostic::Position;

/// One YAML node and its position.
#[derive(Debug, Clone)]
pub struct Located {
    pub node: Node,
    pub position: Position,
}

#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Located>),
    /// Entries in document order; the key keeps its own position so "unknown key" points at it.
    Map(Vec<(Located, Located)>),
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Node>::deserialize(deserializer)?;
        let position = Position { line: spanned.referenced.line() as u32, column: spanned.referenced.column() as u32 };
        Ok(Located { node: spanned.value, position })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Located>()? {
            let value = map.next_value::<Located>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A parsed YAML document.
#[derive(Debug, Clone)]
pub struct LocatedYaml {
    pub root: Located,
}

/// Why a YAML text could not be parsed.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

impl LocatedYaml {
    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        // YAML 1.2 booleans only: `no` stays the string "no" (the Norway problem).
        let options = serde_saphyr::options! { strict_booleans: true, with_snippet: false };
        match serde_saphyr::from_str_with_options::<Located>(text, options) {
            Ok(root) => Ok(LocatedYaml { root }),
            Err(err) => {
                let position = err
                    .location()
                    .map(|l| Position { line: l.line() as u32, column: l.column() as u32 })
                    .unwrap_or_default();
                Err(SyntaxError { position, message: first_line(&err.to_string()) })
            }
        }
    }

    /// The document as JSON (for schema validation and typed deserialisation).
    pub fn to_json(&self) -> serde_json::Value {
        to_json(&self.root)
    }

    /// Position of the node a JSON pointer designates; the nearest existing ancestor when the
    /// pointer goes further than the document (a missing key points at its parent).
    pub fn position_of(&self, pointer: &str) -> Position {
        self.walk(pointer, false)
    }

    /// Position of the *key* of the last pointer segment (for "unknown key" problems).
    pub fn key_position_of(&self, pointer: &str) -> Position {
        self.walk(pointer, true)
    }

    fn walk(&self, pointer: &str, want_key: bool) -> Position {
        let mut current = &self.root;
        let segments: Vec<String> =
            pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            match &current.node {
                Node::Map(entries) => match entries.iter().find(|(k, _)| key_text(k).as_deref() == Some(segment)) {
                    Some((key, value)) => {
                        if last && want_key {
                            return key.position;
                        }
                        current = value;
                    }
                    None => return current.position,
                },
                Node::Seq(items) => match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                    Some(item) => current = item,
                    None => return current.position,
                },
                _ => return current.position,
            }
        }
        current.position
    }
}

/// The parser's message without its own "at line …, column …" (the diagnostic shows it).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    match line.rfind(" at line ") {
        Some(cut) => line[..cut].to_owned(),
        None => line.to_owned(),
    }
}

fn key_text(key: &Located) -> Option<String> {
    match &key.node {
        Node::Str(s) => Some(s.clone()),
        Node::Int(i) => Some(i.to_string()),
        Node::UInt(u) => Some(u.to_string()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Float(f) => Some(f.to_string()),
        Node::Null => Some("null".to_owned()),
        Node::Seq(_) | Node::Map(_) => None,
    }
}

fn to_json(located: &Located) -> serde_json::Value {
    use serde_json::Value;
    match &located.node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::from(*i),
        Node::UInt(u) => Value::from(*u),
        Node::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Node::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (key_text(k).unwrap_or_else(|| "<complex key>".to_owned()), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_resolve_to_the_line_and_column_of_the_node() {
        let yaml = LocatedYaml::parse("intent: x\nsteps:\n  - format: {chat: a.j2}\n  - quer: 1\n").expect("valid");
        assert_eq!(yaml.position_of("/steps/0/format/chat"), Position { line: 3, column: 20 });
        assert_eq!(yaml.key_position_of("/steps/1/quer"), Position { line: 4, column: 5 });
        // a pointer past the document stops at the deepest node that exists
        assert_eq!(yaml.position_of("/steps/1/nothing/here"), Position { line: 4, column: 5 });
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = LocatedYaml::parse("a: [1, 2\nb: 3\n").expect_err("unterminated flow sequence");
        assert!(err.position.line >= 1, "{err:?}");
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let yaml = LocatedYaml::parse("answer: no\n").expect("valid");
        assert_eq!(yaml.to_json(), serde_json::json!({"answer": "no"}));
    }
}
