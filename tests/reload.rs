//! Hot reload through all three triggers, over real HTTP: a valid edit goes live for new
//! requests, a broken edit changes nothing, and requests during reloads all succeed on exactly
//! one version.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::api::AppState;
use chat_orchestrator::config::{self, ConfigFiles};
use serde_json::{json, Value};

const TOKEN: &str = "test-admin-token";
const WELCOME: &str = "👋 You're welcome! Come back any time — say *help* to see what I can do.";
const GLAD: &str = "👋 Glad to help! Come back any time — say *help* to see what I can do.";

fn set_goodbye(dir: &Path, text: &str) {
    std::fs::write(dir.join("templates/goodbye/chat.md.j2"), format!("{text}\n")).expect("write template");
}

struct Server {
    running: common::Running,
    state: AppState,
}

impl std::ops::Deref for Server {
    type Target = common::Running;
    fn deref(&self) -> &common::Running {
        &self.running
    }
}

impl Server {
    async fn start(dir: &Path, token: Option<&str>) -> Server {
        let files = ConfigFiles::from_dir(dir).expect("readable");
        let compiled = Arc::new(config::load(&files).expect("valid configuration"));
        let engine = Arc::new(common::engine_with(compiled, vec![], Default::default()));
        let mut state = AppState::new(engine, Some(dir.to_path_buf()), token.map(str::to_owned));
        // thousands of requests from one address: rate limits are not what this tests
        state.rate_limits = chat_orchestrator::api::rate_limit::RateLimits::new(0, 0);
        Server { running: common::Running::start(state.clone()).await, state }
    }

    async fn goodbye(&self) -> (String, u64) {
        let reply: Value = self
            .client
            .post(format!("{}/api/chat", self.base))
            .json(&json!({"message": "bye", "trace": true}))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        (
            reply["response"].as_str().unwrap_or_default().to_owned(),
            reply["trace"]["config_version"].as_u64().unwrap_or(0),
        )
    }

    async fn admin(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (status, response.json().await.unwrap_or(Value::Null), challenge)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request_and_mix_no_versions() {
    let dir = common::config_copy();
    let server = Arc::new(Server::start(dir.path(), Some(TOKEN)).await);
    let reloading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (server, reloading) = (server.clone(), reloading.clone());
            tokio::spawn(async move {
                let (mut last_version, mut versions_seen, mut requests) = (0, std::collections::BTreeSet::new(), 0);
                // keep asking for as long as reloads happen (bounded, should the reloads hang)
                while reloading.load(std::sync::atomic::Ordering::SeqCst) && requests < 20_000 {
                    let (reply, version) = server.goodbye().await;
                    assert!(reply == WELCOME || reply == GLAD, "a reply from no single version: {reply:?}");
                    assert!(version >= last_version, "versions only move forward for a client");
                    last_version = version;
                    versions_seen.insert(version);
                    requests += 1;
                }
                (requests, versions_seen.len())
            })
        })
        .collect();
    for round in 0..8 {
        set_goodbye(dir.path(), if round % 2 == 0 { GLAD } else { WELCOME });
        let (status, body, _) = server.admin(reqwest::Method::POST, "/api/admin/reload", Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], round + 2);
    }
    reloading.store(false, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        let (requests, versions) = client.await.expect("every request answered");
        assert!(
            requests > 8 && versions > 1,
            "requests ran during the reloads ({requests} requests, {versions} versions)"
        );
    }
    let (reply, version) = server.goodbye().await;
    assert_eq!((reply.as_str(), version), (WELCOME, 9));
}

