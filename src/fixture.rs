//! Conversation fixtures and pipeline `tests:` blocks: running them and reading their results.
//!
//! A conversation fixture (`tests/fixtures/conversations/*.yaml`) is a scripted multi-turn
//! conversation, optionally with droplet faults. Running it yields a [`Transcript`] whose text
//! is the snapshot stewards review. The test suite and the `test` command both run fixtures
//! through this module, so they cannot disagree.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use crate::backend::{DropletBackend, DropletRequest, FailureKind, Outcome, SampleBackend};
use crate::config::CompiledConfig;
use crate::coverage::Coverage;
use crate::engine::{Engine, Turn};
use crate::session::{Channel, MemoryStore, SessionLimits};

/// A scripted conversation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// One line saying what the conversation shows.
    pub description: String,
    /// Channels to run it on; both when absent.
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// Droplet calls that answer differently from the bundled sample data.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Droplet answers pinned in order (a recorded conversation): each call takes the first
    /// unused one for its droplet, endpoint and method; others answer as without it.
    #[serde(default)]
    pub answers: Vec<crate::session::RecordedCall>,
    /// Language-model answers pinned in order (a recorded conversation that the model helped
    /// understand): each call takes the first unused one for its purpose.
    #[serde(default)]
    pub model: Vec<crate::session::RecordedModelAnswer>,
    pub turns: Vec<Said>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Said {
    pub say: String,
}

/// How one droplet call answers in a fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub droplet: i64,
    pub endpoint: String,
    pub outcome: FaultKind,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// The call's time ran out.
    Timeout,
    Unreachable,
    /// The droplet (or the relay) answered with an error status.
    Refused,
    /// Relayed by the Orchestrator, no answer came back (MESH.md §6.4).
    Dispatched,
}

impl Conversation {
    pub fn parse(text: &str) -> Result<Conversation, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    pub fn channels(&self) -> Vec<Channel> {
        self.channels.clone().unwrap_or_else(|| vec![Channel::Chat, Channel::Voice])
    }
}

/// The bundled sample data, except for the calls a fixture makes fail. Stands in for droplets
/// outside this machine; outcomes are the ones a mesh adapter reports.
pub struct FaultInjector {
    inner: SampleBackend,
    faults: Vec<Fault>,
}

impl FaultInjector {
    /// The sample backend with `faults` injected.
    pub fn new(faults: Vec<Fault>) -> Self {
        FaultInjector { inner: SampleBackend, faults }
    }
}

impl DropletBackend for FaultInjector {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        let fault = self.faults.iter().find(|f| f.droplet == request.droplet_id && f.endpoint == request.endpoint);
        let Some(fault) = fault else { return self.inner.call(request) };
        let name = &request.droplet_name;
        let outcome = match fault.outcome {
            FaultKind::Timeout => Outcome::timeout(name, request.timeout),
            FaultKind::Unreachable => {
                Outcome::Failed { kind: FailureKind::Unreachable, message: format!("The {name} could not be reached.") }
            }
            FaultKind::Refused => Outcome::Failed {
                kind: FailureKind::Refused,
                message: format!("The {name} refused the request (HTTP 502)."),
            },
            FaultKind::Dispatched => {
                Outcome::Dispatched { relay_trace_id: "00000000-0000-4000-8000-000000000000".to_owned() }
            }
        };
        Box::pin(async move { outcome })
    }
}

/// One turn of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub say: String,
    pub intent: String,
    /// How the intent was chosen: rules, resumed, interrupt, fallback.
    pub source: String,
    pub reply: String,
    /// Where the action stands after the turn (`asking name`, `confirming`…), when one is under way.
    pub dialogue: Option<String>,
    /// State-changing droplet calls made this turn (`POST /register to Registry`).
    pub sent: Vec<String>,
}

/// What a conversation produced on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript(pub Vec<Exchange>);

