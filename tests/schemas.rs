//! The schemas in `schemas/` are what stewards' editors show: every field must say what it is
//! for and give an example, and the shipped files must satisfy them.

use serde_json::Value;

const SCHEMAS: [(&str, &str); 3] = [
    ("pipeline.schema.json", include_str!("../schemas/pipeline.schema.json")),
    ("catalogue.schema.json", include_str!("../schemas/catalogue.schema.json")),
    ("udc_config.schema.json", include_str!("../schemas/udc_config.schema.json")),
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
                if key != "properties" {
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