#[tokio::test]
async fn a_broken_edit_changes_nothing_and_is_reported() {
    let dir = common::config_copy();
    let server = Server::start(dir.path(), Some(TOKEN)).await;
    set_goodbye(dir.path(), "{{ oops");
    let (status, body, _) = server.admin(reqwest::Method::POST, "/api/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(body["error"]["details"]["problems"][0]["code"], "E_TEMPLATE_SYNTAX");
    assert_eq!(body["error"]["details"]["problems"][0]["file"], "templates/goodbye/chat.md.j2");
    assert!(body["error"]["details"]["report"].as_str().unwrap_or_default().contains("^"), "{body}");

    assert_eq!(server.goodbye().await, (WELCOME.to_owned(), 1), "still the first version");
    let (status, config, _) = server.admin(reqwest::Method::GET, "/api/admin/config", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(config["version"], 1);
    assert_eq!(config["reloads_failed"], 1);
    assert_eq!(config["last_attempt"]["ok"], false);
    assert_eq!(config["last_attempt"]["trigger"], "admin");
    assert!(config["intents"].as_array().is_some_and(|i| i.contains(&json!("goodbye"))));
    let metrics = reqwest::get(format!("{}/metrics", server.running.base)).await.expect("scrape");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains(r#"config_reloads_total{outcome="rejected"}"#), "{metrics}");
}

#[tokio::test]
async fn admin_endpoints_need_the_token_and_are_off_without_one() {
    let dir = common::config_copy();
    let guarded = Server::start(dir.path(), Some(TOKEN)).await;
    let (status, body, challenge) = guarded.admin(reqwest::Method::POST, "/api/admin/reload", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")), "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let (status, _, _) = guarded.admin(reqwest::Method::GET, "/api/admin/config", Some("wrong-token")).await;
    assert_eq!(status, 401);

    let open = Server::start(dir.path(), None).await;
    let (status, body, _) = open.admin(reqwest::Method::POST, "/api/admin/reload", Some("anything")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("ADMIN_TOKEN"));
}

#[tokio::test]
async fn the_file_watcher_reloads_after_an_edit() {
    let dir = common::config_copy();
    let server = Server::start(dir.path(), None).await;
    let _watcher = server.state.reloader.spawn_watcher().expect("watch").expect("a folder to watch");
    set_goodbye(dir.path(), GLAD);
    let mut seen = server.goodbye().await;
    for _ in 0..100 {
        if seen.0 == GLAD {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = server.goodbye().await;
    }
    assert_eq!(seen, (GLAD.to_owned(), 2));
    assert_eq!(server.state.reloader.state().last_attempt.map(|a| a.trigger), Some("watcher".to_owned()));
}

/// Before an edit goes live, the recorded turns are replayed on it (no droplet called): a dry
/// run says which messages would pick another intent and which replies would change, and
/// installs nothing; with `RELOAD_MAX_INTENT_CHANGES` a reload beyond it is refused unless forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_says_what_it_changes_for_recorded_traffic_before_it_goes_live() {
    let dir = common::config_copy();
    let files = ConfigFiles::from_dir(dir.path()).expect("readable");
    let compiled = Arc::new(config::load(&files).expect("valid configuration"));
    let engine = Arc::new(common::engine_with(compiled, vec![], Default::default()));
    let mut state = AppState::new(engine.clone(), Some(dir.path().to_path_buf()), Some(TOKEN.to_owned()));
    state.reloader = Arc::new(
        chat_orchestrator::reload::Reloader::new(engine, Some(dir.path().to_path_buf()))
            .with_max_intent_changes(Some(0)),
    );
    let server = Server { running: common::Running::start(state.clone()).await, state };
    for text in ["bye", "thanks, that's all", "show me all droplets", "status of the dashboard"] {
        let reply = server.client.post(format!("{}/api/chat", server.base)).json(&json!({"message": text})).send();
        assert_eq!(reply.await.expect("request").status().as_u16(), 200);
    }

    // the edit: "bye" becomes an example of help (a priority that wins), and goodbye's reply changes
    common::give_bye_to_help(dir.path());
    set_goodbye(dir.path(), GLAD);

    let (status, tried, _) = server.admin(reqwest::Method::POST, "/api/admin/reload?dry_run=true", Some(TOKEN)).await;
    assert_eq!(status, 200, "{tried}");
    assert_eq!(tried["dry_run"], true);
    assert_eq!(tried["version"], 1, "a dry run installs nothing");
    let changes = &tried["changes"];
    assert_eq!(changes["turns"], 4, "{tried:#}");
    assert_eq!(changes["intents_changed"], 1, "{tried:#}");
    assert_eq!(changes["moves"][0]["from"], "goodbye");
    assert_eq!(changes["moves"][0]["to"], "help");
    assert_eq!(changes["moves"][0]["examples"][0], "bye");
    assert_eq!(changes["replies_changed"], 2, "bye now gets help; thanks gets the new goodbye: {tried:#}");
    assert_eq!(changes["calls_not_recorded"], 0, "the droplet answers came from the recording");
    let (_, status_now, _) = server.admin(reqwest::Method::GET, "/api/admin/config", Some(TOKEN)).await;
    assert_eq!(status_now["version"], 1);
    assert_eq!(status_now["last_dry_run"]["changes"]["intents_changed"], 1, "{status_now:#}");
    assert_eq!(server.goodbye().await.1, 1, "still the old version");

    // past the limit (0 here) a reload is refused, and says why
    let (status, refused, _) = server.admin(reqwest::Method::POST, "/api/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, 409, "{refused}");
    // (the turn the check above made is recorded too)
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2 of 5 recorded messages now pick another intent (goodbye → help ×2)"),
        "{refused}"
    );
    assert_eq!(server.goodbye().await.1, 1);

    let (status, forced, _) = server.admin(reqwest::Method::POST, "/api/admin/reload?force=true", Some(TOKEN)).await;
    assert_eq!(status, 200, "{forced}");
    assert_eq!(forced["version"], 2);
    assert_eq!(forced["changes"]["intents_changed"], 3, "three \"bye\" turns by now");
}
