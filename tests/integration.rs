//! The integration tests, one binary: each module is a file beside this one (`api.rs`, …), and
//! `common/` is their shared harness. One binary links the whole stack once instead of once per
//! file. Snapshots keep the names they had as separate binaries (`conversations__chat@….snap`):
//! see [`common::snapshot_names`].

mod common;

mod adversarial;
mod api;
mod browser;
mod cli;
mod config_errors;
mod conversations;
mod dialogues;
mod engine;
mod lifecycle;
mod llm;
mod mesh;
mod pipeline_tests;
mod properties;
mod reload;
mod replicas;
mod schemas;
mod session_store;
mod shutdown;
mod stewards_guide;
mod streaming;
mod udc;
mod utterances;
mod ws;

/// With `autotests = false` a test file that is not declared above would never run: every file
/// beside this one must be one of its modules.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let root = std::fs::read_to_string(dir.join("integration.rs")).expect("this file");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests folder").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(module) = name.strip_suffix(".rs") {
            if module != "integration" && !root.contains(&format!("\nmod {module};\n")) {
                missing.push(name);
            }
        }
    }
    assert!(missing.is_empty(), "declare these in tests/integration.rs as `mod …;`: {missing:?}");
}
