//! Declared shapes of droplet answers and request bodies.
//!
//! A catalogue endpoint may say what its answer looks like (`response:`) and what body it takes
//! (`request:`), as JSON Schema. The same [`Shape`] serves three readers: the loader validates
//! the bundled samples against it, `config::template_reads` resolves every field a template
//! reads against it (through [`Node`]), and the query step validates each live answer, so an
//! answer in an unexpected form becomes a failed call with a plain sentence instead of a
//! template error.

use std::sync::Arc;

use serde_json::Value;

/// A compiled JSON Schema with the name it was declared under (`health`), if any.
#[derive(Clone)]
pub struct Shape {
    /// The catalogue's `shapes:` name, or none for a schema written on the endpoint itself.
    pub name: Option<String>,
    schema: Arc<Value>,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shape").field("name", &self.name).finish()
    }
}

/// Where a value breaks its shape, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeProblem {
    /// JSON pointer into the value (`/droplets/0/id`), empty for the value itself.
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for ShapeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "at {}: {}", self.at, self.message)
        }
    }
}

impl Shape {
    /// Compiles `schema` (draft 2020-12); the error is the schema's problem in one line.
    pub fn new(name: Option<&str>, schema: Value) -> Result<Shape, String> {
        let validator = jsonschema::draft202012::new(&schema).map_err(|e| e.to_string())?;
        Ok(Shape { name: name.map(str::to_owned), schema: Arc::new(schema), validator: Arc::new(validator) })
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The root of the schema, for reading its fields.
    pub fn root(&self) -> Node<'_> {
        Node(&self.schema)
    }

    /// Every place `value` breaks the shape, in document order.
    pub fn problems(&self, value: &Value) -> Vec<ShapeProblem> {
        self.validator
            .iter_errors(value)
            .map(|error| ShapeProblem { at: error.instance_path().as_str().to_owned(), message: plain(&error) })
            .collect()
    }

    /// The first place `value` breaks the shape.
    pub fn first_problem(&self, value: &Value) -> Option<ShapeProblem> {
        if self.validator.is_valid(value) {
            return None;
        }
        self.problems(value).into_iter().next()
    }
}

/// A validation error in words a steward reads without knowing JSON Schema.
fn plain(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    match error.kind() {
        Kind::Required { property } => {
            format!(
                "the field {} is missing",
                property.as_str().map(str::to_owned).unwrap_or_else(|| property.to_string())
            )
        }
        Kind::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => type_word(&t.to_string()).to_owned(),
                jsonschema::error::TypeKind::Multiple(ts) => {
                    let words: Vec<&str> = ts.iter().map(|t| type_word(&t.to_string())).collect();
                    words.join(" or ")
                }
            };
            format!("expected {expected}, got {}", describe(error.instance()))
        }
        Kind::Enum { options } => format!("{} is not one of {options}", describe(error.instance())),
        _ => error.to_string(),
    }
}

/// `integer` → "a whole number", for messages.
fn type_word(json_type: &str) -> &'static str {
    match json_type {
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "text",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "an object",
        "null" => "nothing (null)",
        _ => "another type",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > 40 => format!("text \"{}…\"", s.chars().take(40).collect::<String>()),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A place inside a schema: the reading side of a shape. Only the keywords a catalogue shape
/// uses are understood (`type`, `properties`, `required`, `items`, `additionalProperties`,
/// `description`); anything else reads as "not known here".
#[derive(Debug, Clone, Copy)]
pub struct Node<'a>(pub &'a Value);

