//! Reading a configuration file: its schema, YAML with positions, and the typed spec.

use serde::de::DeserializeOwned;

use super::syntax_errors::yaml_help;
use super::Compiler;
use crate::config::schema::Schema;
use crate::config::yaml::LocatedYaml;
use crate::config::{CATALOGUE_SCHEMA, PIPELINE_SCHEMA, UDC_CONFIG_SCHEMA, VOCABULARY_SCHEMA};
use crate::diagnostic::{Code, Diagnostic, Position};

/// A parsed file: its path, its text and its located tree.
pub(in crate::config) struct Document {
    pub(in crate::config) file: String,
    pub(in crate::config) text: String,
    yaml: LocatedYaml,
}

impl Document {
    pub(in crate::config) fn at(&self, pointer: &str) -> Position {
        self.yaml.position_of(pointer)
    }
}

/// The JSON Schemas the files are checked against; compiled in, so one that does not compile is
/// a fault of this build, reported and fatal.
pub(super) struct Schemas {
    pub(super) pipeline: Schema,
    pub(super) catalogue: Schema,
    pub(super) udc_config: Schema,
    pub(super) vocabulary: Schema,
}

impl Compiler<'_> {
    pub(super) fn schemas(&mut self) -> Option<Schemas> {
        Some(Schemas {
            pipeline: self.schema("schemas/pipeline.schema.json", PIPELINE_SCHEMA)?,
            catalogue: self.schema("schemas/catalogue.schema.json", CATALOGUE_SCHEMA)?,
            udc_config: self.schema("schemas/udc_config.schema.json", UDC_CONFIG_SCHEMA)?,
            vocabulary: self.schema("schemas/vocabulary.schema.json", VOCABULARY_SCHEMA)?,
        })
    }

    fn schema(&mut self, file: &str, text: &str) -> Option<Schema> {
        match Schema::compile(file, text) {
            Ok(schema) => Some(schema),
            Err(diagnostic) => {
                self.report(diagnostic);
                None
            }
        }
    }

    /// YAML → located tree → schema check → typed spec. `None` (with diagnostics) on any problem.
    pub(super) fn parse<T: DeserializeOwned>(
        &mut self,
        file: &str,
        text: &str,
        schema: &Schema,
    ) -> Option<(Document, T)> {
        let yaml = match LocatedYaml::parse(text) {
            Ok(yaml) => yaml,
            Err(error) => {
                self.report(
                    Diagnostic::new(
                        Code::YamlSyntax,
                        file,
                        error.position,
                        format!("this is not valid YAML: {}", error.message),
                    )
                    .with_help(yaml_help(text, error.position, &error.message)),
                );
                return None;
            }
        };
        let json = yaml.to_json();
        let problems = schema.check(file, &yaml, &json);
        if !problems.is_empty() {
            for problem in problems {
                self.report(problem);
            }
            return None;
        }
        match serde_json::from_value::<T>(json) {
            Ok(spec) => Some((Document { file: file.to_owned(), text: text.to_owned(), yaml }, spec)),
            Err(error) => {
                // the schema and the spec types disagree: a bug on our side, still reported
                self.report(Diagnostic::new(Code::InvalidValue, file, Position::default(), error.to_string()));
                None
            }
        }
    }
}
