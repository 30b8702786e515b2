//! The binary's subcommands, run as a steward would run them.

use crate::common;

use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chat-orchestrator");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("CONFIG_DIR").current_dir(ROOT).output().expect("binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A copy of the shipped configuration and its fixtures, for commands that must see an edit.
/// The binary serving a copy of the configuration (with the admin token), and the copy's path.
fn serve_copy(token: &str) -> (tempfile::TempDir, String, common::Process) {
    let dir = config_copy();
    let config = dir.path().to_str().expect("utf-8 path").to_owned();
    let server = common::Process::spawn(&[("CONFIG_DIR", &config), ("ADMIN_TOKEN", token), ("CONFIG_WATCH", "false")]);
    (dir, config, server)
}

/// One chat turn over HTTP; it must be answered.
async fn chat_on(base: &str, body: Value) -> Value {
    let response = reqwest::Client::new().post(format!("{base}/api/chat")).json(&body).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

fn config_copy() -> tempfile::TempDir {
    common::config_copy_with(&["tests/fixtures", "tests/snapshots"])
}

#[test]
fn check_passes_on_the_shipped_configuration() {
    let output = run(&["check"]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(stdout(&output).contains("no problems"));
}

#[test]
fn check_reports_every_problem_and_fails() {
    let dir = config_copy();
    let pipeline = dir.path().join("pipelines/register_service.yaml");
    let text = std::fs::read_to_string(&pipeline).expect("read").replace("endpoint: /register", "endpoint: /registr");
    std::fs::write(&pipeline, text).expect("write");
    std::fs::write(dir.path().join("templates/help/chat.md.j2"), "{{ oops").expect("write");
    let config = dir.path().to_str().expect("utf-8 path");

    let output = run(&["check", "--config", config]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("pipelines/register_service.yaml:") && text.contains("E_UNKNOWN_ENDPOINT"), "{text}");
    assert!(text.contains("templates/help/chat.md.j2:1:4") && text.contains("E_TEMPLATE_SYNTAX"), "{text}");
    assert!(text.contains("2 problems in 2 files"), "{text}");

    let output = run(&["check", "--config", config, "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let codes: Vec<&str> =
        report["problems"].as_array().expect("list").iter().filter_map(|p| p["code"].as_str()).collect();
    assert_eq!(codes, ["E_UNKNOWN_ENDPOINT", "E_TEMPLATE_SYNTAX"]);
    let line = std::fs::read_to_string(format!("{ROOT}/pipelines/register_service.yaml"))
        .expect("pipeline")
        .lines()
        .position(|l| l.contains("endpoint: /register"))
        .map(|i| i + 1);
    assert_eq!(report["problems"][0]["position"]["line"].as_u64(), line.map(|l| l as u64));
}

#[test]
fn test_shows_a_changed_reply_as_a_diff_and_accept_makes_it_pass() {
    let dir = config_copy();
    let template = dir.path().join("templates/goodbye/chat.md.j2");
    let text = std::fs::read_to_string(&template).expect("read").replace("You're welcome", "Glad to help");
    std::fs::write(&template, text).expect("write");
    let config = dir.path().to_str().expect("utf-8 path");

    let output = run(&["test", "--config", config]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("✗ goodbye.yaml (chat): the replies changed"), "{text}");
    assert!(text.contains("-👋 You're welcome!") && text.contains("+👋 Glad to help!"), "{text}");
    assert!(text.contains("expect_reply_contains") || text.contains("does not contain \"welcome\""), "{text}");

    // a misspelt name accepts nothing and says which names there are
    let output = run(&["test", "--config", config, "--accept", "goodby"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(errors.contains("called `goodby`") && errors.contains("goodbye"), "{errors}");
    // another fixture's name leaves this one changed
    let output = run(&["test", "--config", config, "--accept", "help"]);
    assert!(!stdout(&output).contains("accepted →"), "{}", stdout(&output));

    // one channel of one fixture, then the rest of it
    let output = run(&["test", "--config", config, "--accept", "goodbye:chat"]);
    let text = stdout(&output);
    assert!(text.contains("accepted →") && text.contains("conversations__chat@goodbye.yaml.snap"), "{text}");
    // the goodbye reply is also at the end of the session tour
    let output = run(&["test", "--config", config, "--accept", "goodbye", "session_tour.yaml"]);
    let text = stdout(&output);
    // the pipeline's own test still expects "welcome": accepting snapshots does not hide that,
    // and the failure says where to edit it
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("edit `expect_reply_contains` on line") && text.contains("pipelines/goodbye.yaml"), "{text}");
    let pipeline = dir.path().join("pipelines/goodbye.yaml");
    let yaml = std::fs::read_to_string(&pipeline).expect("read").replace("\"welcome\"", "\"Glad to help\"");
    std::fs::write(&pipeline, yaml).expect("write");
    let output = run(&["test", "--config", config]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(stdout(&output).ends_with("0 failed\n"), "{}", stdout(&output));
}

#[test]
fn explain_tells_the_intent_the_slots_and_the_steps() {
    let output = run(&["explain", "register a new service name:John Doe"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("intent   register_service (score 1.000, pattern)"), "{text}");
    assert!(text.contains("name  = \"John Doe\"  ← said"), "{text}");
    assert!(text.contains("id    missing, asked for its numeric id"), "{text}");
    assert!(text.contains("2. confirm with register_service/confirm.chat.md.j2"), "{text}");
    assert!(text.contains("3. query Registry POST /register as `result`"), "{text}");
}

#[test]
fn explain_takes_a_message_as_a_turn_after_the_earlier_ones() {
    // how an answer at a read-back was read, and where the value came from
    let output = run(&["explain", "--after", "remove service 5", "go ahead, no wait"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("after    \"remove service 5\" → deregister_service (confirming)"), "{text}");
    assert!(text.contains("answer   contradiction"), "{text}");
    assert!(text.contains("id  = 5  ← earlier"), "{text}");
    assert!(!text.contains("call "), "nothing was sent: {text}");
    // why the fallback answered a request it cannot serve
    let text = stdout(&run(&["explain", "reboot the orchestrator"]));
    assert!(text.contains("intent   fallback") && text.contains("no intent serves \"reboot\""), "{text}");
    // a follow-up's value from the focus
    let text = stdout(&run(&["explain", "--after", "status of the deck", "and its endpoints?"]));
    assert!(text.contains("droplet  = 14  ← focus, turn 1"), "{text}");
}

#[test]
fn explain_lists_the_fields_of_the_answers_a_reply_can_read() {
    let output = run(&["explain", "status of the dashboard"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("`health.data` (GET /health, object)"), "{text}");
    assert!(text.contains("  .status  text, may be missing:"), "{text}");
}

#[test]
fn answers_prints_what_every_endpoint_answers() {
    let output = run(&["answers"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("#### Registry, Dashboard, Voice, Orchestrator, Chat Orchestrator, Visibility Deck, Onboarding — GET /health (shape `health`)"), "{text}");
    assert!(text.contains("| `[].metadata.name` | text |"), "{text}");
}

/// `chat-orchestrator openapi | head -c 100`: the reader closes the pipe early; the command
/// stops quietly instead of panicking on the write.
#[test]
fn a_command_piped_into_a_reader_that_stops_early_does_not_panic() {
    use std::io::Read;
    for args in [&["openapi"][..], &["answers"][..]] {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("CONFIG_DIR")
            .current_dir(ROOT)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary runs");
        let mut first = [0u8; 100];
        child.stdout.take().expect("stdout").read_exact(&mut first).expect("some output");
        // the pipe closes here, with most of the output unread
        let output = child.wait_with_output().expect("exits");
        let errors = String::from_utf8_lossy(&output.stderr);
        assert!(!errors.contains("panicked"), "{args:?}: {errors}");
        assert_ne!(output.status.code(), Some(101), "{args:?} must not exit as a panic");
    }
}

/// Output that cannot be written (a full disk) is a one-line error, not a panic.
#[test]
fn a_command_whose_output_cannot_be_written_says_so_in_one_line() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else { return };
    let output = Command::new(BIN)
        .arg("answers")
        .env_remove("CONFIG_DIR")
        .env("RUST_BACKTRACE", "1")
        .current_dir(ROOT)
        .stdout(full)
        .output()
        .expect("binary runs");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{errors}");
    assert!(errors.starts_with("error: could not write the output:") && !errors.contains("panicked"), "{errors}");
}

#[test]
fn openapi_prints_the_served_document() {
    let output = run(&["openapi"]);
    assert!(output.status.success());
    let spec: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(spec["paths"]["/api/chat"]["post"].is_object());
}

#[test]
fn chat_runs_a_conversation_from_standard_input() {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["chat"])
        .current_dir(ROOT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"register a new service\nname:Zed id:9\nyes\n/voice\nshow me all droplets\n/quit\n")
        .expect("write");
    let output = child.wait_with_output().expect("finish");
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("What should the service be called?"), "{text}");
    assert!(text.contains("Register **Zed** with id **9**"), "asks before registering: {text}");
    assert!(text.contains("**Zed** is registered"), "{text}");
    assert!(text.contains("voice> There are seven droplets."), "{text}");
}

/// The real server: `serve` with its configuration in a folder, reloaded by SIGHUP.
#[test]
fn serve_reloads_on_sighup() {
    let dir = config_copy();
    let config = dir.path().to_str().expect("utf-8 path").to_owned();
    let server = common::Process::spawn(&[
        ("CONFIG_DIR", config.as_str()),
        ("CONFIG_WATCH", "false"), // only the signal may reload
        ("RATE_LIMIT_CHAT", "0"),  // it polls
    ]);
    let address = server.base.trim_start_matches("http://").to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ask = |client: &reqwest::Client| {
        runtime.block_on(async {
            let reply: Value = client
                .post(format!("http://{address}/api/chat"))
                .json(&serde_json::json!({"message": "bye"}))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            reply["response"].as_str().unwrap_or_default().to_owned()
        })
    };
    let client = reqwest::Client::new();
    assert!(ask(&client).contains("You're welcome"));

    let template = dir.path().join("templates/goodbye/chat.md.j2");
    std::fs::write(&template, "👋 Reloaded by a signal.\n").expect("write");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(ask(&client).contains("You're welcome"), "no watcher: nothing changes before the signal");

    let hup = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().expect("kill runs");
    assert!(hup.success());
    let mut reply = String::new();
    for _ in 0..100 {
        reply = ask(&client);
        if reply.contains("Reloaded by a signal") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);
    assert_eq!(reply, "👋 Reloaded by a signal.");
}

#[test]
fn probe_exits_zero_only_for_an_active_server() {
    let server = common::Process::spawn(&[]);
    let url = format!("{}/health", server.base);
    let up = run(&["probe", "--url", &url]);
    assert!(up.status.success(), "{}", stdout(&up));
    assert!(stdout(&up).trim_end().ends_with(": active"), "{}", stdout(&up));
    drop(server);
    let down = run(&["probe", "--url", &url]);
    assert!(!down.status.success(), "nothing listens any more");
}

/// The steward's loop: a message the running server did not understand becomes, through
/// `triage`, an example of the right intent in its pipeline file (nothing else in the file
/// changes), and the configuration then understands it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_turns_a_missed_message_into_an_example() {
    use std::io::Write as _;
    let (dir, config, server) = serve_copy("triage-token");
    let client = reqwest::Client::new();
    for text in ["any update on the onboarding thing", "any update on the onboarding thing?"] {
        let reply = chat_on(&server.base, serde_json::json!({"message": text})).await;
        assert_eq!(reply["intent"], "fallback", "the message is not understood yet: {reply}");
    }
    let pipeline = dir.path().join("pipelines/onboarding_progress.yaml");
    let before = std::fs::read_to_string(&pipeline).expect("read");

    let mut triage = Command::new(BIN)
        .args(["triage", "--config", &config, "--url", &server.base])
        .env("ADMIN_TOKEN", "triage-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("triage runs");
    triage.stdin.take().expect("stdin").write_all(b"onboarding_progress\n").expect("answer");
    let output = triage.wait_with_output().expect("exits");
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("said 2 time(s), answered by fallback"), "{text}");
    assert!(
        text.contains(
            "added to pipelines/onboarding_progress.yaml; `check` passes; it now reads as `onboarding_progress`"
        ),
        "{text}"
    );
    let after = std::fs::read_to_string(&pipeline).expect("read");
    let added: Vec<&str> = after.lines().filter(|l| !before.lines().any(|b| b == *l)).collect();
    assert_eq!(added, vec!["  - \"any update on the onboarding thing?\""], "one line added, nothing else:\n{after}");
    assert_eq!(after.lines().count(), before.lines().count() + 1);

    // from a saved report: an unknown intent name is skipped, the file stays as it is
    let report = dir.path().join("missed.json");
    let saved = client
        .get(format!("{}/api/admin/missed", server.base))
        .bearer_auth("triage-token")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    std::fs::write(&report, saved).expect("save");
    let mut triage = Command::new(BIN)
        .args(["triage", "--config", &config, "--file", report.to_str().expect("utf-8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("triage runs");
    triage.stdin.take().expect("stdin").write_all(b"onboardng\n").expect("answer");
    let output = triage.wait_with_output().expect("exits");
    assert!(stdout(&output).contains("no intent `onboardng`: skipped"), "{}", stdout(&output));
    assert_eq!(std::fs::read_to_string(&pipeline).expect("read"), after);
}

/// `test --coverage` names what no test reaches, with file and line: a new intent with no
/// test at all shows its intent, steps and templates.
#[test]
fn coverage_lists_what_no_test_reaches() {
    let dir = config_copy();
    std::fs::write(
        dir.path().join("pipelines/keeper.yaml"),
        "intent: keeper\ndescription: Say who keeps a droplet\nmatch:\n  any: ['\\bkeeper\\b']\nsteps:\n  - when: \"slots.who\"\n    format: { chat: help/chat.md.j2, voice: help/voice.txt.j2 }\n  - format: { chat: keeper/chat.md.j2, voice: keeper/voice.txt.j2 }\nslots:\n  who: { type: string, prompt: who }\n",
    )
    .expect("pipeline");
    std::fs::create_dir_all(dir.path().join("templates/keeper")).expect("folder");
    for name in ["chat.md.j2", "voice.txt.j2"] {
        std::fs::write(dir.path().join("templates/keeper").join(name), "Nobody keeps it.\n").expect("template");
    }
    let output = run(&["test", "--config", dir.path().to_str().expect("utf-8"), "--coverage"]);
    let text = stdout(&output);
    assert!(text.contains("\ncoverage: intents 14/15 · steps "), "{text}");
    for gap in [
        "pipelines/keeper.yaml:1: intent `keeper` is never chosen",
        "pipelines/keeper.yaml:6: step 1 (format) never runs",
        "pipelines/keeper.yaml:6: `when: slots.who` is never false",
        "pipelines/keeper.yaml:8: step 2 (format) never runs",
        "templates/keeper/chat.md.j2: never rendered",
    ] {
        assert!(text.contains(gap), "missing `{gap}` in\n{text}");
    }
}

/// A conversation the running server had becomes a fixture that pins the droplet answers it
/// got: it replays with those answers even after the bundled samples change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_makes_a_conversation_a_fixture_that_replays_the_same() {
    let (dir, config, server) = serve_copy("record-token");
    for text in ["system overview", "status of the dashboard"] {
        chat_on(&server.base, serde_json::json!({"message": text, "session_id": "rec-1"})).await;
    }
    let output = Command::new(BIN)
        .args(["record", "rec-1", "--config", &config, "--url", &server.base])
        .env("ADMIN_TOKEN", "record-token")
        .output()
        .expect("record runs");
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("(2 turn(s), 3 droplet answer(s) pinned)"), "{text}");
    let fixture = dir.path().join("tests/fixtures/conversations/recorded_rec-1.yaml");
    assert!(fixture.is_file(), "{text}");

    // the droplets' bundled answers change; the recording keeps what the conversation got
    let catalogue = dir.path().join("catalogue/droplets.yaml");
    let changed =
        std::fs::read_to_string(&catalogue).expect("read").replacen("cpu_percent: 37.5", "cpu_percent: 99.5", 1);
    std::fs::write(&catalogue, changed).expect("write");
    run(&["test", "--config", &config, "--accept", "recorded_rec-1"]);
    let snapshot = dir.path().join("tests/snapshots/conversations__chat@recorded_rec-1.yaml.snap");
    let transcript = std::fs::read_to_string(&snapshot).expect("accepted transcript");
    assert!(transcript.contains("| CPU | 37.5% |") && !transcript.contains("99.5"), "{transcript}");
    assert!(transcript.contains("> status of the dashboard"), "{transcript}");
    let again = stdout(&run(&["test", "--config", &config]));
    assert!(!again.contains("recorded_rec-1.yaml (chat): the replies changed"), "{again}");
}

/// `test --against`: real traffic from a running server, replayed offline on the edited
/// configuration and on another one (a git ref of the checkout, or a folder), no droplet called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_against_says_what_an_edit_changes_for_recorded_traffic() {
    let (dir, config, server) = serve_copy("against-token");
    let pristine = config_copy();
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.invalid"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "the configuration as it runs"]);
    let client = reqwest::Client::new();
    for text in ["bye", "thanks, that's all", "show me all droplets"] {
        chat_on(&server.base, serde_json::json!({"message": text})).await;
    }
    // the edit, not committed: "bye" becomes help's, and the goodbye reply changes
    common::give_bye_to_help(dir.path());
    let goodbye = dir.path().join("templates/goodbye/chat.md.j2");
    let text = std::fs::read_to_string(&goodbye).expect("read").replace("You're welcome", "Glad to help");
    std::fs::write(&goodbye, text).expect("write");

    let output = Command::new(BIN)
        .args(["test", "--config", &config, "--against", "HEAD", "--url", &server.base])
        .env("ADMIN_TOKEN", "against-token")
        .output()
        .expect("runs");
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        text.contains(
            "against git HEAD: 1 of 3 recorded messages now pick another intent (goodbye → help), 2 replies change"
        ),
        "{text}"
    );
    assert!(text.contains("goodbye → help ×1: “bye”"), "{text}");

    // the same traffic saved to a file, against a folder
    let saved = client
        .get(format!("{}/api/admin/recorded", server.base))
        .bearer_auth("against-token")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    let turns = dir.path().join("turns.json");
    std::fs::write(&turns, saved).expect("save");
    let output = run(&[
        "test",
        "--config",
        &config,
        "--against",
        pristine.path().to_str().expect("utf-8"),
        "--turns",
        turns.to_str().expect("utf-8"),
    ]);
    assert!(
        stdout(&output).contains("1 of 3 recorded messages now pick another intent (goodbye → help)"),
        "{}",
        stdout(&output)
    );
}
