//! The benchmark harness: `cargo run --release -p bench` from the repository root.
//!
//! One run starts every server it measures as its own process — the framework baseline (a bare
//! poem JSON endpoint), our server on the embedded default, our server with a zero-latency fake
//! Gemini and fake Orchestrator — drives each with the same load generator, and reports
//! throughput, latency and memory as figures *and* as ratios to the baseline measured in the
//! same run. Results go to `bench/RESULTS.md` with the machine and the date.
//!
//! Options: `--seconds N` per HTTP scenario (10), `--connections N` (64), `--sessions N`
//! (100000), `--websockets N` (10000), `--out FILE` (bench/RESULTS.md).
//!
//! `bench load <base URL> <seconds> [message]` drives one running server (GET /health, or chat
//! turns with the message), for profiling it under `perf record`.

mod fakes;
mod load;
mod process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;

use load::{LoadResult, MakeRequest};
use process::{cpu_time, free_port, memory_kib};

struct Options {
    seconds: u64,
    connections: usize,
    sessions: u64,
    websockets: usize,
    out: PathBuf,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options {
            seconds: 10,
            connections: 64,
            sessions: 100_000,
            websockets: 10_000,
            out: process::repo_root().join("bench/RESULTS.md"),
        };
        let mut i = 1;
        while i < args.len() {
            let value = args.get(i + 1).with_context(|| format!("{} needs a value", args[i]))?;
            match args[i].as_str() {
                "--seconds" => options.seconds = value.parse().context("--seconds: a whole number")?,
                "--connections" => options.connections = value.parse().context("--connections: a whole number")?,
                "--sessions" => options.sessions = value.parse().context("--sessions: a whole number")?,
                "--websockets" => options.websockets = value.parse().context("--websockets: a whole number")?,
                "--out" => options.out = PathBuf::from(value),
                other => anyhow::bail!("unknown option {other}; see the top of bench/src/main.rs"),
            }
            i += 2;
        }
        Ok(options)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = || -> anyhow::Result<u16> { args.get(2).context("a port")?.parse().context("a port number") };
    match args.get(1).map(String::as_str) {
        Some("baseline") => return fakes::baseline(port()?).await,
        Some("fake-llm") => return fakes::fake_llm(port()?).await,
        Some("fake-orchestrator") => {
            return fakes::fake_orchestrator(port()?, args.get(3).context("our base URL")?.clone()).await
        }
        // `bench load <URL> <seconds> [message]`: drive one server (e.g. under `perf record`):
        // GET the URL, or with a message, chat turns on `<URL>/api/chat`
        Some("load") => {
            let url = args.get(2).context("a URL")?.clone();
            let seconds: u64 = args.get(3).context("seconds")?.parse().context("seconds: a whole number")?;
            let make = match args.get(4) {
                Some(message) => chat(&url, Box::leak(message.clone().into_boxed_str())),
                None => get(url),
            };
            let result = load::run(make, 64, Duration::from_secs(1), Duration::from_secs(seconds)).await;
            println!(
                "{:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                result.per_second(),
                result.p50_ms(),
                result.p99_ms(),
                result.errors
            );
            return Ok(());
        }
        _ => {}
    }
    let options = Options::parse(&args)?;
    let report = run(&options).await?;
    std::fs::write(&options.out, &report).with_context(|| format!("cannot write {}", options.out.display()))?;
    println!("{report}");
    eprintln!("written to {}", options.out.display());
    Ok(())
}

/// Closed-loop rounds per scenario; the median round is reported.
const ROUNDS: usize = 3;

/// The round with the median throughput, with its CPU time.
fn median(mut rounds: Vec<(LoadResult, Duration)>) -> (LoadResult, Duration) {
    rounds.sort_by(|a, b| a.0.per_second().total_cmp(&b.0.per_second()));
    let middle = rounds.len() / 2;
    rounds.swap_remove(middle)
}

/// One row of the throughput table.
struct Row {
    name: &'static str,
    result: LoadResult,
    peak_rss_kib: u64,
    note: String,
}

