//! `test --against DIR|GIT_REF`: what this configuration would change for real traffic,
//! compared with another one, offline. The recorded turns (from a running server, or a saved
//! `GET /api/admin/recorded` answer) are replayed on both with the droplet answers they got —
//! no droplet is called — and the differences listed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;

use crate::config::{self, ConfigFiles};
use crate::session::RecordedTurn;

/// Where the recorded traffic comes from.
pub enum Traffic {
    Server { url: String, token: String },
    File(PathBuf),
}

pub async fn run(config_dir: Option<PathBuf>, against: &str, traffic: Traffic) -> anyhow::Result<ExitCode> {
    let (files, root) = super::config_files(config_dir.as_deref())?;
    let Some(candidate) = super::load_or_report(&files) else { return Ok(ExitCode::FAILURE) };
    let (baseline_files, baseline_name) = baseline(root.as_deref(), against)?;
    let Some(baseline) = super::load_or_report(&baseline_files) else { return Ok(ExitCode::FAILURE) };
    let turns = recorded(traffic).await?;
    let report = crate::replay::compare(Arc::new(baseline), Arc::new(candidate), &turns).await;
    println!("against {baseline_name}: {}", report.summary());
    for moved in &report.moves {
        println!("  {} → {} ×{}: “{}”", moved.from, moved.to, moved.count, moved.examples.join("”, “"));
    }
    for change in &report.replies {
        println!(
            "  reply to “{}” changes:\n    before: {}\n    now:    {}",
            change.said,
            one_line(&change.before),
            one_line(&change.after)
        );
    }
    if report.calls_not_recorded > 0 {
        println!(
            "  {} droplet call(s) the recorded turns did not make were answered as failed",
            report.calls_not_recorded
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 120 {
        format!("{}…", flat.chars().take(120).collect::<String>())
    } else {
        flat
    }
}

/// The other configuration: a folder, or a git ref of the checkout the configuration is in.
fn baseline(root: Option<&Path>, against: &str) -> anyhow::Result<(ConfigFiles, String)> {
    let folder = Path::new(against);
    if folder.is_dir() {
        return Ok((ConfigFiles::from_dir(folder)?, folder.display().to_string()));
    }
    let root = root
        .context("--against a git ref needs the configuration on disk: run it in the checkout, or pass --config DIR")?;
    let checkout = tempfile::tempdir().context("cannot make a temporary folder")?;
    // the ref's configuration folders, exactly as committed
    let archive = Command::new("git")
        .args(["archive", "--format=tar", against, "--"])
        .args(config::CONFIG_FOLDERS.iter().chain([&config::UDC_CONFIG_FILE]).filter(|p| root.join(p).exists()))
        .current_dir(root)
        .output()
        .context("cannot run git")?;
    if !archive.status.success() {
        anyhow::bail!(
            "`{against}` is neither a folder nor a git ref of {}: {}",
            root.display(),
            String::from_utf8_lossy(&archive.stderr).trim()
        );
    }
    let mut untar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(checkout.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    {
        use std::io::Write as _;
        untar.stdin.take().context("tar's input")?.write_all(&archive.stdout)?;
    }
    anyhow::ensure!(untar.wait()?.success(), "the configuration of `{against}` could not be unpacked");
    let files = ConfigFiles::from_dir(checkout.path())?;
    Ok((files, format!("git {against}")))
}

async fn recorded(traffic: Traffic) -> anyhow::Result<Vec<RecordedTurn>> {
    let body: Value = match traffic {
        Traffic::File(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
        }
        Traffic::Server { url, token } => super::admin_get(&url, "/api/admin/recorded", &token).await?,
    };
    serde_json::from_value(body).context("the recorded turns are not in the form GET /api/admin/recorded gives")
}