/// What reading one field of an object gives.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    /// A declared property; `required` when every answer has it.
    Declared { node: Node<'a>, required: bool },
    /// A free-form map's entry (`additionalProperties: {…}`): any key may be read, none is sure.
    Entry(Node<'a>),
    /// The shape does not have it.
    Unknown,
}

impl<'a> Node<'a> {
    /// The JSON types this place may hold; empty when the schema does not say.
    pub fn types(&self) -> Vec<&'a str> {
        match self.0.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the schema says what this holds (a type or fields); a bare `{}` says nothing.
    pub fn is_typed(&self) -> bool {
        !self.types().is_empty() || self.0.get("properties").is_some() || self.0.get("items").is_some()
    }

    pub fn may_be_null(&self) -> bool {
        self.types().contains(&"null")
    }

    pub fn is_object(&self) -> bool {
        let types = self.types();
        types.contains(&"object") || (types.is_empty() && self.0.get("properties").is_some())
    }

    pub fn is_array(&self) -> bool {
        let types = self.types();
        types.contains(&"array") || (types.is_empty() && self.0.get("items").is_some())
    }

    pub fn description(&self) -> Option<&'a str> {
        self.0.get("description").and_then(Value::as_str)
    }

    /// The field `name` of an object.
    pub fn field(&self, name: &str) -> Field<'a> {
        if let Some(node) = self.0.get("properties").and_then(|p| p.get(name)) {
            let required =
                self.0.get("required").and_then(Value::as_array).is_some_and(|r| r.iter().any(|v| v == name));
            return Field::Declared { node: Node(node), required };
        }
        match self.0.get("additionalProperties") {
            Some(extra @ Value::Object(_)) => Field::Entry(Node(extra)),
            _ => Field::Unknown,
        }
    }

    /// The declared fields, in the order written, with whether each is always there.
    pub fn fields(&self) -> Vec<(&'a str, Node<'a>, bool)> {
        let required: Vec<&str> = self
            .0
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        self.0
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.as_str(), Node(v), required.contains(&k.as_str()))).collect())
            .unwrap_or_default()
    }

    /// Whether any key may be read (a free-form map).
    pub fn open(&self) -> bool {
        matches!(self.0.get("additionalProperties"), Some(Value::Object(_)))
    }

    /// What each element of a list is.
    pub fn items(&self) -> Option<Node<'a>> {
        self.0.get("items").filter(|i| i.is_object()).map(Node)
    }

    /// "text", "whole number or nothing", "list of objects": a type in words, for tables and help.
    pub fn type_label(&self) -> String {
        let types = self.types();
        let mut words: Vec<String> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| match *t {
                "array" => match self.items() {
                    Some(items) if items.is_typed() => format!("list of {}", plural(&items.type_label())),
                    _ => "list".to_owned(),
                },
                "integer" => "whole number".to_owned(),
                "string" => "text".to_owned(),
                "boolean" => "true/false".to_owned(),
                "object" if self.open() && self.fields().is_empty() => "map".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        if words.is_empty() {
            words.push(if self.is_object() { "object".to_owned() } else { "any".to_owned() });
        }
        let mut label = words.join(" or ");
        if self.may_be_null() {
            label.push_str(" or nothing");
        }
        label
    }
}

/// One field of an answer, flattened: `droplets[].metadata.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLine {
    /// From the answer's root: `status`, `droplets[].id`, `[].name` (an answer that is a list).
    pub path: String,
    pub type_label: String,
    /// Whether every answer has it (and everything on the way to it).
    pub always: bool,
    pub description: String,
}

impl<'a> Node<'a> {
    /// Every declared field, depth first, with the path a template writes after `.data`.
    pub fn field_lines(&self) -> Vec<FieldLine> {
        let mut out = Vec::new();
        self.collect(String::new(), true, &mut out);
        out
    }

    fn collect(&self, prefix: String, always: bool, out: &mut Vec<FieldLine>) {
        if self.is_array() {
            if let Some(items) = self.items() {
                items.collect(format!("{prefix}[]"), always, out);
            }
        }
        for (name, node, required) in self.fields() {
            let path = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
            let always = always && required;
            out.push(FieldLine {
                path: path.clone(),
                type_label: node.type_label(),
                always,
                description: node.description().unwrap_or_default().to_owned(),
            });
            node.collect(path, always, out);
        }
        if self.open() {
            let path = if prefix.is_empty() { "<any name>".to_owned() } else { format!("{prefix}.<any name>") };
            if let Some(entry) = self.0.get("additionalProperties").map(Node) {
                out.push(FieldLine {
                    path,
                    type_label: entry.type_label(),
                    always: false,
                    description: entry.description().unwrap_or_default().to_owned(),
                });
            }
        }
    }
}

fn plural(label: &str) -> String {
    match label {
        "object" => "objects".to_owned(),
        "whole number" => "whole numbers".to_owned(),
        "number" => "numbers".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn health() -> Shape {
        Shape::new(
            Some("health"),
            json!({
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string"},
                    "id": {"type": "integer"},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "owner": {"type": ["string", "null"]}
                }
            }),
        )
        .expect("a valid schema")
    }

    #[test]
    fn problems_are_located_and_plain() {
        let shape = health();
        assert_eq!(shape.first_problem(&json!({"status": "active", "id": 2})), None);
        let missing = shape.first_problem(&json!({"id": 2})).expect("a problem");
        assert_eq!(missing.to_string(), "the field status is missing");
        let wrong = shape.first_problem(&json!({"status": "active", "id": "two"})).expect("a problem");
        assert_eq!(wrong.to_string(), "at /id: expected a whole number, got \"two\"");
    }

    #[test]
    fn fields_say_whether_they_are_sure() {
        let shape = health();
        let root = shape.root();
        assert!(matches!(root.field("status"), Field::Declared { required: true, .. }));
        assert!(matches!(root.field("id"), Field::Declared { required: false, .. }));
        assert!(matches!(root.field("steward"), Field::Unknown));
        let Field::Declared { node: metadata, .. } = root.field("metadata") else { panic!("declared") };
        assert!(matches!(metadata.field("anything"), Field::Entry(_)));
        assert_eq!(metadata.type_label(), "map");
        let Field::Declared { node: tags, .. } = root.field("tags") else { panic!("declared") };
        assert_eq!(tags.type_label(), "list of text");
        let Field::Declared { node: owner, .. } = root.field("owner") else { panic!("declared") };
        assert!(owner.may_be_null());
        assert_eq!(owner.type_label(), "text or nothing");
    }

    #[test]
    fn a_broken_schema_is_refused() {
        assert!(Shape::new(None, json!({"type": "wibble"})).is_err());
    }
}
