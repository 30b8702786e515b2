//! Engine behaviour across turns: sessions, pending actions, concurrency, faults.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::backend::SampleBackend;
use chat_orchestrator::config::{self, ConfigFiles};
use chat_orchestrator::session::{Channel, Role, SessionLimits, SessionStore};

fn limits(max_history: usize) -> SessionLimits {
    SessionLimits { max_history, idle_timeout: Duration::from_secs(30 * 60), ..SessionLimits::default() }
}

#[tokio::test]
async fn concurrent_turns_on_one_session_lose_no_message() {
    let (engine, store) = common::engine_and_store(common::compiled(), Arc::new(SampleBackend), limits(1000));
    let engine = Arc::new(engine);
    let turns: Vec<_> = (0..30)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(
                async move { common::say(&engine, "shared", Channel::Chat, &format!("hello number {i}")).await },
            )
        })
        .collect();
    for turn in turns {
        turn.await.expect("turn task");
    }
    let mut lease = store.lease("shared").await.expect("lease");
    let history = &lease.session().history;
    assert_eq!(history.len(), 60, "30 user messages and 30 replies");
    let said = history.iter().filter(|m| m.role == Role::User).count();
    assert_eq!(said, 30);
    // every user message is directly followed by its own reply: turns did not interleave
    for pair in history.iter().collect::<Vec<_>>().chunks(2) {
        assert_eq!((pair[0].role, pair[1].role), (Role::User, Role::Assistant));
    }
}

