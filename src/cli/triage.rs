//! `triage`: walk through the messages the assistant did not understand well (from a running
//! server's `GET /api/admin/missed`, or a file saved from it) and turn a chosen one into an
//! example of the right intent, in that pipeline's file, keeping its comments and layout. The
//! configuration is checked after each change; a change that breaks it is undone.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::config::{self, ConfigFiles};

/// Where the missed messages come from.
pub enum Source {
    /// A running server, asked with the admin token.
    Server { url: String, token: String },
    /// A saved `GET /api/admin/missed` answer.
    File(PathBuf),
}

pub async fn run(config_dir: Option<PathBuf>, source: Source) -> anyhow::Result<ExitCode> {
    let (files, root) = super::config_files(config_dir.as_deref())?;
    let Some(root) = root else {
        anyhow::bail!(
            "triage adds examples to pipeline files: run it in the configuration folder, or pass --config DIR"
        );
    };
    let Some(compiled) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
    let report = match source {
        Source::Server { url, token } => super::admin_get(&url, "/api/admin/missed", &token).await?,
        Source::File(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!("{} is not a saved GET /api/admin/missed answer (JSON with `groups`)", path.display())
            })?
        }
    };
    let groups = report.get("groups").and_then(Value::as_array).cloned().unwrap_or_default();
    if groups.is_empty() {
        println!("Nothing to triage: no message was missed.");
        return Ok(ExitCode::SUCCESS);
    }
    let intents: Vec<String> = compiled.pipelines.iter().filter(|p| !p.fallback).map(|p| p.intent.clone()).collect();
    println!("{} group(s) of messages not understood well. Intents:", groups.len());
    for (i, intent) in intents.iter().enumerate() {
        println!("  {:>2}. {intent}", i + 1);
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut added = 0;
    for (n, group) in groups.iter().enumerate() {
        let examples: Vec<&str> =
            group.get("examples").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let Some(message) = examples.first() else { continue };
        let count = group.get("count").and_then(Value::as_u64).unwrap_or(1);
        let answered: Vec<String> = group
            .get("answered_by")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        println!("\n[{}/{}] said {count} time(s), answered by {}:", n + 1, groups.len(), answered.join(", "));
        for example in &examples {
            println!("    “{example}”");
        }
        print!("Example of which intent? (number or name; Enter skips, q stops) ");
        std::io::stdout().flush()?;
        let Some(answer) = lines.next().transpose()? else { break };
        let answer = answer.trim();
        if answer.is_empty() {
            continue;
        }
        if answer.eq_ignore_ascii_case("q") {
            break;
        }
        let chosen = answer
            .parse::<usize>()
            .ok()
            .and_then(|i| intents.get(i.wrapping_sub(1)))
            .or_else(|| intents.iter().find(|i| i.as_str() == answer));
        let Some(intent) = chosen else {
            println!("  no intent `{answer}`: skipped");
            continue;
        };
        match add_and_check(&root, intent, message) {
            Ok(now) => {
                added += 1;
                println!("  added to pipelines/{intent}.yaml; `check` passes; it now reads as {now}");
            }
            Err(problem) => println!("  not added: {problem}"),
        }
    }
    println!("\n{added} example(s) added. Run `chat-orchestrator test` to see what changed, then commit.");
    Ok(ExitCode::SUCCESS)
}

/// Adds `message` to the intent's examples, checks the whole configuration, and undoes the
/// change when it does not load. Returns what the message now resolves to.
fn add_and_check(root: &Path, intent: &str, message: &str) -> Result<String, String> {
    let path = root.join("pipelines").join(format!("{intent}.yaml"));
    let before = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let after = add_example(&before, message)?;
    std::fs::write(&path, &after).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let loaded = ConfigFiles::from_dir(root)
        .map_err(|e| e.to_string())
        .and_then(|files| config::load(&files).map_err(|error| error.render()));
    match loaded {
        Ok(compiled) => {
            let resolution = compiled.resolver.resolve(message);
            Ok(format!("`{}` (score {:.2})", resolution.intent, resolution.score))
        }
        Err(problems) => {
            let _ = std::fs::write(&path, before);
            Err(format!("the configuration would not load, so the file is as it was:\n{problems}"))
        }
    }
}

