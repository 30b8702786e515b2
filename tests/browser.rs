//! The playground in a real headless browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/playground.mjs`) against the server on a real port.
//!
//! Needs `/usr/bin/chromium` and `npm ci --prefix tests/browser`; `.ci/run` installs both and sets
//! `REQUIRE_BROWSER_TESTS=1`, so CI fails rather than skips when they are missing. On a machine
//! without them the test says so and passes without checking anything.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chat_orchestrator::api::AppState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_works_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let driver = root.join("tests/browser/node_modules/playwright-core");
    let missing: Vec<String> = [
        (!Path::new(&chromium).exists()).then(|| format!("{chromium} (apt-get install chromium)")),
        (!driver.exists()).then(|| "playwright-core (npm ci --prefix tests/browser)".to_owned()),
        Command::new("node").arg("--version").output().is_err().then(|| "node".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        let required = std::env::var("REQUIRE_BROWSER_TESTS").is_ok_and(|v| v == "1");
        assert!(!required, "browser test required but missing: {}", missing.join(", "));
        eprintln!("SKIPPED the browser test: missing {}", missing.join(", "));
        return;
    }

    let server = common::Running::start(AppState::new(Arc::new(common::engine(vec![])), None, None)).await;
    let base = format!("{}/", server.base);

    let screenshot = std::env::temp_dir().join("chat-orchestrator-playground.png");
    let script = root.join("tests/browser/playground.mjs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(script).arg(&base).arg(&screenshot).env("CHROMIUM", chromium).output()
    })
    .await
    .expect("join")
    .expect("node runs");
    server.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("playground: 3 passed, 0 failed"), "{stdout}");
}
