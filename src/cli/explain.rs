//! `explain "<message>"`: how a message is taken, as a turn on the bundled sample data (nothing
//! leaves this machine, nothing is kept): which intent answers and why (or why the fallback
//! does: no intent serves its action, a near tie), the runner-up candidates, how an answer to a
//! waiting question was read (consent, refusal, correction, another request, …), where each slot
//! value came from, and the steps that ran. `--after` says the earlier messages of the
//! conversation first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::engine::{Engine, Reply, Turn};
use crate::session::{Channel, MemoryStore, SessionLimits};
use crate::steps::Step;

/// How many runner-up candidates to show.
const RUNNERS_UP: usize = 3;

pub async fn run(
    config_dir: Option<PathBuf>,
    after: &[String],
    message: &str,
    voice: bool,
) -> anyhow::Result<ExitCode> {
    let (files, _root) = super::config_files(config_dir.as_deref())?;
    let Some(config) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
    let config = Arc::new(config);
    let sessions = Arc::new(MemoryStore::new(SessionLimits::default()));
    let engine = Engine::new(config.clone(), Arc::new(crate::backend::SampleBackend), sessions);
    let session = uuid::Uuid::new_v4().to_string();
    let channel = if voice { Channel::Voice } else { Channel::Chat };
    let say = |text: &str| Turn {
        session_id: Some(session.clone()),
        channel,
        text: text.to_owned(),
        trace_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    for earlier in after {
        let reply = engine.handle(say(earlier)).await?;
        let state = reply.trace.dialogue.as_ref().map(|d| format!(" ({})", d.state.as_str())).unwrap_or_default();
        println!("after    {earlier:?} → {}{state}", reply.intent);
    }
    if !after.is_empty() {
        println!();
    }
    let reply = engine.handle(say(message)).await?;
    println!("{message:?}\n");
    describe_turn(&config, message, &reply);
    let Some(pipeline) = config.pipeline(&reply.intent) else { return Ok(ExitCode::FAILURE) };
    println!("\nsteps");
    for (i, guarded) in pipeline.steps.iter().enumerate() {
        let condition = guarded.when.as_ref().map(|w| format!("when `{w}`: ")).unwrap_or_default();
        let ran = reply.trace.steps.iter().find(|s| s.index as usize == i);
        let note = |step: &crate::trace::StepTrace| step.note.clone().unwrap_or_default();
        let mark = match ran {
            Some(step) if step.ran => format!("  → {}", note(step)),
            Some(step) => format!("  (skipped: {})", note(step)),
            None => String::new(),
        };
        println!("  {}. {condition}{}{mark}", i + 1, guarded.step.describe(&config.catalogue));
    }
    for call in &reply.trace.calls {
        println!("call     {} {} on {} (sample data)", call.method, call.endpoint, call.droplet);
    }
    println!("\nreply\n{}", indent(&reply.text));
    answer_fields(&config, pipeline);
    Ok(ExitCode::SUCCESS)
}

/// The intent that answered and why, the candidates, the answer's reading, the slots and where
/// each came from.
fn describe_turn(config: &crate::config::CompiledConfig, message: &str, reply: &Reply) {
    let why = &reply.trace.intent;
    let resolution = config.resolver.resolve(message);
    // chosen by the rules: what decided (a pattern, an example, a keyword); otherwise how
    let how = match (why.source, resolution.evidence) {
        (crate::trace::IntentSource::Rules, Some(evidence)) if resolution.intent == why.id => {
            serde_json::to_value(evidence).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        }
        (source, _) => source.as_str().to_owned(),
    };
    println!("intent   {} (score {:.3}, {how})", why.id, why.score);
    println!("why      {}", why.reason);
    for joined in &reply.trace.joined {
        println!("and      {} ({}): {}", joined.id, joined.source.as_str(), joined.reason);
    }
    for candidate in resolution.candidates.iter().filter(|c| c.intent != why.id).take(RUNNERS_UP) {
        println!("also     {} {:.3}: {}", candidate.intent, candidate.score, candidate.reason);
    }
    if let Some(dialogue) = &reply.trace.dialogue {
        if let Some(answer) = dialogue.answer {
            println!("answer   {} — {}", answer.as_str(), answer_meaning(answer));
        }
        let asking = dialogue.asking.as_ref().map(|slot| format!(", asking for {slot}")).unwrap_or_default();
        println!("action   {} is {}{asking}", dialogue.intent, dialogue.state.as_str());
        for change in &dialogue.changed {
            println!("changed  {change}");
        }
    }
    for note in &reply.trace.notes {
        println!("note     {note}");
    }
    let Some(pipeline) = config.pipeline(&why.id).filter(|p| !p.slots.is_empty()) else { return };
    let values = reply.trace.slots.as_object();
    let asking = reply.trace.dialogue.as_ref().and_then(|d| d.asking.as_deref());
    let required = pipeline.first_extract().map(|e| e.required.as_slice()).unwrap_or_default();
    println!("\nslots");
    let width = pipeline.slots.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for slot in &pipeline.slots {
        let name = slot.name.as_str();
        let state = match values.and_then(|v| v.get(name)) {
            Some(value) => {
                let source = reply.trace.slot_sources.get(name).map(|s| format!("  ← {s}")).unwrap_or_default();
                format!("= {value}{source}")
            }
            None if asking == Some(name) => format!("missing, asked for {}", slot.prompt),
            None if required.iter().any(|r| r == name) => format!("missing, would ask for {}", slot.prompt),
            None => "not given (optional)".to_owned(),
        };
        println!("  {name:width$}  {state}");
    }
}

/// What each reading of an answer means for the action, in a steward's words.
fn answer_meaning(answer: crate::trace::AnswerReading) -> &'static str {
    use crate::trace::AnswerReading::*;
    match answer {
        Value => "a value for the detail asked about",
        Consent => "yes to the read-back: the action goes ahead",
        Refusal => "no to the read-back: nothing is sent",
        Correction => "a value already given was changed: read back again",
        AnotherRequest => "a request of its own: answered while the action waits (or, said with a no, instead of it)",
        Wait => "wait: the action still waits and is read back again",
        Contradiction => "a yes together with a no, a wait or a stop: asked again",
        Unclear => "nothing usable: asked again",
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n")
}

/// The fields each query result's `data` has, so a steward writing the reply sees what to read.
fn answer_fields(config: &crate::config::CompiledConfig, pipeline: &crate::pipeline::Pipeline) {
    for guarded in &pipeline.steps {
        let Step::Query(query) = &guarded.step else { continue };
        for call in &query.calls {
            let first = config.catalogue.droplets.iter().find_map(|d| {
                let endpoint = d.endpoint(&call.endpoint)?;
                let method = call.method.as_deref().unwrap_or(&endpoint.method);
                d.endpoint_for(&call.endpoint, method)
            });
            let Some(endpoint) = first else { continue };
            match &endpoint.response {
                Some(shape) => {
                    println!(
                        "\n`{}.data` ({} {}, {})",
                        call.name,
                        endpoint.method,
                        endpoint.path,
                        shape.root().type_label()
                    );
                    for line in shape.root().field_lines() {
                        let sure = if line.always { "always" } else { "may be missing" };
                        let path =
                            if line.path.starts_with('[') { line.path.clone() } else { format!(".{}", line.path) };
                        println!("  {path}  {}, {sure}: {}", line.type_label, line.description);
                    }
                }
                None => println!("\n`{}.data` ({} {}): no declared shape", call.name, endpoint.method, endpoint.path),
            }
        }
    }
}

/// `answers`: the catalogue's answer shapes as the markdown reference.
pub fn answers(config_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (files, _root) = super::config_files(config_dir.as_deref())?;
    let Some(config) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
    print!("{}", config.catalogue.answers_reference());
    Ok(ExitCode::SUCCESS)
}
