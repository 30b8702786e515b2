//! Every mistake a steward can make has a located, snapshotted message. Each fixture in
//! `tests/fixtures/config_errors/err_*.yaml` lays files over the shipped configuration (or removes
//! some); the rendered diagnostics are the snapshot, so a worse message is a visible diff.

mod common;

use chat_orchestrator::config::{self, ConfigFiles};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorFixture {
    #[allow(dead_code)]
    description: String,
    /// Files to add or replace, by path under the configuration root.
    #[serde(default)]
    files: indexmap::IndexMap<String, String>,
    /// Files to take away.
    #[serde(default)]
    remove: Vec<String>,
    /// Codes that must be among the diagnostics (the snapshot shows the full text).
    expect_codes: Vec<String>,
}

#[test]
fn config_errors() {
    insta::glob!("fixtures/config_errors/err_*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let fixture: ErrorFixture = serde_saphyr::from_str(&text).expect("fixture is valid");
        let mut files = common::repo_files().overlay(ConfigFiles::from_pairs(fixture.files.clone()));
        for removed in &fixture.remove {
            assert!(files.remove(removed).is_some(), "fixture removes {removed}, which does not exist");
        }
        let error = match config::load(&files) {
            Ok(_) => panic!("{} should not load", path.display()),
            Err(error) => error,
        };
        let codes: Vec<&str> = error.diagnostics.iter().map(|d| d.code.as_str()).collect();
        for expected in &fixture.expect_codes {
            assert!(codes.contains(&expected.as_str()), "expected {expected} among {codes:?}\n{}", error.render());
        }
        for diagnostic in error.diagnostics.iter() {
            assert!(diagnostic.help.is_some(), "every message says how to fix it: {diagnostic:?}");
        }
        insta::assert_snapshot!(error.render());
    });
}

#[test]
fn shipped_configuration_loads_cleanly_and_embedded_copy_matches() {
    let from_disk = common::compiled();
    let embedded = config::load(&ConfigFiles::embedded()).expect("embedded configuration loads");
    let intents = |c: &config::CompiledConfig| c.pipelines.iter().map(|p| p.intent.clone()).collect::<Vec<_>>();
    assert_eq!(intents(&from_disk), intents(&embedded));
    assert_eq!(from_disk.catalogue.droplets.len(), embedded.catalogue.droplets.len());
}
