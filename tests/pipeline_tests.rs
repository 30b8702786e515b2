//! Runs the `tests:` block of every shipped pipeline: each message must select its intent, yield
//! the expected slots and produce a reply containing the expected text. All failures are
//! reported together, so one run shows everything a steward broke.

use crate::common;

use chat_orchestrator::fixture;

#[tokio::test]
async fn every_pipeline_passes_its_own_tests() {
    let (count, failures) = fixture::run_pipeline_tests(common::compiled(), None).await;
    assert!(count >= 20, "the shipped pipelines should carry their own tests (found {count})");
    let report: Vec<String> = failures.iter().map(|f| format!("{}: {}", f.at, f.problem)).collect();
    assert!(failures.is_empty(), "{} of {count} pipeline tests failed:\n{}", failures.len(), report.join("\n"));
}

#[test]
fn every_shipped_pipeline_has_tests() {
    for pipeline in &common::compiled().pipelines {
        assert!(!pipeline.tests.is_empty(), "pipelines/{}.yaml has no tests: block", pipeline.intent);
    }
}
