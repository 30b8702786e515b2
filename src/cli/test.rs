//! `test`: run every pipeline's `tests:` block and every conversation fixture, and show each
//! reply that differs from its accepted snapshot as a diff.
//!
//! Fixtures live in `tests/fixtures/conversations/` and their snapshots in `tests/snapshots/`
//! under the configuration root: the same files `cargo test` checks, so a steward without a
//! Rust toolchain and CI agree on what passes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use similar::TextDiff;

use super::Accept;
use crate::coverage::Coverage;
use crate::fixture::{self, Conversation};

const FIXTURES: &str = "tests/fixtures/conversations";
const SNAPSHOTS: &str = "tests/snapshots";
/// Corpora here have an accepted snapshot (`tests/snapshots/utterances__utterance_corpora@<file>.snap`), which
/// `cargo test` checks too; a corpus elsewhere (a held-out set) is only measured.
const CORPORA: &str = "tests/utterances";

/// `test --utterances FILE`: accuracy, the per-intent table, and what changed since the
/// accepted snapshot.
pub async fn utterances(config_dir: Option<PathBuf>, file: &Path, accept: bool) -> anyhow::Result<ExitCode> {
    let (files, root) = super::config_files(config_dir.as_deref())?;
    let Some(config) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let corpus = crate::utterances::parse(&text)
        .map_err(|e| anyhow::anyhow!("{} is not an utterance corpus: {e}", file.display()))?;
    let report = crate::utterances::evaluate(Arc::new(config), corpus).await;
    print!("{}", report.summary());
    let lines = report.lines();
    let wrong: Vec<&str> = lines.lines().filter(|l| l.trim_start().starts_with('✗')).collect();
    if !wrong.is_empty() {
        println!(
            "
not understood as meant ({}):",
            wrong.len()
        );
        for line in &wrong {
            println!("  {line}");
        }
    }
    let in_repo = root.as_ref().and_then(|r| std::fs::canonicalize(r.join(CORPORA)).ok()).is_some_and(|corpora| {
        std::fs::canonicalize(file).ok().and_then(|f| f.parent().map(|p| p == corpora)).unwrap_or(false)
    });
    let Some(root) = root.filter(|_| in_repo) else {
        println!(
            "
(no accepted snapshot: the corpus is not in {CORPORA}/)"
        );
        return Ok(ExitCode::SUCCESS);
    };
    let name = file.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let snapshot_path = root.join(SNAPSHOTS).join(format!("utterances__utterance_corpora@{name}.snap"));
    let accepted = std::fs::read_to_string(&snapshot_path).ok();
    match accepted.as_deref().map(fixture::snapshot_contents) {
        Some(before) if before.trim_end() == lines.trim_end() => {
            println!(
                "
understood as in the accepted snapshot"
            );
            Ok(ExitCode::SUCCESS)
        }
        before => {
            match before {
                Some(before) => {
                    println!(
                        "
understood differently since the accepted snapshot:"
                    );
                    let (before, after) = (format!("{}\n", before.trim_end()), format!("{}\n", lines.trim_end()));
                    let diff = TextDiff::from_lines(&before, &after);
                    print!("{}", diff.unified_diff().context_radius(0).header("accepted", "now"));
                }
                None => println!(
                    "
no accepted snapshot yet"
                ),
            }
            if accept {
                if let Some(parent) = snapshot_path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let header = format!(
                    "---\nsource: tests/utterances.rs\nexpression: report.lines()\ninput_file: {CORPORA}/{name}\n---\n"
                );
                std::fs::write(&snapshot_path, format!("{header}{}\n", lines.trim_end()))?;
                println!("accepted → {}", snapshot_path.display());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("(run with --accept to accept, after reading the diff)");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

pub async fn run(config_dir: Option<PathBuf>, accept: Accept, coverage: bool) -> anyhow::Result<ExitCode> {
    let (files, root) = super::config_files(config_dir.as_deref())?;
    let Some(config) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
    let config = Arc::new(config);
    let mut passed = 0usize;
    let mut failed = 0usize;

    let coverage = coverage.then(|| Arc::new(Coverage::default()));
    let (count, failures) = fixture::run_pipeline_tests(config.clone(), coverage.as_ref()).await;
    for failure in &failures {
        println!("✗ {}\n    {}", failure.at, failure.problem.replace('\n', "\n    "));
    }
    let failed_tests = failures.iter().map(|f| &f.at).collect::<std::collections::BTreeSet<_>>().len();
    passed += count - failed_tests;
    failed += failed_tests;
    println!("pipeline tests: {} of {count} passed", count - failed_tests);

    match root {
        None => println!("conversation fixtures: none (the configuration is the embedded copy; use --config DIR)"),
        Some(root) => {
            let (ok, bad) = conversations(&root, config.clone(), accept, coverage.as_ref()).await?;
            passed += ok;
            failed += bad;
        }
    }
    if let Some(coverage) = &coverage {
        let (gaps, summary) = coverage.report(&config);
        println!("\ncoverage: {}", summary.line());
        if gaps.is_empty() {
            println!("every intent, step, `when:` branch, template and call outcome is reached");
        } else {
            println!("not reached by any test ({}):", gaps.len());
            for gap in &gaps {
                println!("  {}: {}", gap.at, gap.what);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs every fixture on each of its channels and compares with the snapshot.
async fn conversations(
    root: &Path,
    config: Arc<crate::config::CompiledConfig>,
    accept: Accept,
    coverage: Option<&Arc<Coverage>>,
) -> anyhow::Result<(usize, usize)> {
    let folder = root.join(FIXTURES);
    let mut names: Vec<String> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect(),
        Err(_) => {
            println!("conversation fixtures: none in {}", folder.display());
            return Ok((0, 0));
        }
    };
    names.sort();
    if let Accept::Only(asked) = &accept {
        // a misspelt name must not quietly accept nothing
        let unknown: Vec<&String> = asked
            .iter()
            .filter(|a| {
                let (name, channel) = Accept::split(a);
                !names.iter().any(|n| n.trim_end_matches(".yaml") == name)
                    || channel.is_some_and(|c| c != "chat" && c != "voice")
            })
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = names.iter().map(|n| n.trim_end_matches(".yaml")).collect();
            anyhow::bail!(
                "--accept names no conversation fixture (with `:chat` or `:voice` for one channel) called {}; they are: {}",
                unknown.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", "),
                known.join(", ")
            );
        }
    }
    let (mut ok, mut bad) = (0, 0);
    for name in names {
        let text = std::fs::read_to_string(folder.join(&name))?;
        let conversation = match Conversation::parse(&text) {
            Ok(conversation) => conversation,
            Err(error) => {
                println!("✗ {FIXTURES}/{name}: not a valid conversation: {error}");
                bad += 1;
                continue;
            }
        };
        for channel in conversation.channels() {
            let transcript = fixture::run(config.clone(), &conversation, channel, coverage).await.render();
            let snapshot_path = root.join(SNAPSHOTS).join(fixture::snapshot_name(&name, channel));
            let accepted = std::fs::read_to_string(&snapshot_path).ok();
            let label = format!("{name} ({})", channel.as_str());
            match accepted.as_deref().map(fixture::snapshot_contents) {
                Some(expected) if expected.trim_end() == transcript.trim_end() => ok += 1,
                expected => {
                    match expected {
                        Some(expected) => {
                            println!("✗ {label}: the replies changed");
                            let (before, after) =
                                (format!("{}\n", expected.trim_end()), format!("{}\n", transcript.trim_end()));
                            let diff = TextDiff::from_lines(&before, &after);
                            print!("{}", diff.unified_diff().context_radius(2).header("accepted", "now"));
                        }
                        None => println!("✗ {label}: new conversation, no accepted snapshot yet\n{transcript}"),
                    }
                    if accept.covers(&name, channel.as_str()) {
                        write_snapshot(&snapshot_path, &name, &transcript)?;
                        println!("  accepted → {}", snapshot_path.display());
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                }
            }
        }
    }
    println!(
        "conversation fixtures: {ok} passed, {bad} failed{}",
        if bad > 0 {
            " (after reading each diff: --accept NAME… accepts those fixtures, --accept all of them)"
        } else {
            ""
        }
    );
    Ok((ok, bad))
}

/// Writes a snapshot in the format `cargo test` (insta) reads.
fn write_snapshot(path: &Path, fixture_name: &str, transcript: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let header = format!(
        "---\nsource: tests/conversations.rs\nexpression: transcript.render()\ninput_file: {FIXTURES}/{fixture_name}\n---\n"
    );
    std::fs::write(path, format!("{header}{}\n", transcript.trim_end()))?;
    Ok(())
}
