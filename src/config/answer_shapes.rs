//! The catalogue's answer and request shapes: named `shapes:`, each endpoint's `response:` and
//! `request:`, and the bundled samples validated against their shape.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::compile::Document;
use super::files::CATALOGUE_FILE;
use super::schema::suggest;
use super::spec::ShapeRefSpec;
use crate::diagnostic::{Code, Diagnostic};
use crate::shapes::Shape;

/// Compiles the catalogue's `shapes:`; a schema that is not valid JSON Schema is a located
/// problem and is left out.
pub(super) fn named(
    doc: &Document,
    written: &IndexMap<String, Value>,
    report: &mut impl FnMut(Diagnostic),
) -> BTreeMap<String, Shape> {
    let mut shapes = BTreeMap::new();
    for (name, schema) in written {
        if let Some(problem) = misspelt_type(doc, &format!("/shapes/{name}"), schema) {
            report(problem);
            continue;
        }
        match Shape::new(Some(name), schema.clone()) {
            Ok(shape) => {
                shapes.insert(name.clone(), shape);
            }
            Err(problem) => report(not_a_schema(doc, &format!("/shapes/{name}"), &format!("shape `{name}`"), &problem)),
        }
    }
    shapes
}

/// An endpoint's `response:`: a shape it names, or the schema written there.
pub(super) fn response(
    doc: &Document,
    pointer: &str,
    written: &ShapeRefSpec,
    shapes: &BTreeMap<String, Shape>,
    report: &mut impl FnMut(Diagnostic),
) -> Option<Shape> {
    match written {
        ShapeRefSpec::Named(name) => {
            let found = shapes.get(name).cloned();
            if found.is_none() {
                let mut diagnostic = Diagnostic::new(
                    Code::UnknownShape,
                    CATALOGUE_FILE,
                    doc.at(pointer),
                    format!("there is no shape `{name}` under `shapes:`"),
                );
                diagnostic = match suggest(name, shapes.keys().map(String::as_str)) {
                    Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
                    None if shapes.is_empty() => diagnostic
                        .with_help(format!("declare it at the top of the catalogue: `shapes: {{ {name}: {{ type: object, properties: {{…}} }} }}`, or write the schema here")),
                    None => diagnostic.with_help(format!(
                        "declared shapes: {}",
                        shapes.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                    )),
                };
                report(diagnostic);
            }
            found
        }
        ShapeRefSpec::Inline(schema) => match misspelt_type(doc, pointer, schema).map_or_else(
            || {
                Shape::new(None, schema.clone())
                    .map_err(|problem| not_a_schema(doc, pointer, "this `response:`", &problem))
            },
            Err,
        ) {
            Ok(shape) => Some(shape),
            Err(diagnostic) => {
                report(diagnostic);
                None
            }
        },
    }
}

/// An endpoint's `request:` schema.
pub(super) fn request(
    doc: &Document,
    pointer: &str,
    schema: &Value,
    report: &mut impl FnMut(Diagnostic),
) -> Option<Shape> {
    match Shape::new(None, schema.clone()) {
        Ok(shape) => Some(shape),
        Err(problem) => {
            report(not_a_schema(doc, pointer, "this `request:`", &problem));
            None
        }
    }
}

/// Every place the bundled sample breaks the endpoint's shape. A templated string is decided
/// per request (`"{{ body.id }}"` becomes the number asked for), so it is checked when the
/// answer is made, not here.
pub(super) fn check_sample(
    doc: &Document,
    pointer: &str,
    sample: &Value,
    shape: &Shape,
    report: &mut impl FnMut(Diagnostic),
) {
    for problem in shape.problems(sample) {
        let templated =
            sample.pointer(&problem.at).and_then(Value::as_str).is_some_and(|s| s.contains("{{") || s.contains("{%"));
        if templated {
            continue;
        }
        let what = match &shape.name {
            Some(name) => format!("shape `{name}`"),
            None => "its `response:` shape".to_owned(),
        };
        report(
            Diagnostic::new(
                Code::SampleShape,
                CATALOGUE_FILE,
                doc.at(&format!("{pointer}{}", problem.at)),
                format!("the sample answer breaks {what}: {}", problem.message),
            )
            .with_help("fix the sample, or the shape if real answers look like this sample"),
        );
    }
}

const JSON_TYPES: &[&str] = &["string", "integer", "number", "boolean", "array", "object", "null"];

/// A `type` that names no JSON type (the usual slip in a hand-written schema), located at the
/// word itself; the validator's own message for it is about `anyOf` branches of its meta-schema.
fn misspelt_type(doc: &Document, pointer: &str, schema: &Value) -> Option<Diagnostic> {
    match schema {
        Value::Object(map) => {
            let types: Vec<(String, &str)> = match map.get("type") {
                Some(Value::String(t)) => vec![(format!("{pointer}/type"), t.as_str())],
                Some(Value::Array(ts)) => ts
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| t.as_str().map(|t| (format!("{pointer}/type/{i}"), t)))
                    .collect(),
                _ => Vec::new(),
            };
            if let Some((at, written)) = types.into_iter().find(|(_, t)| !JSON_TYPES.contains(t)) {
                let help = match suggest(written, JSON_TYPES.iter().copied()) {
                    Some(best) => format!("did you mean `{best}`? The types are: {}", JSON_TYPES.join(", ")),
                    None => format!("the types are: {}", JSON_TYPES.join(", ")),
                };
                return Some(
                    Diagnostic::new(
                        Code::BadShape,
                        CATALOGUE_FILE,
                        doc.at(&at),
                        format!("`{written}` is not a type a JSON answer can have"),
                    )
                    .with_help(help),
                );
            }
            // values, not schemas: an example may well have a `type` field of its own
            map.iter().filter(|(key, _)| !matches!(key.as_str(), "examples" | "default" | "const" | "enum")).find_map(
                |(key, value)| {
                    misspelt_type(doc, &format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")), value)
                },
            )
        }
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| misspelt_type(doc, &format!("{pointer}/{i}"), item))
        }
        _ => None,
    }
}

fn not_a_schema(doc: &Document, pointer: &str, what: &str, problem: &str) -> Diagnostic {
    Diagnostic::new(
        Code::BadShape,
        CATALOGUE_FILE,
        doc.at(pointer),
        format!("{what} is not a valid JSON Schema: {problem}"),
    )
    .with_help("write it with `type`, `properties`, `required` and `items`, e.g. `{ type: object, properties: { status: { type: string } } }`")
}
