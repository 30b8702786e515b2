//! Every mistake a steward can make has a located, snapshotted message. Each fixture in
//! `tests/fixtures/config_errors/err_*.yaml` lays files over the shipped configuration (or removes
//! some); the rendered diagnostics are the snapshot, so a worse message is a visible diff.

use crate::common;

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
    /// Small changes to shipped files: each `[from, to]` replaces the first `from`.
    #[serde(default)]
    edits: indexmap::IndexMap<String, Vec<(String, String)>>,
    /// Codes that must be among the diagnostics (the snapshot shows the full text).
    expect_codes: Vec<String>,
}

#[test]
fn config_errors() {
    let _names = common::snapshots_named_in_full();
    insta::glob!("fixtures/config_errors/err_*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let fixture: ErrorFixture = serde_saphyr::from_str(&text).expect("fixture is valid");
        let mut files = common::repo_files().overlay(ConfigFiles::from_pairs(fixture.files.clone()));
        for removed in &fixture.remove {
            assert!(files.remove(removed).is_some(), "fixture removes {removed}, which does not exist");
        }
        for (file, edits) in &fixture.edits {
            let mut text =
                files.get(file).unwrap_or_else(|| panic!("fixture edits {file}, which does not exist")).to_owned();
            for (from, to) in edits {
                assert!(text.contains(from.as_str()), "fixture edits {file}: `{from}` is not in it");
                text = text.replacen(from.as_str(), to, 1);
            }
            files = files.overlay(ConfigFiles::from_pairs([(file.clone(), text)]));
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
        insta::assert_snapshot!("config_errors__config_errors", error.render());
    });
}

#[test]
fn shipped_configuration_loads_cleanly_and_embedded_copy_matches() {
    let _loads = common::compiled();
    let embedded = ConfigFiles::embedded();
    config::load(&embedded).expect("embedded configuration loads");
    // the binary must serve exactly what is in the repository: same files, same bytes (a file
    // the build did not pick up, or a stale copy, fails here by name)
    let on_disk = common::repo_files();
    let paths = |files: &ConfigFiles| files.iter().map(|(path, _)| path.to_owned()).collect::<Vec<_>>();
    assert_eq!(paths(&embedded), paths(&on_disk), "the same files");
    for (path, text) in on_disk.iter() {
        assert!(embedded.get(path) == Some(text), "{path}: the embedded copy differs from the file");
    }
}

/// Warnings do not stop a configuration from loading; `check` shows them located, like errors.
#[test]
fn warnings_point_at_a_claimed_example_and_a_command_without_consent() {
    let files = common::repo_files().overlay(ConfigFiles::from_pairs([(
        "pipelines/ping_registry.yaml",
        "intent: ping_registry\ndescription: Re-register the Registry\nexamples:\n  - \"show me all droplets\"\n  - \"re-register the registry now\"\nsteps:\n  - query: { droplet: 1, endpoint: /register, method: POST, body: { name: Registry, id: 1 }, as: result }\n  - format: { chat: help/chat.md.j2, voice: help/voice.txt.j2 }\n",
    )]));
    let compiled = config::load(&files).expect("warnings do not stop loading");
    let mut warnings = compiled.warnings.clone();
    for warning in config::example_warnings(&compiled).0 {
        warnings.push(warning);
    }
    warnings.sort();
    let codes: Vec<&str> = warnings.iter().map(|d| d.code.as_str()).collect();
    assert!(codes.contains(&"W_EXAMPLE_CLAIMED") && codes.contains(&"W_NO_CONSENT"), "{codes:?}");
    let _names = common::snapshots_named_in_full();
    insta::assert_snapshot!(
        "config_errors__warnings_point_at_a_claimed_example_and_a_command_without_consent",
        warnings.render(|path| files.get(path))
    );
    assert!(
        config::example_warnings(&common::compiled()).is_empty(),
        "the shipped examples are each their own intent's"
    );
    assert!(common::compiled().warnings.is_empty(), "every shipped command asks first");
}

/// Reads of an answer that can fail at run time, but that a guard would make safe, are warnings
/// showing the guard; a read `check` cannot follow says so; neither stops loading.
#[test]
fn warnings_show_the_guard_an_answer_read_needs() {
    let files = common::repo_files().overlay(ConfigFiles::from_pairs([(
        "templates/droplet_status/chat.md.j2",
        concat!(
            "Status: {{ health.data.status }}\n",
            "{% if health.ok %}{% if health.data.steward %}Kept by {{ health.data.steward }}.{% endif %}\n",
            "{{ health.data.brain.status | default(\"?\") }} {{ health.data[slots.droplet] }}{% endif %}\n",
        ),
    )]));
    let compiled = config::load(&files).expect("warnings do not stop loading");
    let codes: Vec<&str> = compiled.warnings.iter().map(|d| d.code.as_str()).collect();
    assert!(codes.contains(&"W_UNGUARDED_READ") && codes.contains(&"W_UNCHECKED_READ"), "{codes:?}");
    let _names = common::snapshots_named_in_full();
    insta::assert_snapshot!(
        "config_errors__warnings_show_the_guard_an_answer_read_needs",
        compiled.warnings.render(|path| files.get(path))
    );
}