#[tokio::test]
async fn history_keeps_the_last_messages_only() {
    let (engine, store) = common::engine_and_store(common::compiled(), Arc::new(SampleBackend), limits(10));
    for i in 0..8 {
        common::say(&engine, "s", Channel::Chat, &format!("hello {i}")).await;
    }
    let mut lease = store.lease("s").await.expect("lease");
    let history = &lease.session().history;
    assert_eq!(history.len(), 10);
    assert_eq!(history.back().map(|m| m.role), Some(Role::Assistant));
    assert_eq!(history.iter().rev().nth(1).map(|m| m.text.as_ref()), Some("hello 7"));
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_forgets_its_pending_action() {
    let engine = common::engine(vec![]);
    let asked = common::say(&engine, "idle", Channel::Chat, "register a new service").await;
    assert_eq!(asked.intent, "register_service");
    tokio::time::advance(Duration::from_secs(31 * 60)).await;
    let later = common::say(&engine, "idle", Channel::Chat, "name:Late id:1").await;
    assert_ne!(later.trace.intent.source.as_str(), "resumed", "the pending action expired with the session");
}

#[tokio::test(start_paused = true)]
async fn a_slow_droplet_is_cut_off_at_the_call_timeout_with_a_clear_reply() {
    let (engine, _) = common::engine_and_store(common::compiled(), common::Hanging::backend(1, "/getAll"), limits(10));
    let started = tokio::time::Instant::now();
    let reply = common::say(&engine, "slow", Channel::Chat, "show the registry").await;
    assert_eq!(started.elapsed(), Duration::from_secs(5), "the default call timeout");
    assert!(reply.text.contains("did not answer within 5 seconds"), "{}", reply.text);
    assert_eq!(reply.trace.calls[0].outcome.as_str(), "failed");
}

#[tokio::test]
async fn a_template_that_fails_at_run_time_keeps_the_message_and_the_pending_action() {
    // the read-back reads a field that is not there: strict undefined fails at run time
    let broken = ConfigFiles::from_pairs([(
        "templates/register_service/confirm.chat.md.j2",
        "Register {{ slots.name.no_such_field.deeper }}?",
    )]);
    let config = Arc::new(config::load(&common::repo_files().overlay(broken)).expect("still a valid configuration"));
    let (engine, store) = common::engine_and_store(config, Arc::new(SampleBackend), limits(10));

    common::say(&engine, "fault", Channel::Chat, "register a new service").await;
    let failed = common::say(&engine, "fault", Channel::Chat, "name:Kept id:3").await;
    assert!(failed.text.contains("something went wrong"), "{}", failed.text);
    assert!(failed.trace.notes.iter().any(|n| n.contains("reply failed")), "{:?}", failed.trace.notes);
    // the trace says what the kept action still waits for
    let dialogue = failed.trace.dialogue.as_ref().expect("the action's state");
    assert_eq!((dialogue.state.as_str(), dialogue.asking.as_deref()), ("asking", Some("name")), "{dialogue:?}");

    let mut lease = store.lease("fault").await.expect("lease");
    let session = lease.session();
    assert!(session.history.iter().any(|m| &*m.text == "name:Kept id:3"), "the user's words are stored");
    let pending = session.pending.as_ref().expect("the unfinished action survives the fault");
    assert_eq!(pending.intent, "register_service");
}

#[tokio::test]
async fn a_reply_that_fails_after_its_command_was_sent_does_not_leave_the_command_to_be_sent_again() {
    // the success template reads a field chosen while rendering, which `check` can only warn
    // about (W_UNCHECKED_READ), and the answer does not have it
    let broken = ConfigFiles::from_pairs([(
        "templates/register_service/chat.md.j2",
        "Registered {{ result.data[slots.name].deeper }}",
    )]);
    let config = Arc::new(config::load(&common::repo_files().overlay(broken)).expect("still a valid configuration"));
    let (engine, store) = common::engine_and_store(config, Arc::new(SampleBackend), limits(10));
    common::say(&engine, "sent", Channel::Chat, "register Kept with id 3").await;
    let failed = common::say(&engine, "sent", Channel::Chat, "yes").await;
    assert!(failed.text.contains("something went wrong"), "{}", failed.text);
    assert_eq!(failed.trace.calls.len(), 1, "the registration was sent");
    let mut lease = store.lease("sent").await.expect("lease");
    assert_eq!(lease.session().pending, None, "a second yes must not send it again");
}

#[tokio::test]
async fn the_voice_channel_gets_plain_speech() {
    let engine = common::engine(vec![]);
    for message in ["show me all droplets", "hello", "register a new service", "system overview", "blorp"] {
        let reply = common::say(&engine, message, Channel::Voice, message).await;
        assert!(chat_orchestrator::speech::is_speakable(&reply.text), "{message}: {:?}", reply.text);
        assert!(reply.trace.templates.iter().all(|t| t.contains("voice")), "{:?}", reply.trace.templates);
    }
}

#[tokio::test]
async fn rule_matched_intents_explain_themselves() {
    let engine = common::engine(vec![]);
    let reply = common::say(&engine, "why", Channel::Chat, "register a new service please").await;
    assert_eq!(reply.trace.intent.source.as_str(), "rules");
    assert!(reply.trace.intent.reason.contains("pattern"), "{}", reply.trace.intent.reason);
    let fallback = common::say(&engine, "why2", Channel::Chat, "qwertyuiop").await;
    assert_eq!(fallback.intent, "fallback");
    assert_eq!(fallback.trace.intent.source.as_str(), "fallback");
}

#[tokio::test]
async fn the_websocket_welcome_renders_on_both_channels() {
    let engine = common::engine(vec![]);
    let chat = engine.welcome(Channel::Chat).expect("chat welcome renders");
    assert!(chat.contains("Chat Orchestrator") && chat.contains("register a new service in the registry"), "{chat}");
    let voice = engine.welcome(Channel::Voice).expect("voice welcome renders");
    assert!(chat_orchestrator::speech::is_speakable(&voice), "{voice}");
}

#[tokio::test]
async fn the_trace_says_what_a_correction_changed() {
    let engine = common::engine(vec![]);
    common::say(&engine, "fix", Channel::Chat, "register Billing with id 77").await;
    let read_back = common::say(&engine, "fix", Channel::Chat, "no, the id is 78").await;
    let dialogue = read_back.trace.dialogue.expect("an action under way");
    assert_eq!((dialogue.state.as_str(), dialogue.changed), ("confirming", vec!["id: 77 → 78".to_owned()]));
    assert!(read_back.trace.notes.iter().any(|n| n == "changed id: 77 → 78"), "{:?}", read_back.trace.notes);

    // while a slot is asked, and for the answer before ("oops, …"): recorded once each
    common::say(&engine, "asking", Channel::Chat, "register a new service").await;
    common::say(&engine, "asking", Channel::Chat, "Paymnts").await;
    let corrected = common::say(&engine, "asking", Channel::Chat, "oops, Payments").await;
    let dialogue = corrected.trace.dialogue.expect("still asking");
    assert_eq!(dialogue.asking.as_deref(), Some("id"));
    assert_eq!(dialogue.changed, vec![r#"name: "Paymnts" → "Payments""#.to_owned()]);
    let renamed = common::say(&engine, "asking", Channel::Chat, "actually call it Payments Two").await;
    assert_eq!(
        renamed.trace.dialogue.map(|d| d.changed),
        Some(vec![r#"name: "Payments" → "Payments Two""#.to_owned()])
    );
}

/// The steward's `statuses:` decide what a reported word means everywhere: a new state, with its
/// own icon and wording, shows in the fan-out's counts, its table, its spoken summary and the
/// single droplet's reply, without touching a template.
#[tokio::test]
async fn a_state_the_steward_adds_reads_through_every_reply() {
    let catalogue = common::repo_files().get("catalogue/droplets.yaml").expect("shipped").replace(
        "  inactive:  { icon: \"🟡\", words: [inactive, degraded, idle, paused, offline] }",
        "  resting:   { icon: \"🔵\", label: resting, spoken: resting quietly, words: [INACTIVE] }\n  \
         inactive:  { icon: \"🟡\", words: [degraded, idle, paused, offline] }",
    );
    assert!(catalogue.contains("resting:"), "the edit applies to the shipped catalogue");
    let files = common::repo_files().overlay(ConfigFiles::from_pairs([("catalogue/droplets.yaml", catalogue)]));
    let config = Arc::new(config::load(&files).expect("a valid configuration"));
    let (engine, _store) = common::engine_and_store(config, Arc::new(SampleBackend), limits(10));

    let chat = common::say(&engine, "statuses-chat", Channel::Chat, "show me all droplets").await;
    assert!(chat.text.contains("**7 droplets** — 🟢 6 active · 🔵 1 resting\n"), "{}", chat.text);
    assert!(chat.text.contains("| Onboarding | 🔵 inactive |"), "{}", chat.text);

    let voice = common::say(&engine, "statuses-voice", Channel::Voice, "show me all droplets").await;
    assert!(voice.text.ends_with(" and Visibility Deck. Onboarding is resting quietly."), "{}", voice.text);

    let one = common::say(&engine, "statuses-one", Channel::Chat, "status of onboarding").await;
    assert!(one.text.starts_with("🔵 **Onboarding** (droplet 16) is **resting**."), "{}", one.text);
    let spoken = common::say(&engine, "statuses-one-voice", Channel::Voice, "status of onboarding").await;
    assert_eq!(spoken.text, "Onboarding is resting quietly.");
}

/// What the assistant cannot do is the configuration's to say: a request whose verb none of its
/// intents is written with goes to the fallback, which says what it cannot do and the nearest
/// thing it can; once a steward writes the verb into an intent's examples, the intent serves it.
#[tokio::test]
async fn a_request_no_intent_serves_goes_to_the_fallback_until_a_steward_teaches_it() {
    let shipped = Arc::new(config::load(&common::repo_files()).expect("the shipped configuration"));
    let (engine, _store) = common::engine_and_store(shipped, Arc::new(SampleBackend), limits(10));
    let reply = common::say(&engine, "cannot-1", Channel::Chat, "please reboot the orchestrator").await;
    assert_eq!(reply.intent, "fallback", "{}", reply.text);
    assert!(reply.text.contains("can't **reboot the orchestrator**"), "{}", reply.text);
    assert!(reply.trace.intent.reason.contains("no intent serves \"reboot\""), "{}", reply.trace.intent.reason);
    assert!(reply.trace.calls.is_empty());
    // a verb inside the value a command reads is no request of its own
    let task = common::say(&engine, "cannot-2", Channel::Chat, "create a task to reboot the workers").await;
    assert_eq!(task.intent, "create_task", "{}", task.text);

    let status = common::repo_files().get("pipelines/droplet_status.yaml").expect("shipped").replacen(
        "examples:\n",
        "examples:\n  - \"reboot check on the registry\"\n",
        1,
    );
    let files = common::repo_files().overlay(ConfigFiles::from_pairs([("pipelines/droplet_status.yaml", status)]));
    let taught = Arc::new(config::load(&files).expect("a valid configuration"));
    let (engine, _store) = common::engine_and_store(taught, Arc::new(SampleBackend), limits(10));
    let reply = common::say(&engine, "cannot-3", Channel::Chat, "please reboot the orchestrator").await;
    assert_eq!(reply.intent, "droplet_status", "{}", reply.text);
}
