//! JSON Schema validation of configuration files, with errors a steward can act on.
//!
//! The schemas in `schemas/` are the single description of the file formats: editors use them
//! for completion, and the loader validates with them before anything else. jsonschema reports
//! problems as instance paths; this module turns each into a located [`Diagnostic`], with
//! "did you mean" suggestions taken from the schema itself.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value;

use super::yaml::LocatedYaml;
use crate::diagnostic::{Code, Diagnostic};

/// A compiled schema plus its source (needed to look up allowed keys and descriptions).
pub struct Schema {
    validator: jsonschema::Validator,
    document: Value,
}

impl Schema {
    /// Compiles a schema document. Our own schemas are fixed at build time, so a failure here is
    /// a bug in the repository, reported as a diagnostic against the schema file.
    pub fn compile(file: &str, text: &str) -> Result<Schema, Diagnostic> {
        let document: Value = serde_json::from_str(text).map_err(|e| {
            Diagnostic::new(Code::YamlSyntax, file, Default::default(), format!("schema is not valid JSON: {e}"))
        })?;
        let validator = jsonschema::draft202012::new(&document).map_err(|e| {
            Diagnostic::new(Code::InvalidValue, file, Default::default(), format!("schema does not compile: {e}"))
        })?;
        Ok(Schema { validator, document })
    }