async fn run(options: &Options) -> anyhow::Result<String> {
    eprintln!("building the server (release)…");
    let server_binary = process::build_server()?;
    let me = std::env::current_exe()?;
    let (warmup, duration) = (Duration::from_secs(2), Duration::from_secs(options.seconds));
    let mut rows = Vec::new();

    eprintln!("cold start (5 starts)");
    let mut starts = Vec::new();
    for _ in 0..5 {
        let port = free_port()?;
        let server = process::start(&server_binary, &["serve"], &our_env(port), port, "/health").await?;
        starts.push(server.ready_after);
    }
    starts.sort();
    let cold_start = starts[starts.len() / 2];

    // The baseline and our server run side by side; the closed-loop scenarios alternate over
    // ROUNDS rounds and each keeps its median round, so a noisy moment on a shared machine
    // cannot favour one side.
    let base_port = free_port()?;
    let base_server = process::start(&me, &["baseline", &base_port.to_string()], &[], base_port, "/json").await?;
    let port = free_port()?;
    let server = process::start(&server_binary, &["serve"], &our_env(port), port, "/health").await?;
    let pid = server.child.id();
    let base_url = format!("{}/json", base_server.base);
    let health_url = format!("{}/health", server.base);
    let mut rounds: [Vec<(LoadResult, Duration)>; 4] = Default::default();
    for round in 1..=ROUNDS {
        eprintln!("round {round} of {ROUNDS}: baseline, /health, chat (one droplet), chat (fan-out)");
        let makes: [MakeRequest; 4] = [
            get(base_url.clone()),
            get(health_url.clone()),
            chat(&server.base, "status of the registry"),
            chat(&server.base, "show me all droplets"),
        ];
        for (i, make) in makes.into_iter().enumerate() {
            let cpu_before = cpu_time(pid);
            let result = load::run(make, options.connections, warmup, duration).await;
            rounds[i].push((result, cpu_time(pid).saturating_sub(cpu_before)));
        }
    }
    let [base_rounds, health_rounds, chat_rounds, fan_rounds] = rounds;
    let baseline = Row {
        name: "baseline: poem GET /json",
        result: median(base_rounds).0,
        peak_rss_kib: memory_kib(base_server.child.id()).1,
        note: format!("median of {ROUNDS} rounds"),
    };
    rows.push(Row {
        name: "ours: GET /health",
        result: median(health_rounds).0,
        peak_rss_kib: memory_kib(pid).1,
        note: format!("median of {ROUNDS} rounds"),
    });
    for (name, chat_rounds) in [
        ("ours: POST /api/chat, rules (one droplet)", chat_rounds),
        ("ours: POST /api/chat, rules (7-droplet fan-out)", fan_rounds),
    ] {
        let (result, cpu) = median(chat_rounds);
        let note = format!("median of {ROUNDS} rounds; {:.0} µs CPU per turn", per_turn_us(cpu, &result, warmup));
        rows.push(Row { name, result, peak_rss_kib: memory_kib(pid).1, note });
    }
    // latency at a fixed rate: half the baseline's throughput, for the baseline and for us
    let half = baseline.result.per_second() / 2.0;
    eprintln!("paced /health and baseline at {half:.0} requests/s");
    for (name, url, server_pid) in [
        ("baseline: poem GET /json at 50% of its rate", base_url.clone(), base_server.child.id()),
        ("ours: GET /health at 50% of baseline rate", health_url.clone(), pid),
    ] {
        let result = load::run_at_rate(get(url), options.connections, half, warmup, duration).await;
        rows.push(Row {
            name,
            result,
            peak_rss_kib: memory_kib(server_pid).1,
            note: format!("paced at {half:.0} requests/s; latency from when each request was due"),
        });
    }
    drop(server);
    drop(base_server);

    eprintln!("our server: /api/chat on the LLM path (fake Gemini, fake Orchestrator)");
    let llm_note;
    {
        let (llm_port, orch_port, port) = (free_port()?, free_port()?, free_port()?);
        let ours = format!("http://127.0.0.1:{port}");
        let llm = process::start(&me, &["fake-llm", &llm_port.to_string()], &[], llm_port, "/health").await?;
        let orchestrator =
            process::start(&me, &["fake-orchestrator", &orch_port.to_string(), &ours], &[], orch_port, "/health")
                .await?;
        let mut env = our_env(port);
        env.extend([
            ("GEMINI_API_KEY", "bench-key".to_owned()),
            ("GEMINI_BASE_URL", llm.base.clone()),
            ("ORCHESTRATOR_URL", orchestrator.base.clone()),
            ("ORCHESTRATOR_TOKEN", "bench-token".to_owned()),
        ]);
        let server = process::start(&server_binary, &["serve"], &env, port, "/health").await?;
        let pid = server.child.id();
        let fake_pids = [llm.child.id(), orchestrator.child.id()];
        let (cpu_before, fakes_before) = (cpu_time(pid), fake_pids.map(cpu_time));
        let result = load::run(
            chat(&server.base, "which of our machines are alive at the moment"),
            options.connections,
            warmup,
            duration,
        )
        .await;
        let cpu = cpu_time(pid).saturating_sub(cpu_before);
        let fakes_cpu: Duration =
            fake_pids.iter().zip(fakes_before).map(|(p, before)| cpu_time(*p).saturating_sub(before)).sum();
        let ours_us = per_turn_us(cpu, &result, warmup);
        let fakes_us = per_turn_us(fakes_cpu, &result, warmup);
        llm_note = format!(
            "per turn: our server {ours_us:.0} µs CPU, the two fakes {fakes_us:.0} µs CPU together (one classification, one relayed query and its relayed answer)"
        );
        rows.push(Row {
            name: "ours: POST /api/chat, LLM path",
            result,
            peak_rss_kib: memory_kib(pid).1,
            note: format!("{ours_us:.0} µs CPU per turn (fakes: {fakes_us:.0} µs)"),
        });
    }

    eprintln!("{} WebSockets", options.websockets);
    let websockets = websockets(&server_binary, options.websockets).await?;

    eprintln!("memory per session ({} sessions)", options.sessions);
    let sessions = sessions(&server_binary, options.sessions, options.connections).await?;

    eprintln!("hot reload of 200 pipelines");
    let reload = reload_200(&server_binary).await?;

    Ok(report(options, &baseline, &rows, cold_start, &starts, &llm_note, &websockets, &sessions, &reload))
}

