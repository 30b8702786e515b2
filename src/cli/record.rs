//! `record SESSION_ID`: a conversation a running server had becomes a conversation fixture that
//! pins the droplet answers it got, so it replays the same forever in `test` and `cargo test`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::session::RecordedTurn;

/// Where fixtures live, relative to the configuration root.
const FIXTURES: &str = "tests/fixtures/conversations";

pub async fn run(
    config_dir: Option<PathBuf>,
    session: &str,
    url: &str,
    token: &str,
    name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (_, root) = super::config_files(config_dir.as_deref())?;
    let Some(root) = root else {
        anyhow::bail!("record writes a fixture into the configuration folder: run it there, or pass --config DIR");
    };
    let body = super::admin_get(url, &format!("/api/admin/recorded/{}", urlencode(session)), token).await?;
    let turns: Vec<RecordedTurn> =
        serde_json::from_value(body).context("the server's recorded turns are not in the expected form")?;
    let name = name.unwrap_or_else(|| format!("recorded_{}", file_safe(session)));
    let path = root.join(FIXTURES).join(format!("{}.yaml", file_safe(&name)));
    if path.exists() {
        anyhow::bail!("{} exists already: choose another --name", path.display());
    }
    std::fs::create_dir_all(path.parent().unwrap_or(&root)).with_context(|| format!("cannot create {FIXTURES}"))?;
    let text = fixture_yaml(session, &turns)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} ({} turn(s), {} droplet answer(s) pinned); `chat-orchestrator test` shows its transcript, `--accept {}` keeps it",
        path.display(),
        turns.len(),
        turns.iter().map(|t| t.calls.len()).sum::<usize>(),
        file_safe(&name)
    );
    Ok(ExitCode::SUCCESS)
}

/// The fixture: the turns as said, on the channel they were said on, with every droplet answer
/// in the order the calls were made.
fn fixture_yaml(session: &str, turns: &[RecordedTurn]) -> anyhow::Result<String> {
    let channel = turns.first().map(|t| t.channel.clone()).unwrap_or_else(|| "chat".to_owned());
    let answers: Vec<Value> = turns
        .iter()
        .flat_map(|t| t.calls.iter())
        .map(|c| {
            let mut answer =
                json!({"droplet": c.droplet, "endpoint": c.endpoint, "method": c.method, "outcome": c.outcome});
            for (key, value) in [
                ("data", c.data.clone()),
                ("kind", c.kind.clone().map(Value::from)),
                ("message", c.message.clone().map(Value::from)),
            ] {
                if let Some(value) = value {
                    answer[key] = value;
                }
            }
            answer
        })
        .collect();
    let mut fixture = json!({
        "description": format!("recorded from conversation {session} ({} turns, answers as the droplets gave them)", turns.len()),
        "channels": [channel],
        "answers": answers,
        "turns": turns.iter().map(|t| json!({"say": t.said})).collect::<Vec<_>>(),
    });
    let model: Vec<Value> =
        turns.iter().flat_map(|t| t.model.iter()).filter_map(|m| serde_json::to_value(m).ok()).collect();
    if !model.is_empty() {
        fixture["model"] = Value::Array(model);
    }
    // JSON is YAML: a fixture any YAML reader takes, values quoted exactly
    Ok(format!("{}\n", serde_json::to_string_pretty(&fixture)?))
}

fn file_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
