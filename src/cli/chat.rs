//! `chat`: a terminal conversation with the embedded engine, or with a running server (`--url`).
//! Replaces the seed's `cli_chat.py`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::backend::SampleBackend;
use crate::engine::{Engine, Turn};
use crate::session::{Channel, MemoryStore, SessionLimits};

const HELP: &str = "commands: /voice, /chat (switch channel), /trace (show why), /new (new session), /quit";

/// Where turns go.
enum Target {
    Embedded(Engine),
    Server { client: reqwest::Client, url: String },
}

pub async fn run(config_dir: Option<PathBuf>, url: Option<String>, voice: bool) -> anyhow::Result<ExitCode> {
    let target = match url {
        Some(url) => Target::Server { client: reqwest::Client::new(), url: url.trim_end_matches('/').to_owned() },
        None => {
            let (files, _root) = super::config_files(config_dir.as_deref())?;
            let Some(config) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
            let sessions = Arc::new(MemoryStore::new(SessionLimits::default()));
            Target::Embedded(Engine::new(Arc::new(config), Arc::new(SampleBackend), sessions))
        }
    };
    let mut channel = if voice { Channel::Voice } else { Channel::Chat };
    let mut session: Option<String> = None;
    let mut show_trace = false;
    println!("Chat Orchestrator — {HELP}");
    let stdin = std::io::stdin();
    loop {
        print!("{}> ", channel.as_str());
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            println!();
            break;
        }
        let text = line.trim();
        match text {
            "" => continue,
            "/quit" | "/exit" => break,
            "/voice" => channel = Channel::Voice,
            "/chat" => channel = Channel::Chat,
            "/trace" => {
                show_trace = !show_trace;
                println!("trace {}", if show_trace { "on" } else { "off" });
            }
            "/new" => {
                session = None;
                println!("new session");
            }
            "/help" => println!("{HELP}"),
            _ => match say(&target, channel, session.clone(), text).await {
                Ok((reply, session_id, trace)) => {
                    session = Some(session_id);
                    println!("{reply}\n");
                    if show_trace {
                        println!("{}\n", serde_json::to_string_pretty(&trace)?);
                    }
                }
                Err(error) => println!("! {error:#}\n"),
            },
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One turn: the reply text, the session id to continue with, and the trace.
async fn say(
    target: &Target,
    channel: Channel,
    session: Option<String>,
    text: &str,
) -> anyhow::Result<(String, String, Value)> {
    match target {
        Target::Embedded(engine) => {
            let turn = Turn {
                session_id: session,
                channel,
                text: text.to_owned(),
                metadata: Default::default(),
                trace_id: uuid::Uuid::new_v4().to_string(),
                preview_other_channel: false,
                owner: Default::default(),
                request_id: None,
                events: None,
            };
            let reply = engine.handle(turn).await?;
            Ok((reply.text, reply.session_id, serde_json::to_value(&reply.trace)?))
        }
        Target::Server { client, url } => {
            if channel == Channel::Voice {
                anyhow::bail!("the server's chat endpoint answers on the chat channel only; use /chat");
            }
            let response = client
                .post(format!("{url}/api/chat"))
                .json(&json!({"message": text, "session_id": session, "trace": true}))
                .send()
                .await
                .with_context(|| format!("cannot reach {url}"))?;
            let status = response.status();
            let body: Value = response.json().await.context("the server did not answer with JSON")?;
            if !status.is_success() {
                let message = body["error"]["message"].as_str().unwrap_or("no message");
                anyhow::bail!("{status}: {message}");
            }
            let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
            Ok((field("response"), field("session_id"), body["trace"].clone()))
        }
    }
}