/// Settings for our server under load: rate limits off (one client address sends everything),
/// no file watching, warnings-only logs, the repository's configuration.
fn our_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("LOG_LEVEL", "warn".to_owned()),
        ("RATE_LIMIT_CHAT", "0".to_owned()),
        ("RATE_LIMIT_WEBSOCKET", "0".to_owned()),
        ("RATE_LIMIT_PROCESS", "0".to_owned()),
        ("CONFIG_WATCH", "false".to_owned()),
        ("CONFIG_DIR", process::repo_root().display().to_string()),
    ]
}

fn get(url: String) -> MakeRequest {
    MakeRequest::get(&url)
}

/// A chat turn on one of 16 sessions per connection (turns on one session are serialised, as
/// they are for a real user).
fn chat(base: &str, message: &'static str) -> MakeRequest {
    MakeRequest::post_json(&format!("{base}/api/chat"), move |worker, n| {
        json!({"message": message, "session_id": format!("bench-{worker}-{}", n % 16)}).to_string()
    })
}

/// CPU per measured turn; the warm-up's share is taken out by rate.
fn per_turn_us(cpu: Duration, result: &LoadResult, warmup: Duration) -> f64 {
    let measured_share = result.elapsed.as_secs_f64() / (result.elapsed + warmup).as_secs_f64();
    cpu.as_secs_f64() * measured_share * 1e6 / result.requests.max(1) as f64
}

struct WebSocketRun {
    wanted: usize,
    opened: usize,
    open_time: Duration,
    rss_open_kib: u64,
    replies: usize,
    reply_latency: Histogram<u64>,
    still_open: usize,
    peak_rss_kib: u64,
}

