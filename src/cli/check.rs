//! `check`: validate the whole configuration and report every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::Format;
use crate::config;

pub fn run(config_dir: Option<PathBuf>, format: Format) -> anyhow::Result<ExitCode> {
    let (files, _root) = super::config_files(config_dir.as_deref())?;
    let result = config::load(&files);
    // the configuration's own warnings, and the examples another intent would win
    let warnings = result.as_ref().ok().map(|compiled| {
        let mut all = compiled.warnings.clone();
        for warning in config::example_warnings(compiled).0 {
            all.push(warning);
        }
        all.sort();
        all
    });
    match format {
        Format::Json => {
            let report = match &result {
                Ok(compiled) => json!({
                    "ok": true,
                    "origin": files.origin,
                    "pipelines": compiled.pipelines.len(),
                    "droplets": compiled.catalogue.droplets.len(),
                    "problems": [],
                    "warnings": warnings,
                }),
                Err(error) => json!({"ok": false, "origin": files.origin, "problems": error.diagnostics}),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Format::Text => match &result {
            Ok(compiled) => {
                let warnings = warnings.unwrap_or_default();
                if !warnings.is_empty() {
                    println!("{}\n", warnings.render(|path| files.get(path)));
                }
                println!(
                    "✓ {}: {} pipelines, {} droplets, {} templates — no problems{}",
                    files.origin,
                    compiled.pipelines.len(),
                    compiled.catalogue.droplets.len(),
                    files.under("templates", ".j2").count(),
                    match warnings.len() {
                        0 => String::new(),
                        n => format!(", {n} warning{}", if n == 1 { "" } else { "s" }),
                    }
                );
            }
            Err(error) => println!("{}", error.render()),
        },
    }
    Ok(if result.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
