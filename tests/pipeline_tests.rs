//! Runs the `tests:` block of every shipped pipeline: each message must select its intent, yield
//! the expected slots and produce a reply containing the expected text. All failures are
//! reported together, so one run shows everything a steward broke.

mod common;

use chat_orchestrator::session::Channel;

#[tokio::test(start_paused = true)]
async fn every_pipeline_passes_its_own_tests() {
    let config = common::compiled();
    let mut failures = Vec::new();
    let mut count = 0;
    for pipeline in &config.pipelines {
        for (i, test) in pipeline.tests.iter().enumerate() {
            count += 1;
            let engine = common::engine_with(config.clone(), vec![], Default::default());
            let reply = common::say(&engine, "pipeline-test", Channel::Chat, &test.say).await;
            let at = format!("pipelines/{}.yaml tests[{i}] ({:?})", pipeline.intent, test.say);
            if reply.intent != test.expect_intent {
                failures.push(format!(
                    "{at}: expected intent `{}`, got `{}` ({})",
                    test.expect_intent, reply.intent, reply.trace.intent.reason
                ));
            }
            for (slot, expected) in test.expect_slots.iter().flatten() {
                let got = reply.trace.slots.get(slot);
                if got != Some(expected) {
                    failures.push(format!("{at}: expected slot `{slot}` = {expected}, got {got:?}"));
                }
            }
            if let Some(needle) = &test.expect_reply_contains {
                if !reply.text.contains(needle.as_str()) {
                    failures.push(format!("{at}: reply does not contain {needle:?}:\n{}", reply.text));
                }
            }
        }
    }
    assert!(count >= 20, "the shipped pipelines should carry their own tests (found {count})");
    assert!(failures.is_empty(), "{} of {count} pipeline tests failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_shipped_pipeline_has_chat_and_voice_templates_and_tests() {
    let config = common::compiled();
    for pipeline in &config.pipelines {
        assert!(!pipeline.tests.is_empty(), "pipelines/{}.yaml has no tests: block", pipeline.intent);
    }
}
