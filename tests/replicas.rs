//! Two server processes sharing one real Redis: a conversation moves between replicas, survives
//! one of them being killed with SIGKILL, and concurrent turns on both keep every message.

use crate::common;

use serde_json::{json, Value};

const TOKEN: &str = "replica-admin-token";

/// One replica: the real binary on a free port, sharing Redis under `prefix`.
fn replica(redis_url: &str, prefix: &str) -> common::Process {
    common::Process::spawn(&[
        ("REDIS_URL", redis_url),
        ("REDIS_PREFIX", prefix),
        ("ADMIN_TOKEN", TOKEN),
        ("SESSION_MAX_HISTORY", "200"),
        ("CONFIG_WATCH", "false"),
    ])
}

async fn say(replica: &common::Process, client: &reqwest::Client, session: &str, text: &str) -> Value {
    let response = client
        .post(format!("{}/api/chat", replica.base))
        .json(&json!({"message": text, "session_id": session}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

async fn redis_url() -> Option<String> {
    let url = std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let reachable = match redis::Client::open(url.as_str()) {
        Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
        Err(_) => false,
    };
    if reachable {
        return Some(url);
    }
    assert!(
        !std::env::var("REQUIRE_REDIS_TESTS").is_ok_and(|v| v == "1"),
        "Redis tests are required but {url} is not reachable"
    );
    eprintln!("SKIPPED the two-replica test: {url} is not reachable");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_conversations_and_survive_a_kill() {
    let Some(url) = redis_url().await else { return };
    let prefix = format!("replicas-{}:", uuid::Uuid::new_v4());
    let mut a = replica(&url, &prefix);
    let b = replica(&url, &prefix);
    let client = reqwest::Client::new();

    // a slot-filling conversation starts on A and finishes on B
    let asked = say(&a, &client, "moving", "register a new service").await;
    assert!(asked["response"].as_str().unwrap_or_default().contains("What should the service be called?"));
    let read_back = say(&b, &client, "moving", "name:Replicated id:21").await;
    assert!(read_back["response"].as_str().unwrap_or_default().contains("Register **Replicated**"), "{read_back}");
    let done = say(&a, &client, "moving", "yes").await;
    assert!(done["response"].as_str().unwrap_or_default().contains("**Replicated** is registered"), "{done}");

    // what the conversation is about travels with it: a follow-up on B means what A was asked
    let endpoints = say(&a, &client, "follow", "what does the deck offer?").await;
    assert_eq!(endpoints["intent"], "droplet_endpoints", "{endpoints}");
    let follow_up = say(&b, &client, "follow", "and the orchestrator?").await;
    assert_eq!(follow_up["intent"], "droplet_endpoints", "{follow_up}");
    assert!(
        follow_up["response"].as_str().unwrap_or_default().contains("**Orchestrator** (droplet 10)"),
        "{follow_up}"
    );
    let pointed = say(&a, &client, "follow", "is it up?").await;
    assert!(pointed["response"].as_str().unwrap_or_default().contains("**Orchestrator** (droplet 10)"), "{pointed}");

    // concurrent turns of one session on both replicas keep every message
    let mut turns = Vec::new();
    for i in 0..20 {
        let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
        let client = client.clone();
        turns.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/chat"))
                .json(&json!({"message": format!("hello {i}"), "session_id": "busy"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for turn in turns {
        assert_eq!(turn.await.expect("task").expect("request"), 200);
    }
    let detail: Value = client
        .get(format!("{}/api/sessions/busy", b.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(detail["history"].as_array().map(Vec::len), Some(40), "20 turns on two replicas, 40 messages");

    // A is killed mid-conversation; B carries on with nothing lost
    say(&a, &client, "survivor", "create a task").await;
    a.child.kill().expect("SIGKILL replica A");
    a.child.wait().expect("reaped");
    let finished = say(&b, &client, "survivor", "title:Outlive a crash").await;
    assert_eq!(finished["intent"], "create_task");
    assert!(finished["response"].as_str().unwrap_or_default().contains("Outlive a crash"), "{finished}");
}

/// The turn's trace: `say` with `trace: true`.
async fn say_traced(replica_base: &str, client: &reqwest::Client, session: &str, text: &str) -> Value {
    let response = client
        .post(format!("{replica_base}/api/chat"))
        .json(&json!({"message": text, "session_id": session, "trace": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

/// How many state-changing droplet calls a reply's turn made.
fn commands_sent(reply: &Value) -> usize {
    reply["trace"]["calls"].as_array().map_or(0, |calls| calls.iter().filter(|c| c["method"] != "GET").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_command_is_sent_once_however_often_and_wherever_the_yes_arrives() {
    let Some(url) = redis_url().await else { return };
    let prefix = format!("once-{}:", uuid::Uuid::new_v4());
    let a = replica(&url, &prefix);
    let b = replica(&url, &prefix);
    let client = reqwest::Client::new();

    for round in 0..5 {
        let session = format!("once-{round}");
        let read_back = say_traced(&a.base, &client, &session, "register Once with id 5").await;
        assert_eq!(read_back["trace"]["dialogue"]["state"], "confirming", "{read_back}");
        assert_eq!(commands_sent(&read_back), 0, "nothing before consent");
        // the same "yes" arrives four times at once: twice at each replica (a client retrying,
        // a load balancer sending it on)
        let mut yeses = Vec::new();
        for i in 0..4 {
            let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
            let (client, session) = (client.clone(), session.clone());
            yeses.push(tokio::spawn(async move { say_traced(&base, &client, &session, "yes").await }));
        }
        let mut sent = 0;
        for yes in yeses {
            sent += commands_sent(&yes.await.expect("task"));
        }
        assert_eq!(sent, 1, "round {round}: the registration went out exactly once");
        // and a late retry of the same "yes" sends nothing either
        let late = say_traced(&b.base, &client, &session, "yes").await;
        assert_eq!(commands_sent(&late), 0, "{late}");
    }
}

/// A chat turn with a bearer token and, optionally, an idempotency key.
async fn say_as(base: &str, client: &reqwest::Client, token: &str, key: Option<&str>, body: Value) -> Value {
    let mut request = client.post(format!("{base}/api/chat")).bearer_auth(token).json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_replicas_a_session_stays_its_owners_and_a_retry_runs_once() {
    let Some(url) = redis_url().await else { return };
    let keys = tempfile::tempdir().expect("temp dir");
    let (private, public) = common::keys::key_pair(keys.path(), "registry");
    let prefix = format!("owned-{}:", uuid::Uuid::new_v4());
    let secured = |prefix: &str| {
        common::Process::spawn(&[
            ("REDIS_URL", url.as_str()),
            ("REDIS_PREFIX", prefix),
            ("REGISTRY_PUBLIC_KEY", public.as_str()),
            ("CONFIG_WATCH", "false"),
        ])
    };
    let (a, b) = (secured(&prefix), secured(&prefix));
    let client = reqwest::Client::new();
    let alice = common::keys::sign(&private, common::keys::claims_for("alice"));
    let mallory = common::keys::sign(&private, common::keys::claims_for("mallory"));
    let turn = |text: &str| json!({"message": text, "session_id": "shared-id", "trace": true});

    let asked = say_as(&a.base, &client, &alice, None, turn("register a new service called Zephyr")).await;
    assert_eq!(asked["trace"]["dialogue"]["state"], "asking", "{asked}");
    // Mallory, on the other replica, with Alice's session id: a session of her own
    let hers = say_as(&b.base, &client, &mallory, None, turn("id:999")).await;
    assert!(!hers.to_string().contains("Zephyr"), "{hers}");
    let read_back = say_as(&b.base, &client, &alice, None, turn("id:77")).await;
    let text = read_back["response"].as_str().unwrap_or_default();
    assert!(text.contains("Zephyr") && text.contains("77"), "Alice's conversation is intact: {read_back}");

    // the consent reaches A, and its retry (same key) reaches B: one registration, one reply
    let first = say_as(&a.base, &client, &alice, Some("consent-1"), turn("yes")).await;
    let retry = say_as(&b.base, &client, &alice, Some("consent-1"), turn("yes")).await;
    assert_eq!(commands_sent(&first), 1, "{first}");
    assert_eq!(commands_sent(&retry), 0, "{retry}");
    assert_eq!(first["response"], retry["response"]);
    assert_eq!(retry["trace"]["intent"]["source"], "replayed");
}

/// A `sensitive: true` slot's value is used, but kept nowhere: not in the trace, the stored
/// history (raw Redis included), a retried request's stored answer, the admin views or the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_value_is_in_no_sink() {
    let Some(url) = redis_url().await else { return };
    let dir = common::config_copy();
    std::fs::write(
        dir.path().join("pipelines/save_token.yaml"),
        r#"intent: save_token
description: Keep an API token for a service
examples: ["save my api token", "store a token", "remember this token for me"]
match:
  any: ['\btoken\b']
slots:
  token: { type: string, prompt: "the token", sensitive: true, from: ["token is {value}"] }
steps:
  - extract: { required: [token] }
  - format: { chat: save_token/chat.md.j2, voice: save_token/voice.txt.j2 }
"#,
    )
    .expect("pipeline");
    std::fs::create_dir_all(dir.path().join("templates/save_token")).expect("folder");
    std::fs::write(dir.path().join("templates/save_token/chat.md.j2"), "🔐 Saved the token `{{ slots.token }}`.\n")
        .expect("template");
    std::fs::write(dir.path().join("templates/save_token/voice.txt.j2"), "Saved the token {{ slots.token }}.\n")
        .expect("template");
    let prefix = format!("sensitive-{}:", uuid::Uuid::new_v4());
    let config_dir = dir.path().to_str().expect("utf-8 path").to_owned();
    let server = common::Process::spawn(&[
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("ADMIN_TOKEN", TOKEN),
        ("CONFIG_DIR", config_dir.as_str()),
        ("CONFIG_WATCH", "false"),
        ("LOG_LEVEL", "debug"),
    ]);
    let client = reqwest::Client::new();
    const SECRET: &str = "tok-SECRET-4242";

    let asked = say_traced(&server.base, &client, "vault", "please save my api token").await;
    assert_eq!(asked["intent"], "save_token", "{asked}");
    // the answer, sent with an Idempotency-Key so its reply is kept for a retry
    let response = client
        .post(format!("{}/api/chat", server.base))
        .header("Idempotency-Key", "vault-1")
        .json(&json!({"message": format!("the token is {SECRET}"), "session_id": "vault", "trace": true}))
        .send()
        .await
        .expect("request");
    let saved: Value = response.json().await.expect("json");
    // the user reads it back...
    assert!(saved["response"].as_str().unwrap_or_default().contains(SECRET), "{saved}");
    // ...but the trace does not hold it
    assert_eq!(saved["trace"]["slots"]["token"], "•••", "{saved}");
    assert!(!saved["trace"].to_string().contains(SECRET), "{saved}");

    let mut sinks: Vec<(String, String)> = Vec::new();
    for path in ["/api/sessions/vault", "/api/sessions", "/api/admin/missed"] {
        let body = client.get(format!("{}{path}", server.base)).bearer_auth(TOKEN).send().await.expect("request");
        sinks.push((path.to_owned(), body.text().await.expect("text")));
    }
    let history = &sinks[0].1;
    assert!(history.contains("the token is •••"), "the stored history keeps the message, masked: {history}");
    let mut redis =
        redis::Client::open(url.as_str()).expect("client").get_multiplexed_async_connection().await.expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await.expect("keys");
    assert!(!keys.is_empty(), "the session is in Redis");
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut redis).await.expect("type");
        let value: String = match kind.as_str() {
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async::<Vec<String>>(&mut redis)
                .await
                .expect("list")
                .join("\n"),
            _ => redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<String>>(&mut redis)
                .await
                .expect("get")
                .unwrap_or_default(),
        };
        sinks.push((format!("redis {key}"), value));
    }
    sinks.push(("server log".to_owned(), server.log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")));
    for (sink, text) in &sinks {
        assert!(
            !text.contains(SECRET) && !text.to_lowercase().contains(&SECRET.to_lowercase()),
            "{sink} holds the secret:\n{text}"
        );
    }
}

/// Messages nobody understood, said on either replica, are kept once in Redis and listed by
/// the admin API grouped by what they say, most said first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_messages_from_every_replica_are_grouped_for_the_steward() {
    let Some(url) = redis_url().await else { return };
    let prefix = format!("missed-{}:", uuid::Uuid::new_v4());
    let a = replica(&url, &prefix);
    let b = replica(&url, &prefix);
    let client = reqwest::Client::new();
    for (replica, text) in [
        (&a, "any update on the onboarding thing"),
        (&b, "Any update on the onboarding thing?"),
        (&a, "how many moons does jupiter have"),
        (&b, "show me all droplets"),
        (&a, "onboarding progress and blorp the frobnicator"),
    ] {
        say(replica, &client, "learner", text).await;
    }
    let unauthorised = client.get(format!("{}/api/admin/missed", b.base)).send().await.expect("request");
    assert_eq!(unauthorised.status().as_u16(), 401);
    let report: Value = client
        .get(format!("{}/api/admin/missed", b.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let groups = report["groups"].as_array().expect("groups");
    assert_eq!(groups[0]["count"], 2, "the same words said twice are one group: {report:#}");
    assert_eq!(groups[0]["examples"][0], "Any update on the onboarding thing?", "newest first: {report:#}");
    let texts: Vec<&str> =
        groups.iter().flat_map(|g| g["examples"].as_array().into_iter().flatten()).filter_map(Value::as_str).collect();
    assert!(texts.contains(&"how many moons does jupiter have"), "{texts:?}");
    assert!(texts.contains(&"blorp the frobnicator"), "a part nobody understood is kept on its own: {texts:?}");
    assert!(!texts.iter().any(|t| t.contains("show me all droplets")), "an understood message is not kept: {texts:?}");
}