/// A query behind a `when:` may not run, leaving its name none: reading it unguarded is a warning.
#[test]
fn a_query_that_may_not_run_is_read_only_behind_a_guard() {
    let pipeline = common::repo_files().get("pipelines/dashboard_metrics.yaml").expect("shipped").replace(
        "      - { droplet: 2, endpoint: /metrics, as: metrics }",
        "  - when: \"status.ok\"\n    query:\n      - { droplet: 2, endpoint: /metrics, as: metrics }",
    );
    let files = common::repo_files().overlay(ConfigFiles::from_pairs([("pipelines/dashboard_metrics.yaml", pipeline)]));
    let compiled = config::load(&files).expect("warnings do not stop loading");
    let unguarded: Vec<String> = compiled
        .warnings
        .iter()
        .filter(|d| d.code.as_str() == "W_UNGUARDED_READ")
        .map(|d| format!("{}:{}: {}", d.file, d.position.line, d.message))
        .collect();
    assert!(
        unguarded.iter().any(|w| w.starts_with("templates/dashboard_metrics/chat.md.j2:13: `metrics.ok` fails when the step that makes `metrics` did not run")),
        "{unguarded:#?}"
    );
}

/// Found by trying the check as a steward: each line either fails at run time on some answer
/// (and must be warned about) or is safe (and must not be).
#[test]
fn unsafe_uses_of_an_answer_are_warned_about_and_safe_ones_are_not() {
    let lines = [
        // unsafe: the call may have brought no data
        (true, r#"{% if "steward" in health.data %}{{ health.data.steward }}{% endif %}"#),
        (true, "{{ health.data | length }}"),
        (true, "{% for key in health.data %}{{ key }}{% endfor %}"),
        // unsafe: a list that may be empty, a field that may be missing
        (true, "{% if health.ok and health.data.warnings is defined %}{{ health.data.warnings[0] }}{% endif %}"),
        (true, "{% if health.ok and health.data.warnings %}{{ health.data.warnings | first }}{% endif %}"),
        (true, "{% set d = health.data %}{% if health.ok %}{{ d.steward }}{% endif %}"),
        // safe
        (false, "{% if health.ok and health.data.steward | default(false) %}{{ health.data.steward }}{% endif %}"),
        (false, "{% if health.ok and health.data.warnings is sequence and health.data.warnings %}{{ health.data.warnings[0] }}{% endif %}"),
        (false, "{% if health.ok %}{% set d = health.data %}{{ d.steward | default(\"—\") }}{% endif %}"),
        (false, r#"{% if health.ok and "steward" in health.data %}{{ health.data.steward }}{% endif %}"#),
        (false, "{% if health.ok %}{% for w in health.data.warnings | default([]) %}{{ w }}{% endfor %}{% endif %}"),
    ];
    let template: String = lines.iter().map(|(_, line)| format!("{line}\n")).collect();
    let files =
        common::repo_files().overlay(ConfigFiles::from_pairs([("templates/droplet_status/chat.md.j2", template)]));
    let compiled = config::load(&files).expect("warnings do not stop loading");
    let warned: std::collections::BTreeSet<u32> = compiled
        .warnings
        .iter()
        .filter(|d| d.file == "templates/droplet_status/chat.md.j2")
        .map(|d| d.position.line)
        .collect();
    for (i, (unsafe_line, line)) in lines.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(
            warned.contains(&n),
            *unsafe_line,
            "line {n}: {line}\n{}",
            compiled.warnings.render(|p| files.get(p))
        );
    }
}

/// A sample answer whose status word no state lists is a warning pointing at the word, with the
/// fix; `statuses:` then reads it as unknown.
#[test]
fn a_sample_status_no_state_lists_is_a_warning() {
    let catalogue = common::repo_files().get("catalogue/droplets.yaml").expect("shipped").replace(
        "steward: onboarding-team\n          status: inactive",
        "steward: onboarding-team\n          status: warming",
    );
    assert!(catalogue.contains("status: warming"), "the edit applies to the shipped catalogue");
    let files = common::repo_files().overlay(ConfigFiles::from_pairs([("catalogue/droplets.yaml", catalogue)]));
    let compiled = config::load(&files).expect("warnings do not stop loading");
    let unlisted: Vec<String> = compiled
        .warnings
        .iter()
        .filter(|d| d.code.as_str() == "W_UNLISTED_STATUS")
        .map(|d| format!("{}:{}: {} ({})", d.file, d.position.line, d.message, d.help.clone().unwrap_or_default()))
        .collect();
    assert_eq!(unlisted.len(), 1, "{unlisted:#?}");
    assert!(
        unlisted[0].contains("the Onboarding's sample answer to GET /health reports the status `warming`")
            && unlisted[0].contains("add `warming` to the `words`"),
        "{unlisted:#?}"
    );
}
