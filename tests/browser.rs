//! The playground in a real headless browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/playground.mjs`) against the server on a real port.
//!
//! Needs `/usr/bin/chromium` and `npm ci --prefix tests/browser`; `.ci/run` installs both and sets
//! `REQUIRE_BROWSER_TESTS=1`, so CI fails rather than skips when they are missing. On a machine
//! without them the test says so and passes without checking anything.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chat_orchestrator::api::AppState;
use futures::StreamExt;

/// The Chromium to drive, or `None` (after saying so) when this machine lacks what the browser
/// tests need and CI did not require them.
fn chromium() -> Option<String> {
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
        return None;
    }
    Some(chromium)
}

/// Runs `tests/browser/<script>` with node against `chromium`; fails the test if it fails, and
/// returns what it printed.
async fn run_script(script: &str, args: Vec<String>, chromium: String) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(script).args(args).env("CHROMIUM", chromium).output()
    })
    .await
    .expect("join")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_works_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };

    let server = common::Running::start(AppState::new(Arc::new(common::engine(vec![])), None, None)).await;
    let base = format!("{}/", server.base);

    let screenshot = std::env::temp_dir().join("chat-orchestrator-playground.png");
    let stdout = run_script("playground.mjs", vec![base, screenshot.display().to_string()], chromium).await;
    server.stop().await;
    assert!(stdout.contains("playground: 3 passed, 0 failed"), "{stdout}");
}

/// With a Registry key set, the playground needs a token: a test key pair is made here (openssl),
/// never the mesh's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_takes_a_token_when_the_server_wants_one() {
    use chat_orchestrator::auth::{load_public_key, Verifier};
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("registry.key");
    let public = dir.path().join("registry.pub");
    for args in [
        vec!["genrsa", "-out", key.to_str().expect("utf-8"), "2048"],
        vec!["rsa", "-pubout", "-in", key.to_str().expect("utf-8"), "-out", public.to_str().expect("utf-8")],
    ] {
        assert!(Command::new("openssl").args(&args).output().expect("openssl").status.success(), "openssl {args:?}");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = serde_json::json!({"iss": "registry.fullpotential.ai", "aud": "fullpotential.droplets", "sub": "6",
                                    "iat": now, "exp": now + 3600});
    let private = std::fs::read(&key).expect("key");
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&private).expect("private key"),
    )
    .expect("sign");
    let mut state = AppState::new(Arc::new(common::engine(vec![])), None, None);
    state.verifier = Arc::new(Verifier::Keys {
        registry: load_public_key("REGISTRY_PUBLIC_KEY", public.to_str().expect("utf-8")).expect("public key"),
        orchestrator: None,
        issuer: "registry.fullpotential.ai".to_owned(),
        audience: "fullpotential.droplets".to_owned(),
        max_lifetime: chat_orchestrator::auth::DEFAULT_MAX_LIFETIME,
    });
    let server = common::Running::start(state).await;
    let base = format!("{}/", server.base);
    let stdout = run_script("token.mjs", vec![base, token], chromium).await;
    server.stop().await;
    assert!(stdout.contains("token: 3 passed, 0 failed"), "{stdout}");
}

/// A broken template saved while the server runs: the old version keeps answering, and the
/// playground (development) says so with the located problem until a reload succeeds; its panel
/// of missed messages shows what was not understood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_says_when_an_edit_did_not_go_live() {
    let Some(chromium) = chromium() else { return };
    let dir = common::config_copy();
    let state = AppState::new(Arc::new(common::engine(vec![])), Some(dir.path().to_path_buf()), None);
    let reloader = state.reloader.clone();
    let server = common::Running::start(state).await;
    let base = format!("{}/", server.base);

    let template = dir.path().join("templates/goodbye/chat.md.j2");
    let good = std::fs::read_to_string(&template).expect("read");
    std::fs::write(&template, format!("{good}{{% if %}}\n")).expect("write");
    assert!(!reloader.reload("watcher").await.ok, "a broken template does not load");
    let stdout = run_script("stale.mjs", vec![base.clone(), "broken".to_owned()], chromium.clone()).await;
    assert!(stdout.contains("stale broken: 2 passed, 0 failed"), "{stdout}");

    std::fs::write(&template, good).expect("write");
    assert!(reloader.reload("watcher").await.ok, "the fixed template loads");
    let stdout = run_script("stale.mjs", vec![base, "fixed".to_owned()], chromium).await;
    server.stop().await;
    assert!(stdout.contains("stale fixed: 2 passed, 0 failed"), "{stdout}");
}

/// A streaming fake Gemini (`streamGenerateContent?alt=sse`, one event per piece, 300 ms apart).
#[poem::handler]
fn streaming_gemini() -> poem::Response {
    let pieces = ["Nothing needs ", "your attention: ", "all six droplets ", "are online."];
    let events = pieces.iter().enumerate().map(|(i, text)| {
        let mut event = serde_json::json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
                                           "modelVersion": "gemini-2.5-flash"});
        if i + 1 == pieces.len() {
            event["candidates"][0]["finishReason"] = serde_json::json!("STOP");
            event["usageMetadata"] = serde_json::json!({"promptTokenCount": 402, "candidatesTokenCount": 12, "totalTokenCount": 414});
        }
        format!("data: {event}\r\n\r\n")
    });
    let body = futures::stream::iter(events.collect::<Vec<_>>()).then(|event| async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Ok::<_, std::io::Error>(event)
    });
    poem::Response::builder().content_type("text/event-stream").body(poem::Body::from_bytes_stream(body))
}

/// A slow droplet and a streaming model: the playground shows the progress line, then the
/// answer growing, then the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_shows_progress_and_streamed_text_as_they_come() {
    let Some(chromium) = chromium() else { return };
    let app = poem::Route::new().at("/*path", poem::post(streaming_gemini));
    let (model_base, _stop) = common::serve_fake(app).await;
    let model = chat_orchestrator::llm::gemini::Gemini::new(&model_base, "test-gemini-key", "gemini-2.5-flash");
    let engine = chat_orchestrator::engine::Engine::new(
        common::compiled(),
        common::Slow::backend(14, "/system", std::time::Duration::from_millis(1500)),
        Arc::new(chat_orchestrator::session::MemoryStore::new(Default::default())),
    )
    .with_llm(Arc::new(chat_orchestrator::llm::Llm::new(Arc::new(model), std::time::Duration::from_secs(10), 2, 0.6)))
    .with_progress_after(std::time::Duration::from_millis(200));
    let server = common::Running::start(AppState::new(Arc::new(engine), None, None)).await;
    let stdout = run_script("streaming.mjs", vec![format!("{}/", server.base)], chromium).await;
    server.stop().await;
    assert!(stdout.contains("streaming: 3 passed, 0 failed"), "{stdout}");
}
