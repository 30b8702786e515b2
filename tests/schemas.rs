//! The schemas in `schemas/` are what stewards' editors show: every field must say what it is
//! for and give an example, and the shipped files must satisfy them.

use serde_json::Value;

const SCHEMAS: [(&str, &str); 4] = [
    ("pipeline.schema.json", include_str!("../schemas/pipeline.schema.json")),
    ("catalogue.schema.json", include_str!("../schemas/catalogue.schema.json")),
    ("udc_config.schema.json", include_str!("../schemas/udc_config.schema.json")),
    ("vocabulary.schema.json", include_str!("../schemas/vocabulary.schema.json")),
];

/// Collects `path` of every property that lacks a description or an example.
fn undocumented(node: &Value, path: &str, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                for (name, property) in properties {
                    let here = format!("{path}.{name}");
                    if name == "$schema" {
                        continue; // editor plumbing, not a steward's field
                    }
                    let has_description = property.get("description").is_some();
                    let has_example = property.get("examples").is_some() || property.get("$ref").is_some();
                    if !has_description || !has_example {
                        out.push(here.clone());
                    }
                    undocumented(property, &here, out);
                }
            }
            for (key, value) in map {
                // examples are values (some are JSON Schemas themselves: a catalogue `response:`)
                if key != "properties" && key != "examples" {
                    undocumented(value, &format!("{path}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                undocumented(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_field_has_a_description_and_an_example() {
    for (name, text) in SCHEMAS {
        let schema: Value = serde_json::from_str(text).expect("schema is JSON");
        let mut missing = Vec::new();
        undocumented(&schema, "", &mut missing);
        assert!(missing.is_empty(), "{name}: fields without description or examples: {missing:#?}");
    }
}

#[test]
fn every_shipped_pipeline_points_editors_at_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for entry in std::fs::read_dir(dir).expect("pipelines folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/pipeline.schema.json"),
            "{} lacks the yaml-language-server schema comment on its first line",
            path.display()
        );
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let text = SCHEMAS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).expect("known schema");
    jsonschema::draft202012::new(&serde_json::from_str::<Value>(text).expect("JSON")).expect("valid schema")
}

/// The schema a configuration file is checked against, by its path.
fn schema_for(path: &str) -> Option<&'static str> {
    if path.starts_with("pipelines/") {
        Some("pipeline.schema.json")
    } else if path == "catalogue/vocabulary.yaml" {
        Some("vocabulary.schema.json")
    } else if path.starts_with("catalogue/") {
        Some("catalogue.schema.json")
    } else if path == "udc_config.json" {
        Some("udc_config.schema.json")
    } else {
        None
    }
}

#[test]
fn the_schema_accepts_every_shipped_pipeline() {
    let pipeline_schema = validator("pipeline.schema.json");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for entry in std::fs::read_dir(dir).expect("pipelines folder") {
        let path = entry.expect("entry").path();
        let document: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("YAML");
        let errors: Vec<String> = pipeline_schema.iter_errors(&document).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{} breaks the schema: {errors:?}", path.display());
    }
}

/// Mistakes the schema itself catches must be rejected by it; mistakes only the compile pass can
/// see (a missing template, an unknown droplet) must pass the schema, or the two layers overlap.
#[test]
fn the_schema_rejects_exactly_the_err_fixtures_it_should() {
    const SCHEMA_CODES: [&str; 4] = ["E_UNKNOWN_KEY", "E_WRONG_TYPE", "E_MISSING_KEY", "E_INVALID_VALUE"];
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config_errors");
    let mut checked = 0;
    for entry in std::fs::read_dir(folder).expect("fixtures") {
        let path = entry.expect("entry").path();
        let fixture: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("YAML");
        let schema_level = fixture["expect_codes"]
            .as_array()
            .is_some_and(|codes| codes.iter().any(|c| SCHEMA_CODES.contains(&c.as_str().unwrap_or_default())));
        let mut rejected = false;
        for (file, text) in fixture["files"].as_object().into_iter().flatten() {
            let (Some(schema), Some(text)) = (schema_for(file), text.as_str()) else { continue };
            let Ok(document) = serde_saphyr::from_str::<Value>(text) else { continue }; // a YAML syntax error
            let valid = validator(schema).is_valid(&document);
            rejected |= !valid;
            assert!(
                schema_level || valid,
                "{}: {file} should pass the schema; only the compile pass may reject it",
                path.display()
            );
        }
        assert_eq!(
            rejected,
            schema_level,
            "{}: the schema should {}reject it",
            path.display(),
            if schema_level { "" } else { "not " }
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixtures found");
}