async fn websockets(server_binary: &Path, wanted: usize) -> anyhow::Result<WebSocketRun> {
    let port = free_port()?;
    let server = process::start(server_binary, &["serve"], &our_env(port), port, "/health").await?;
    let pid = server.child.id();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(wanted);
    // open in waves, each socket reading its welcome frame
    for wave in (0..wanted).collect::<Vec<_>>().chunks(250) {
        let opened = futures::future::join_all(wave.iter().map(|_| async {
            let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.ok()?;
            socket.next().await?.ok()?;
            Some(socket)
        }))
        .await;
        sockets.extend(opened.into_iter().flatten());
    }
    let open_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open_kib = memory_kib(pid).0;

    // every connection asks one question at once, and waits for its answer
    let latencies = futures::future::join_all(sockets.iter_mut().enumerate().map(|(i, socket)| async move {
        let frame = json!({"type": "message", "content": "status of the registry", "session_id": format!("ws-{i}")});
        let sent = Instant::now();
        socket.send(tokio_tungstenite::tungstenite::Message::text(frame.to_string())).await.ok()?;
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                if text.contains("\"type\":\"message\"") {
                    return Some(sent.elapsed());
                }
            }
        }
        None
    }))
    .await;
    let mut reply_latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut replies = 0;
    for latency in latencies.into_iter().flatten() {
        replies += 1;
        let _ = reply_latency.record(latency.as_micros().max(1) as u64);
    }
    // held a while longer, then each must still answer a ping
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pongs = futures::future::join_all(sockets.iter_mut().map(|socket| async move {
        socket.send(tokio_tungstenite::tungstenite::Message::Ping(Vec::new().into())).await.ok()?;
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, tokio_tungstenite::tungstenite::Message::Pong(_)) {
                return Some(());
            }
        }
        None
    }))
    .await;
    let still_open = pongs.iter().flatten().count();
    let peak_rss_kib = memory_kib(pid).1;
    Ok(WebSocketRun {
        wanted,
        opened: sockets.len(),
        open_time,
        rss_open_kib,
        replies,
        reply_latency,
        still_open,
        peak_rss_kib,
    })
}

struct SessionRun {
    sessions: u64,
    rss_start_kib: u64,
    rss_10k_kib: u64,
    rss_all_kib: u64,
    per_session_bytes: f64,
    elapsed: Duration,
}

async fn sessions(server_binary: &Path, wanted: u64, connections: usize) -> anyhow::Result<SessionRun> {
    let port = free_port()?;
    let server = process::start(server_binary, &["serve"], &our_env(port), port, "/health").await?;
    let pid = server.child.id();
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let url = format!("{}/api/chat", server.base);
    // warm the allocator and caches with a few turns on one session
    for _ in 0..200 {
        client.post(&url).json(&json!({"message": "status of the registry", "session_id": "warm"})).send().await?;
    }
    let rss_start_kib = memory_kib(pid).0;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut rss_10k_kib = 0;
    for stop_at in [wanted.min(10_000), wanted] {
        let workers = (0..connections).map(|_| {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= stop_at {
                        next.fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                    let body = json!({"message": "status of the registry", "session_id": format!("mem-{n}")});
                    let _ = client.post(&url).json(&body).send().await.map(|r| r.bytes());
                }
            })
        });
        futures::future::join_all(workers).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if stop_at == wanted.min(10_000) {
            rss_10k_kib = memory_kib(pid).0;
        }
    }
    let elapsed = started.elapsed();
    let rss_all_kib = memory_kib(pid).0;
    let per_session_bytes = (rss_all_kib.saturating_sub(rss_start_kib) as f64 * 1024.0) / wanted.max(1) as f64;
    Ok(SessionRun { sessions: wanted, rss_start_kib, rss_10k_kib, rss_all_kib, per_session_bytes, elapsed })
}

struct ReloadRun {
    pipelines: usize,
    times: Vec<Duration>,
}

