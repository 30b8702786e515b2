//! `explain "<message>"`: which intent a message resolves to and why, the runner-up candidates,
//! the slots it yields and the steps that would run. Nothing is called and nothing is stored.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Map;

use crate::steps::Step;

/// How many runner-up candidates to show.
const RUNNERS_UP: usize = 3;

pub fn run(config_dir: Option<PathBuf>, message: &str) -> anyhow::Result<ExitCode> {
    let (files, _root) = super::config_files(config_dir.as_deref())?;
    let Some(config) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
    let resolution = config.resolver.resolve(message);
    println!("{message:?}\n");
    let evidence = resolution
        .evidence
        .map(|e| format!(", {}", serde_json::to_value(e).unwrap_or_default().as_str().unwrap_or_default()))
        .unwrap_or_default();
    println!("intent   {} (score {:.3}{evidence})", resolution.intent, resolution.score);
    println!("why      {}", resolution.reason);
    for candidate in resolution.candidates.iter().filter(|c| c.intent != resolution.intent).take(RUNNERS_UP) {
        println!("also     {} {:.3}: {}", candidate.intent, candidate.score, candidate.reason);
    }

    let Some(pipeline) = config.pipeline(&resolution.intent) else { return Ok(ExitCode::FAILURE) };
    let first_extract = pipeline.first_extract();
    let mut slots = Map::new();
    let filled = first_extract.map(|extract| {
        let reader = extract.reader(pipeline, &config.catalogue, config.resolver.analyzer());
        reader.fill(&config.resolver.analyzer().read(message), crate::slots::fill::Said::Fresh, &mut slots)
    });
    if !pipeline.slots.is_empty() {
        println!("\nslots");
        let width = pipeline.slots.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for slot in &pipeline.slots {
            let state = match (slots.get(&slot.name), filled.as_ref().and_then(|f| f.errors.get(&slot.name))) {
                (Some(value), _) => format!("= {value}"),
                (None, Some(problem)) => format!("not accepted: {problem}"),
                (None, None) if filled.as_ref().is_some_and(|f| f.missing.contains(&slot.name)) => {
                    format!("missing, would ask for {}", slot.prompt)
                }
                (None, None) => "not given (optional)".to_owned(),
            };
            println!("  {:width$}  {state}", slot.name);
        }
    }

    println!("\nsteps");
    for (i, guarded) in pipeline.steps.iter().enumerate() {
        let condition = guarded.when.as_ref().map(|w| format!("when `{w}`: ")).unwrap_or_default();
        let mut line = format!("  {}. {condition}{}", i + 1, guarded.step.describe(&config.catalogue));
        if let (Step::Extract(_), Some(filled)) = (&guarded.step, filled.as_ref()) {
            if !filled.missing.is_empty() {
                line.push_str(&format!("  → stops here and asks for: {}", filled.missing.join(", ")));
            }
        }
        println!("{line}");
    }
    answer_fields(&config, pipeline);
    Ok(ExitCode::SUCCESS)
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