impl Transcript {
    /// The reviewable text form:
    ///
    /// ```text
    /// > register a new service
    /// [register_service · rules]
    /// ✏️ To register a new service I still need: …
    /// ```
    ///
    /// An action under way adds its state to the bracket (`[register_service · resumed ·
    /// confirming]`), and every state-changing call made shows as `→ sent POST /register to
    /// Registry`, so a transcript proves what was sent and when.
    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(|e| {
                let state = e.dialogue.as_ref().map(|d| format!(" · {d}")).unwrap_or_default();
                let sent: String = e.sent.iter().map(|call| format!("→ sent {call}\n")).collect();
                format!("> {}\n[{} · {}{state}]\n{sent}{}\n", e.say, e.intent, e.source, e.reply)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs a conversation on one channel, in a fresh session of a fresh engine.
/// With `coverage`, every pipeline run is reported to it.
pub async fn run(
    config: Arc<CompiledConfig>,
    conversation: &Conversation,
    channel: Channel,
    coverage: Option<&Arc<Coverage>>,
) -> Transcript {
    let sessions = Arc::new(MemoryStore::new(SessionLimits::default()));
    let faults = conversation.faults.clone();
    let pinned = conversation.answers.clone();
    let faulty: Arc<dyn DropletBackend> = Arc::new(FaultInjector::new(faults));
    let backend =
        if pinned.is_empty() { faulty } else { Arc::new(crate::replay::RecordedAnswers::new(pinned, Some(faulty))) };
    let mut engine = covered(Engine::new(config, backend, sessions), coverage);
    if !conversation.model.is_empty() {
        engine = engine.with_llm(crate::replay::RecordedModel::llm(conversation.model.clone()));
    }
    let mut exchanges = Vec::new();
    for said in &conversation.turns {
        let turn = Turn {
            session_id: Some("fixture".to_owned()),
            channel,
            text: said.say.clone(),
            metadata: Default::default(),
            trace_id: "fixture".to_owned(),
            preview_other_channel: false,
            owner: Default::default(),
            request_id: None,
            events: None,
        };
        let exchange = match engine.handle(turn).await {
            Ok(reply) => Exchange {
                say: said.say.clone(),
                intent: reply.intent,
                source: reply.trace.intent.source.as_str().to_owned(),
                reply: reply.text,
                dialogue: reply.trace.dialogue.as_ref().map(|d| match &d.asking {
                    Some(slot) => format!("{} {slot}", d.state.as_str()),
                    None => d.state.as_str().to_owned(),
                }),
                sent: reply
                    .trace
                    .calls
                    .iter()
                    .filter(|c| !c.method.eq_ignore_ascii_case("GET"))
                    .map(|c| format!("{} {} to {}", c.method, c.endpoint, c.droplet))
                    .collect(),
            },
            Err(error) => Exchange {
                say: said.say.clone(),
                intent: "(error)".to_owned(),
                source: "error".to_owned(),
                reply: error.to_string(),
                dialogue: None,
                sent: Vec::new(),
            },
        };
        exchanges.push(exchange);
    }
    Transcript(exchanges)
}

/// A `tests:` entry of a pipeline that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFailure {
    /// `pipelines/<intent>.yaml tests[i] ("message")`.
    pub at: String,
    pub problem: String,
}

/// Runs every pipeline's `tests:` block, each message in a fresh session. Returns how many ran
/// and which failed.
pub async fn run_pipeline_tests(
    config: Arc<CompiledConfig>,
    coverage: Option<&Arc<Coverage>>,
) -> (usize, Vec<TestFailure>) {
    let mut failures = Vec::new();
    let mut count = 0;
    for pipeline in &config.pipelines {
        for (i, test) in pipeline.tests.iter().enumerate() {
            count += 1;
            let at = format!("{}:{} tests[{i}] ({:?})", pipeline.file, test.line, test.say);
            let sessions = Arc::new(MemoryStore::new(SessionLimits::default()));
            let engine = covered(Engine::new(config.clone(), Arc::new(SampleBackend), sessions), coverage);
            let turn = Turn {
                session_id: None,
                channel: Channel::Chat,
                text: test.say.clone(),
                metadata: Default::default(),
                trace_id: "pipeline-test".to_owned(),
                preview_other_channel: false,
                owner: Default::default(),
                request_id: None,
                events: None,
            };
            let reply = match engine.handle(turn).await {
                Ok(reply) => reply,
                Err(error) => {
                    failures.push(TestFailure { at, problem: error.to_string() });
                    continue;
                }
            };
            // the user only sees an apology; the steward needs the template error itself
            for note in reply.trace.notes.iter().filter(|n| n.starts_with("reply failed")) {
                failures.push(TestFailure { at: at.clone(), problem: format!("the {note}") });
            }
            if reply.intent != test.expect_intent {
                failures.push(TestFailure {
                    at: at.clone(),
                    problem: format!(
                        "expected intent `{}`, got `{}` ({})",
                        test.expect_intent, reply.intent, reply.trace.intent.reason
                    ),
                });
            }
            for (slot, expected) in test.expect_slots.iter().flatten() {
                let got = reply.trace.slots.get(slot);
                if got != Some(expected) {
                    let got = got.map(|v| v.to_string()).unwrap_or_else(|| "nothing".to_owned());
                    failures.push(TestFailure {
                        at: at.clone(),
                        problem: format!("expected slot `{slot}` = {expected}, got {got}"),
                    });
                }
            }
            if let Some(needle) = &test.expect_reply_contains {
                if !reply.text.contains(needle.as_str()) {
                    failures.push(TestFailure {
                        at: at.clone(),
                        problem: format!(
                            "the reply does not contain {needle:?}; it was:\n{}\n(`test --accept` accepts conversation snapshots only: if the new reply is right, edit `expect_reply_contains` on line {} of {})",
                            reply.text,
                            test.line,
                            pipeline.file
                        ),
                    });
                }
            }
        }
    }
    (count, failures)
}

fn covered(engine: Engine, coverage: Option<&Arc<Coverage>>) -> Engine {
    match coverage {
        Some(coverage) => engine.with_coverage(coverage.clone()),
        None => engine,
    }
}

/// The snapshot file of a conversation fixture on a channel, relative to `tests/snapshots/`.
pub fn snapshot_name(fixture_file: &str, channel: Channel) -> String {
    format!("conversations__{}@{fixture_file}.snap", channel.as_str())
}

/// The content of an insta snapshot file (everything after its `---` header).
pub fn snapshot_contents(file_text: &str) -> &str {
    let mut parts = file_text.splitn(3, "---\n");
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(_header), Some(body)) => body,
        _ => file_text,
    }
}
