//! Every conversation fixture in `tests/fixtures/conversations/`, run on the chat and the voice
//! channel, with each reply snapshotted. A changed reply is a reviewed diff.

mod common;

use chat_orchestrator::session::Channel;
use chat_orchestrator::speech;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversation {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    channels: Option<Vec<Channel>>,
    #[serde(default)]
    faults: Vec<common::Fault>,
    turns: Vec<Said>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Said {
    say: String,
}

#[derive(Serialize)]
struct Exchange {
    say: String,
    intent: String,
    /// How the intent was chosen (rules, resumed, interrupt, fallback).
    source: String,
    reply: String,
}

#[test]
fn conversations() {
    let covered = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
    insta::glob!("fixtures/conversations/*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let conversation: Conversation = serde_saphyr::from_str(&text).expect("fixture is a valid conversation");
        let channels = conversation.channels.clone().unwrap_or(vec![Channel::Chat, Channel::Voice]);
        for channel in channels {
            let engine = common::engine(conversation.faults.clone());
            let exchanges: Vec<Exchange> = runtime.block_on(async {
                let mut out = Vec::new();
                for turn in &conversation.turns {
                    let reply = common::say(&engine, "fixture-session", channel, &turn.say).await;
                    if channel == Channel::Voice {
                        assert!(speech::is_speakable(&reply.text), "voice reply is not plain speech: {:?}", reply.text);
                    }
                    covered.lock().expect("not poisoned").insert(reply.intent.clone());
                    out.push(Exchange {
                        say: turn.say.clone(),
                        intent: reply.intent,
                        source: reply.trace.intent.source,
                        reply: reply.text,
                    });
                }
                out
            });
            insta::assert_yaml_snapshot!(channel.as_str(), exchanges);
        }
    });
    // every shipped intent is exercised by at least one conversation
    let covered = covered.into_inner().expect("not poisoned");
    let config = common::compiled();
    let uncovered: Vec<&str> =
        config.pipelines.iter().map(|p| p.intent.as_str()).filter(|intent| !covered.contains(*intent)).collect();
    assert!(uncovered.is_empty(), "intents no conversation fixture reaches: {uncovered:?}");
}
