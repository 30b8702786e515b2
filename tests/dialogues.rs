//! Whole dialogues as users hold them (`tests/dialogues/*.yaml`, written by people who never saw
//! the pipelines): every state-changing droplet call made from the first turn to the last is
//! recorded with its body, and must be exactly the one the dialogue expects — or none at all.

use crate::common;

use std::sync::{Arc, Mutex};

use chat_orchestrator::backend::{DropletBackend, DropletRequest, Outcome, SampleBackend};
use chat_orchestrator::engine::{Engine, Turn};
use chat_orchestrator::session::{Channel, MemoryStore, SessionLimits};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dialogue {
    channel: Channel,
    turns: Vec<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expect {
    Call { call: String, body: Map<String, Value> },
    Nothing(String),
}

/// A command as sent: `POST /register` and its body.
type Sent = (String, Option<Value>);

/// The bundled sample answers, with every command recorded on its way through.
struct Recording {
    inner: SampleBackend,
    commands: Arc<Mutex<Vec<Sent>>>,
}

impl DropletBackend for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        if !request.method.eq_ignore_ascii_case("GET") {
            let sent = (format!("{} {}", request.method, request.endpoint), request.body.clone());
            self.commands.lock().expect("not poisoned").push(sent);
        }
        self.inner.call(request)
    }
}

/// Runs one dialogue in a fresh session; returns the commands it sent.
async fn hold(dialogue: &Dialogue) -> (Vec<Sent>, Vec<String>) {
    let commands = Arc::new(Mutex::new(Vec::new()));
    let recorded = commands.clone();
    let backend = Arc::new(Recording { inner: SampleBackend, commands: recorded });
    let engine = Engine::new(common::compiled(), backend, Arc::new(MemoryStore::new(SessionLimits::default())));
    let mut transcript = Vec::new();
    for text in &dialogue.turns {
        let turn = Turn {
            session_id: Some("dialogue".to_owned()),
            channel: dialogue.channel,
            text: text.clone(),
            trace_id: "dialogue".to_owned(),
            ..Turn::default()
        };
        let reply = engine.handle(turn).await.expect("a reply");
        transcript.push(format!("> {text}\n{}", reply.text));
    }
    let sent = commands.lock().expect("not poisoned").clone();
    (sent, transcript)
}

#[tokio::test]
async fn every_dialogue_sends_exactly_the_command_it_should() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogues");
    let mut held = 0;
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&folder).expect("tests/dialogues") {
        let path = entry.expect("entry").path();
        let dialogues: Vec<Dialogue> = serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("readable"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for dialogue in &dialogues {
            held += 1;
            let (sent, transcript) = hold(dialogue).await;
            let right = match &dialogue.expect {
                Expect::Nothing(none) => {
                    assert_eq!(none, "none", "{}: `expect` is a call or `none`", path.display());
                    sent.is_empty()
                }
                Expect::Call { call, body } => match sent.as_slice() {
                    [(made, Some(Value::Object(sent_body)))] => {
                        made == call && body.iter().all(|(k, v)| sent_body.get(k) == Some(v))
                    }
                    _ => false,
                },
            };
            if !right {
                wrong.push(format!("expected {:?}, sent {sent:?}\n{}", dialogue.expect, transcript.join("\n")));
            }
        }
    }
    assert!(held >= 30, "the dialogues are missing");
    assert!(wrong.is_empty(), "{} of {held} dialogues sent the wrong thing:\n\n{}", wrong.len(), wrong.join("\n\n"));
}