async fn reload_200(server_binary: &Path) -> anyhow::Result<ReloadRun> {
    let root = process::repo_root();
    let dir = std::env::temp_dir().join(format!("bench-reload-{}", uuid::Uuid::new_v4()));
    for folder in ["pipelines", "templates", "catalogue"] {
        copy_dir(&root.join(folder), &dir.join(folder))?;
    }
    std::fs::copy(root.join("udc_config.json"), dir.join("udc_config.json"))?;
    let shipped = std::fs::read_dir(dir.join("pipelines"))?.count();
    let source = std::fs::read_to_string(root.join("pipelines/droplet_status.yaml"))?;
    for n in shipped..200 {
        let intent = format!("generated_{n:03}");
        // each copy's patterns are its own, as 200 stewards' pipelines would be: a cache of
        // compiled patterns must not make the copies free
        let text = source
            .replace("intent: droplet_status", &format!("intent: {intent}"))
            .replace(r"'\b(status|health)\b'", &format!(r"'\b(status|health|probe{n:03})\b'"))
            .replace(r"'\bsystem\b'", &format!(r"'\b(system|mesh{n:03})\b'"));
        std::fs::write(dir.join("pipelines").join(format!("{intent}.yaml")), text)?;
    }
    let pipelines = std::fs::read_dir(dir.join("pipelines"))?.count();
    let port = free_port()?;
    let mut env = our_env(port);
    env.retain(|(name, _)| *name != "CONFIG_DIR");
    env.extend([("CONFIG_DIR", dir.display().to_string()), ("ADMIN_TOKEN", "bench-admin".to_owned())]);
    let server = process::start(server_binary, &["serve"], &env, port, "/health").await?;
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let response =
            client.post(format!("{}/api/admin/reload", server.base)).bearer_auth("bench-admin").send().await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(response.status().is_success(), "reload failed: {}", response.text().await.unwrap_or_default());
        times.push(elapsed);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    Ok(ReloadRun { pipelines, times })
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let command = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{cores} cores ({model}), {memory} RAM, Linux {}, {}, commit {}",
        command("uname", &["-r"]),
        command("rustc", &["-V"]),
        command("git", &["rev-parse", "--short", "HEAD"])
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    options: &Options,
    baseline: &Row,
    rows: &[Row],
    cold_start: Duration,
    starts: &[Duration],
    llm_note: &str,
    ws: &WebSocketRun,
    sessions: &SessionRun,
    reload: &ReloadRun,
) -> String {
    let date =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let base_rps = baseline.result.per_second();
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmark results\n");
    let _ = writeln!(out, "Written by `cargo run --release -p bench` (bench/src/main.rs). One run, {date}.\n");
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(
        out,
        "- Load: {} keep-alive connections per HTTP scenario, {} s measured after 2 s of warm-up; the baseline and our server run side by side and the closed-loop scenarios alternate over three rounds (median reported); the load generator (hyper client connections, one per worker; it agrees with wrk within about 10%) runs on the same cores as the server, as it does for the baseline.",
        options.connections, options.seconds
    );
    let _ = writeln!(out, "- Our server: release build, embedded-default configuration from the repository, `LOG_LEVEL=warn`, rate limits off (one client address sends everything).\n");
    let _ = writeln!(out, "## Throughput and latency\n");
    let _ = writeln!(out, "| scenario | requests/s | vs baseline | p50 | p99 | errors | peak RSS | notes |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for row in std::iter::once(baseline).chain(rows) {
        let r = &row.result;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0}% | {:.2} ms | {:.2} ms | {} | {} | {} |",
            row.name,
            r.per_second(),
            100.0 * r.per_second() / base_rps,
            r.p50_ms(),
            r.p99_ms(),
            r.errors,
            mib(row.peak_rss_kib),
            row.note
        );
    }
    let find = |prefix: &str| rows.iter().find(|r| r.name.starts_with(prefix));
    let _ = writeln!(out, "\nLLM path: {llm_note}.\n");

    let _ = writeln!(out, "## WebSockets\n");
    let _ = writeln!(
        out,
        "{} of {} connections opened in {:.1} s (each read its welcome frame); server RSS with all open: {}. \
         Every connection then asked one question at once: {} replies, p50 {:.1} ms, p99 {:.1} ms. \
         After 5 s more, {} answered a ping. Peak RSS {}.\n",
        ws.opened,
        ws.wanted,
        ws.open_time.as_secs_f64(),
        mib(ws.rss_open_kib),
        ws.replies,
        ws.reply_latency.value_at_quantile(0.5) as f64 / 1000.0,
        ws.reply_latency.value_at_quantile(0.99) as f64 / 1000.0,
        ws.still_open,
        mib(ws.peak_rss_kib),
    );

    let _ = writeln!(out, "## Sessions and memory\n");
    let _ = writeln!(
        out,
        "{} sessions (one two-message turn each) created in {:.1} s. RSS: {} at start, {} with 10,000 sessions, {} with all. \
         **{:.0} bytes per stored session.**\n",
        sessions.sessions,
        sessions.elapsed.as_secs_f64(),
        mib(sessions.rss_start_kib),
        mib(sessions.rss_10k_kib),
        mib(sessions.rss_all_kib),
        sessions.per_session_bytes
    );

    let _ = writeln!(out, "## Reload and start-up\n");
    let median = reload.times[reload.times.len() / 2];
    let _ = writeln!(
        out,
        "Hot reload of {} pipelines (`POST /api/admin/reload`, parse + schema + compile + swap): median {:.1} ms, slowest {:.1} ms of {} reloads.\n",
        reload.pipelines,
        median.as_secs_f64() * 1000.0,
        reload.times.last().map(|t| t.as_secs_f64() * 1000.0).unwrap_or(0.0),
        reload.times.len()
    );
    let _ = writeln!(
        out,
        "Cold start to ready (process spawn to the first 200 from `/health`): median {:.1} ms of 5 starts ({}).\n",
        cold_start.as_secs_f64() * 1000.0,
        starts.iter().map(|s| format!("{:.1}", s.as_secs_f64() * 1000.0)).collect::<Vec<_>>().join(", ")
    );

    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(out, "A missed target is explained, with the profile behind it, in bench/PROFILE.md.\n");
    let _ = writeln!(out, "| target | figure | verdict |");
    let _ = writeln!(out, "|---|---|---|");
    if let (Some(health), Some(paced), Some(base_paced)) =
        (find("ours: GET /health"), find("ours: GET /health at 50%"), find("baseline: poem GET /json at 50%"))
    {
        let share = health.result.per_second() / base_rps;
        let (p99, base_p99) = (paced.result.p99_ms(), base_paced.result.p99_ms());
        let _ = writeln!(
            out,
            "| `/health` ≥ 80% of baseline; p99 at 50% of the baseline's rate within 1 ms of the baseline's | {:.0}% at saturation; p99 {:.2} ms paced against the baseline's {:.2} ms ({:+.2} ms) | {} |",
            share * 100.0,
            p99,
            base_p99,
            p99 - base_p99,
            verdict(share >= 0.8 && p99 - base_p99 <= 1.0)
        );
    }
    for (label, prefix) in
        [("one droplet", "ours: POST /api/chat, rules (one"), ("fan-out", "ours: POST /api/chat, rules (7")]
    {
        if let Some(chat) = find(prefix) {
            let share = chat.result.per_second() / base_rps;
            let _ = writeln!(
                out,
                "| chat, rules path ({label}) ≥ 50% of baseline | {:.1}% | {} |",
                share * 100.0,
                verdict(share >= 0.5)
            );
        }
    }
    if let Some(median) = reload.times.get(reload.times.len() / 2) {
        let _ = writeln!(
            out,
            "| reload of {} pipelines < 300 ms | median {:.1} ms | {} |",
            reload.pipelines,
            median.as_secs_f64() * 1000.0,
            verdict(*median < Duration::from_millis(300))
        );
    }
    let _ = writeln!(out, "| LLM path limited by the fake, not by us | {llm_note} | see figures |");
    let _ = writeln!(
        out,
        "| RSS < 50 MB with 10,000 sessions | {} | {} |",
        mib(sessions.rss_10k_kib),
        verdict(sessions.rss_10k_kib < 50 * 1024)
    );
    let _ = writeln!(
        out,
        "| 10,000 WebSockets held on 2 cores | {} opened, {} answered, {} still open | {} |",
        ws.opened,
        ws.replies,
        ws.still_open,
        verdict(ws.opened == ws.wanted && ws.still_open == ws.wanted && ws.wanted >= 10_000)
    );
    let _ = writeln!(
        out,
        "| cold start to ready < 100 ms | {:.1} ms | {} |",
        cold_start.as_secs_f64() * 1000.0,
        verdict(cold_start < Duration::from_millis(100))
    );
    out
}
