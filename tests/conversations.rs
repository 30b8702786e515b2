//! Every conversation fixture in `tests/fixtures/conversations/`, run on the chat and the voice
//! channel, with each transcript snapshotted. A changed reply is a reviewed diff.

use crate::common;

use chat_orchestrator::fixture::{self, Conversation};
use chat_orchestrator::session::Channel;
use chat_orchestrator::speech;

#[test]
fn conversations() {
    let covered = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _names = common::snapshots_named_in_full();
    insta::glob!("fixtures/conversations/*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let conversation = Conversation::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for channel in conversation.channels() {
            let transcript = runtime.block_on(fixture::run(common::compiled(), &conversation, channel, None));
            for exchange in &transcript.0 {
                covered.lock().expect("not poisoned").insert(exchange.intent.clone());
                if channel == Channel::Voice {
                    assert!(
                        speech::is_speakable(&exchange.reply),
                        "voice reply is not plain speech: {:?}",
                        exchange.reply
                    );
                }
            }
            insta::assert_snapshot!(format!("conversations__{}", channel.as_str()), transcript.render());
        }
    });
    // every shipped intent is exercised by at least one conversation
    let covered = covered.into_inner().expect("not poisoned");
    let config = common::compiled();
    let uncovered: Vec<&str> =
        config.pipelines.iter().map(|p| p.intent.as_str()).filter(|intent| !covered.contains(*intent)).collect();
    assert!(uncovered.is_empty(), "intents no conversation fixture reaches: {uncovered:?}");
}
