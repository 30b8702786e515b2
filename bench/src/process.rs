//! Servers under test as child processes, and what `/proc` says about them (RSS, peak RSS, CPU).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A server running as a child process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Spawn to the first 200 from `/health` (or the baseline's `/json`).
    pub ready_after: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `program` with `args` and `env`, and waits until `ready_path` answers 200.
pub async fn start(
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    port: u16,
    ready_path: &str,
) -> anyhow::Result<Server> {
    let started = Instant::now();
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().with_context(|| format!("cannot start {}", program.display()))?;
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Server { child, base: base.clone(), ready_after: Duration::ZERO };
    let client = reqwest::Client::new();
    let url = format!("{base}{ready_path}");
    loop {
        if let Ok(response) = client.get(&url).send().await {
            if response.status().is_success() {
                server.ready_after = started.elapsed();
                return Ok(server);
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{} did not become ready within 30 s", program.display());
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("{} exited during start-up: {status}", program.display());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name, which is in parentheses and may contain spaces
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let total = ticks(11) + ticks(12);
    Duration::from_secs_f64(total as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // `getconf CLK_TCK`; 100 on every Linux we run on
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The repository root (the harness lives in `bench/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".."))
}

/// Builds the server in release mode and returns its path.
pub fn build_server() -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--release", "--quiet", "-p", "chat-orchestrator"])
        .current_dir(&root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the server failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    Ok(target.join("release").join("chat-orchestrator"))
}