    /// Every schema violation of `instance`, located in `yaml`.
    pub fn check(&self, file: &str, yaml: &LocatedYaml, instance: &Value) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for error in self.validator.iter_errors(instance) {
            self.describe(file, yaml, &error, &mut out);
        }
        out
    }

    fn describe(&self, file: &str, yaml: &LocatedYaml, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>) {
        let pointer = error.instance_path().as_str().to_owned();
        let schema_path = error.schema_path().as_str().to_owned();
        let name = describe_pointer(&pointer);
        let at = yaml.position_of(&pointer);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed = self.allowed_keys(&schema_path);
                for key in unexpected {
                    let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                    let position = yaml.key_position_of(&child);
                    let mut diagnostic =
                        Diagnostic::new(Code::UnknownKey, file, position, format!("unknown key `{key}` in {name}"));
                    diagnostic = match suggest(key, allowed.iter().map(String::as_str)) {
                        Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
                        None if !allowed.is_empty() => {
                            diagnostic.with_help(format!("allowed keys here: {}", allowed.join(", ")))
                        }
                        None => diagnostic,
                    };
                    out.push(diagnostic);
                }
            }
            ValidationErrorKind::Required { property } => {
                let key = property.as_str().unwrap_or_default();
                let description = self.property_description(&schema_path, key);
                let mut diagnostic =
                    Diagnostic::new(Code::MissingKey, file, at, format!("missing required key `{key}` in {name}"));
                diagnostic = match description {
                    Some(text) => diagnostic.with_help(format!("add `{key}:` — {}", lowercase_first(&text))),
                    None => diagnostic.with_help(format!("add `{key}:`")),
                };
                out.push(diagnostic);
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => article(&t.to_string()),
                    TypeKind::Multiple(set) => {
                        set.iter().map(|t| article(&t.to_string())).collect::<Vec<_>>().join(" or ")
                    }
                };
                out.push(
                    Diagnostic::new(
                        Code::WrongType,
                        file,
                        at,
                        format!("{name} must be {expected}, found {}", describe_value(error.instance())),
                    )
                    .with_help(self.field_help(&schema_path).unwrap_or_else(|| format!("write {expected} here"))),
                );
            }
            ValidationErrorKind::Enum { options } => {
                let choices: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect())
                    .unwrap_or_default();
                let found = describe_value(error.instance());
                let mut diagnostic = Diagnostic::new(Code::InvalidValue, file, at, format!("{name} cannot be {found}"));
                let typed = error.instance().as_str().unwrap_or_default();
                diagnostic = match suggest(typed, choices.iter().map(String::as_str)) {
                    Some(best) => {
                        diagnostic.with_help(format!("did you mean `{best}`? (one of: {})", choices.join(", ")))
                    }
                    None => diagnostic.with_help(format!("use one of: {}", choices.join(", "))),
                };
                out.push(diagnostic);
            }
            ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
                // Report the alternative that came closest: the one whose problems are deepest
                // inside the value (a shallow type mismatch means "not this alternative at all").
                let best = context.iter().filter(|branch| !branch.is_empty()).max_by_key(|branch| {
                    let shallow = branch.iter().all(|e| {
                        e.instance_path().as_str() == pointer
                            && matches!(
                                e.kind(),
                                ValidationErrorKind::Type { .. } | ValidationErrorKind::Constant { .. }
                            )
                    });
                    let depth = |e: &ValidationError<'_>| e.instance_path().as_str().matches('/').count();
                    (!shallow, branch.iter().map(depth).max().unwrap_or(0))
                });
                match best {
                    Some(branch) if branch.iter().any(|e| e.instance_path().as_str() != pointer) => {
                        for inner in branch {
                            self.describe(file, yaml, inner, out);
                        }
                    }
                    _ => out.push(
                        Diagnostic::new(
                            Code::WrongType,
                            file,
                            at,
                            format!("{name} has the wrong shape: found {}", describe_value(error.instance())),
                        )
                        .with_help(self.field_help(&schema_path).unwrap_or_else(|| "see the schema".to_owned())),
                    ),
                }
            }
            ValidationErrorKind::Pattern { pattern } => {
                let mut diagnostic = Diagnostic::new(
                    Code::InvalidValue,
                    file,
                    at,
                    format!(
                        "{name} has the wrong form: {} does not match `{pattern}`",
                        describe_value(error.instance())
                    ),
                );
                if let Some(help) = self.field_help(&schema_path) {
                    diagnostic = diagnostic.with_help(help);
                }
                out.push(diagnostic);
            }
            _ => {
                let mut diagnostic =
                    Diagnostic::new(Code::InvalidValue, file, at, format!("{name} is not allowed: {error}"));
                if let Some(help) = self.field_help(&schema_path) {
                    diagnostic = diagnostic.with_help(help);
                }
                out.push(diagnostic);
            }
        }
    }

    /// The schema node a keyword location points into, following local `$ref`s.
    fn schema_node(&self, schema_path: &str) -> Option<&Value> {
        let mut node = &self.document;
        for segment in schema_path.split('/').skip(1) {
            if segment == "$ref" {
                node = self.resolve_ref(node)?;
                continue;
            }
            node = match node {
                Value::Object(map) => map.get(&segment.replace("~1", "/").replace("~0", "~"))?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    fn resolve_ref<'a>(&'a self, node: &'a Value) -> Option<&'a Value> {
        let target = node.get("$ref")?.as_str()?.strip_prefix('#')?;
        self.document.pointer(target)
    }

    /// The schema object owning the keyword at the end of `schema_path`, `$ref`s resolved.
    fn owner(&self, schema_path: &str) -> Option<&Value> {
        let parent = schema_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        let mut node = self.schema_node(parent)?;
        while node.get("$ref").is_some() && node.get("properties").is_none() {
            node = self.resolve_ref(node)?;
        }
        Some(node)
    }

    fn allowed_keys(&self, schema_path: &str) -> Vec<String> {
        self.owner(schema_path)
            .and_then(|o| o.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn property_description(&self, schema_path: &str, key: &str) -> Option<String> {
        let property = self.owner(schema_path)?.get("properties")?.get(key)?;
        let property = if property.get("description").is_none() { self.resolve_ref(property)? } else { property };
        property.get("description")?.as_str().map(str::to_owned)
    }

    /// The description of the field a failing keyword belongs to, as a help line.
    fn field_help(&self, schema_path: &str) -> Option<String> {
        let owner = self.owner(schema_path)?;
        let description = owner.get("description")?.as_str()?;
        let example =
            owner.get("examples").and_then(|e| e.get(0)).map(|e| format!(" Example: {e}")).unwrap_or_default();
        Some(format!("{description}{example}"))
    }
}

/// The closest candidate to `typed`, if it is close enough to be a plausible typo.
pub fn suggest<'a>(typed: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase();
    candidates
        .map(|c| (strsim::damerau_levenshtein(&typed_lower, &c.to_lowercase()), c))
        .filter(|(distance, c)| *distance <= (c.len().max(typed.len()) / 3).max(1))
        .min_by_key(|(distance, c)| (*distance, *c))
        .map(|(_, c)| c)
}

/// A human name for the place a pointer designates: "`steps[1].query`", or "the file".
pub fn describe_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the file".to_owned();
    }
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    format!("`{out}`")
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text \"{s}\""),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn article(json_type: &str) -> String {
    match json_type {
        "object" => "a mapping".to_owned(),
        "array" => "a list".to_owned(),
        "string" => "text".to_owned(),
        "integer" => "a whole number".to_owned(),
        "number" => "a number".to_owned(),
        "boolean" => "true or false".to_owned(),
        "null" => "null".to_owned(),
        other => other.to_owned(),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_but_not_unrelated_words() {
        let keys = ["extract", "query", "format", "when"];
        assert_eq!(suggest("quer", keys.iter().copied()), Some("query"));
        assert_eq!(suggest("fromat", keys.iter().copied()), Some("format"));
        assert_eq!(suggest("banana", keys.iter().copied()), None);
    }

    #[test]
    fn pointers_read_like_paths() {
        assert_eq!(describe_pointer("/steps/1/query"), "`steps[1].query`");
        assert_eq!(describe_pointer(""), "the file");
    }
}