/// `yaml` with `example` added at the end of its top-level `examples:` list, written the way
/// the list's items are (indentation, quotes); a file without the list gets one after its
/// `description:`. Comments and everything else stay as they are.
pub fn add_example(yaml: &str, example: &str) -> Result<String, String> {
    // a JSON string is a YAML double-quoted scalar: quotes, backslashes, line breaks and
    // control characters all escaped
    let quoted = serde_json::to_string(example).map_err(|e| e.to_string())?;
    if already_an_example(yaml, example) {
        return Err(format!("“{example}” is already an example"));
    }
    let eol = if yaml.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = yaml.lines().collect();
    let newline = if yaml.ends_with('\n') { eol } else { "" };
    let Some(key) = lines.iter().position(|l| l.starts_with("examples:")) else {
        let Some(description) = lines.iter().position(|l| l.starts_with("description:")) else {
            return Err("the pipeline has neither `examples:` nor `description:` at the top level".to_owned());
        };
        // after the description and its continuation lines (a folded or multi-line value)
        let after = lines
            .iter()
            .enumerate()
            .skip(description + 1)
            .find(|(_, l)| !l.is_empty() && !l.starts_with(' '))
            .map(|(i, _)| i)
            .unwrap_or(lines.len());
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out.insert(after, format!("examples:{eol}  - {quoted}"));
        return Ok(out.join(eol) + newline);
    };
    if lines[key].trim_start_matches("examples:").trim().starts_with('[') {
        return Err("`examples:` is written as one [...] line; add the example there by hand".to_owned());
    }
    // the list's items: lines after the key that are items, their continuations or comments
    let mut last_item = None;
    let mut indent = "  ".to_owned();
    for (i, line) in lines.iter().enumerate().skip(key + 1) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if (!line.starts_with(' ') && !line.starts_with('-')) || line.starts_with("---") {
            break; // the next top-level key, or another document
        }
        if trimmed.starts_with("- ") {
            indent = line[..line.len() - trimmed.len()].to_owned();
        }
        last_item = Some(i);
    }
    let at = last_item.map(|i| i + 1).unwrap_or(key + 1);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(at, format!("{indent}- {quoted}"));
    Ok(out.join(eol) + newline)
}

/// Whether the pipeline's `examples:` already hold `example` (read as YAML, so quoting does
/// not matter).
fn already_an_example(yaml: &str, example: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Examples {
        #[serde(default)]
        examples: Vec<String>,
    }
    serde_saphyr::from_str::<Examples>(yaml).is_ok_and(|p| p.examples.iter().any(|e| e == example))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = "# a comment that stays\nintent: onboarding_progress\ndescription: How far onboarding has got\nexamples:\n  - \"onboarding progress\"\n  # how people ask\n  - \"how far is onboarding\"\nmatch:\n  any: ['\\bonboarding\\b']\n";

    #[test]
    fn an_example_goes_at_the_end_of_the_list_and_nothing_else_moves() {
        let after = add_example(PIPELINE, "any update on the \"onboarding\" thing").expect("added");
        assert_eq!(
            after,
            "# a comment that stays\nintent: onboarding_progress\ndescription: How far onboarding has got\nexamples:\n  - \"onboarding progress\"\n  # how people ask\n  - \"how far is onboarding\"\n  - \"any update on the \\\"onboarding\\\" thing\"\nmatch:\n  any: ['\\bonboarding\\b']\n"
        );
    }

    #[test]
    fn a_pipeline_without_examples_gets_the_list() {
        let after = add_example("intent: x\ndescription: X\nsteps: []\n", "do x").expect("added");
        assert_eq!(after, "intent: x\ndescription: X\nexamples:\n  - \"do x\"\nsteps: []\n");
    }

    #[test]
    fn an_example_already_there_is_not_added_twice() {
        assert!(add_example(PIPELINE, "how far is onboarding").is_err());
        assert!(add_example("intent: x\nexamples:\n  - 'it''s done'\n", "it's done").is_err());
    }

    #[test]
    fn line_breaks_stay_as_they_were_and_odd_characters_are_escaped() {
        let crlf = "intent: x\r\ndescription: X\r\nexamples:\r\n  - \"a\"\r\nsteps: []\r\n";
        let after = add_example(crlf, "tab\there\nand a line").expect("added");
        assert_eq!(
            after,
            "intent: x\r\ndescription: X\r\nexamples:\r\n  - \"a\"\r\n  - \"tab\\there\\nand a line\"\r\nsteps: []\r\n"
        );
        let folded = "intent: x\ndescription: >\n  A long\n  description\nsteps: []\n";
        assert_eq!(
            add_example(folded, "do x").expect("added"),
            "intent: x\ndescription: >\n  A long\n  description\nexamples:\n  - \"do x\"\nsteps: []\n"
        );
    }
}
