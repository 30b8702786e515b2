//! What a configuration change does to real traffic, before it goes live.
//!
//! The server keeps its last turns with the droplet answers they used (`session::RecordedTurn`).
//! [`replay`] runs them again, conversation by conversation and in order, on a candidate
//! configuration, with a backend that answers each call from the recording and calls no droplet,
//! and compares: which messages now pick another intent, which replies read differently. Rules
//! are deterministic, so the same configuration gives the same replies: every difference is the
//! change's doing. A turn that makes a call the original did not make gets a failed answer and
//! is counted, so a change that adds a query shows up too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::backend::{CallStatus, DropletBackend, DropletRequest, FailureKind, Outcome};
use crate::config::CompiledConfig;
use crate::engine::{Engine, Turn};
use crate::llm::{Attempt, LanguageModel, Llm, LlmAnswer, LlmError, LlmErrorKind, LlmRequest};
use crate::session::{Channel, MemoryStore, RecordedCall, RecordedModelAnswer, RecordedTurn, SessionLimits};

/// How many examples each part of the report shows.
const EXAMPLES: usize = 5;

/// What replaying the recorded turns on a candidate configuration changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, poem_openapi::Object)]
pub struct ChangeReport {
    /// Turns replayed.
    pub turns: usize,
    /// Turns whose message now picks another intent.
    pub intents_changed: usize,
    /// Turns whose reply reads differently (whatever the intent).
    pub replies_changed: usize,
    /// Droplet calls the candidate makes that the recorded turns did not (answered as failed).
    pub calls_not_recorded: usize,
    /// Each move from one intent to another, most frequent first, with examples.
    pub moves: Vec<IntentMove>,
    /// Some of the changed replies.
    pub replies: Vec<ReplyChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, poem_openapi::Object)]
pub struct IntentMove {
    pub from: String,
    pub to: String,
    pub count: usize,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, poem_openapi::Object)]
pub struct ReplyChange {
    pub said: String,
    pub before: String,
    pub after: String,
}

impl ChangeReport {
    /// "3 of 120 recorded messages now pick another intent (help → droplet_endpoints ×2, …),
    /// 5 replies change".
    pub fn summary(&self) -> String {
        if self.turns == 0 {
            return "no recorded turns to replay".to_owned();
        }
        let moves: Vec<String> = self
            .moves
            .iter()
            .take(EXAMPLES)
            .map(|m| {
                format!("{} → {}{}", m.from, m.to, if m.count > 1 { format!(" ×{}", m.count) } else { String::new() })
            })
            .collect();
        let moved = if moves.is_empty() { String::new() } else { format!(" ({})", moves.join(", ")) };
        format!(
            "{} of {} recorded messages now pick another intent{moved}, {} repl{} change",
            self.intents_changed,
            self.turns,
            self.replies_changed,
            if self.replies_changed == 1 { "y" } else { "ies" }
        )
    }
}

/// Answers from a recording: the first unused recorded call to the same droplet, endpoint and
/// method. Anything else goes to the fallback (a recorded conversation fixture: the bundled
/// samples) or, without one (a replay), fails without calling anyone.
pub struct RecordedAnswers {
    calls: Mutex<VecDeque<RecordedCall>>,
    missing: Mutex<usize>,
    fallback: Option<Arc<dyn DropletBackend>>,
}

impl RecordedAnswers {
    pub fn new(calls: Vec<RecordedCall>, fallback: Option<Arc<dyn DropletBackend>>) -> Self {
        RecordedAnswers { calls: Mutex::new(calls.into()), missing: Mutex::new(0), fallback }
    }
}

impl DropletBackend for RecordedAnswers {
    fn name(&self) -> &str {
        "replay"
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        let mut calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = calls.iter().position(|c| {
            c.droplet == request.droplet_id
                && c.endpoint == request.endpoint
                && c.method.eq_ignore_ascii_case(&request.method)
        });
        let recorded = found.and_then(|i| calls.remove(i));
        drop(calls);
        if let (None, Some(fallback)) = (&recorded, &self.fallback) {
            return fallback.call(request);
        }
        let outcome = match recorded {
            Some(call) => match call.outcome {
                CallStatus::Data => Outcome::Data(call.data.unwrap_or_default()),
                CallStatus::Dispatched => Outcome::Dispatched { relay_trace_id: "replayed".to_owned() },
                CallStatus::Failed => Outcome::Failed {
                    kind: call.kind.as_deref().and_then(FailureKind::parse).unwrap_or(FailureKind::BadResponse),
                    message: call.message.unwrap_or_default(),
                },
            },
            None => {
                *self.missing.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
                Outcome::Failed {
                    kind: FailureKind::Unreachable,
                    message: format!("The {} was not asked this in the recorded turn.", request.droplet_name),
                }
            }
        };
        Box::pin(async move { outcome })
    }
}

/// A language model that answers from a recording: each call takes the first unused recorded
/// answer for its purpose (`classify`, `extract`, `reason`); with none left it is unavailable,
/// as a model that does not answer, so the rules decide.
pub struct RecordedModel {
    answers: Mutex<VecDeque<RecordedModelAnswer>>,
}

impl RecordedModel {
    pub fn new(answers: Vec<RecordedModelAnswer>) -> Self {
        RecordedModel { answers: Mutex::new(answers.into()) }
    }

    /// A configured model answering from `answers` (the live server's limits do not matter:
    /// nothing waits on a recording).
    pub fn llm(answers: Vec<RecordedModelAnswer>) -> Arc<Llm> {
        Arc::new(Llm::new(Arc::new(RecordedModel::new(answers)), Duration::from_secs(5), 0, DEFAULT_MIN_CONFIDENCE))
    }

    fn load(&self, answers: &[RecordedModelAnswer]) {
        *self.answers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = answers.iter().cloned().collect();
    }
}

/// `LLM_MIN_CONFIDENCE`'s default.
const DEFAULT_MIN_CONFIDENCE: f64 = 0.6;

impl LanguageModel for RecordedModel {
    fn provider(&self) -> &'static str {
        "recorded"
    }

    fn model(&self) -> &str {
        "recorded"
    }

    fn attempt<'a>(&'a self, request: &'a LlmRequest, _timeout: Duration) -> BoxFuture<'a, Attempt> {
        let mut answers = self.answers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = answers.iter().position(|a| a.purpose == request.purpose.as_str());
        let attempt = match found.and_then(|i| answers.remove(i)) {
            Some(RecordedModelAnswer { answer: Some(text), .. }) => {
                Attempt::Answer(LlmAnswer { text, model: "recorded".to_owned(), usage: Default::default() })
            }
            _ => Attempt::Failed(LlmError::new(LlmErrorKind::Unreachable, "no recorded answer for this call")),
        };
        Box::pin(async move { attempt })
    }
}

/// Replays `turns` (oldest first) on `candidate` and reports what differs from how they were
/// answered.
pub async fn replay(candidate: Arc<CompiledConfig>, turns: &[RecordedTurn]) -> ChangeReport {
    let (answers, missing) = answer(candidate, turns).await;
    let before: Vec<(String, String)> = turns.iter().map(|t| (t.intent.clone(), t.reply.clone())).collect();
    report(turns, &before, &answers, missing)
}

/// Replays `turns` on `baseline` and on `candidate` and reports what the candidate answers
/// differently (`test --against`: two configurations, neither of them the server's).
pub async fn compare(
    baseline: Arc<CompiledConfig>,
    candidate: Arc<CompiledConfig>,
    turns: &[RecordedTurn],
) -> ChangeReport {
    let (before, _) = answer(baseline, turns).await;
    let (after, missing) = answer(candidate, turns).await;
    report(turns, &before, &after, missing)
}

/// The intent and reply `config` gives each turn, conversation by conversation, with the
/// recorded droplet answers; and how many calls the recording did not have.
async fn answer(config: Arc<CompiledConfig>, turns: &[RecordedTurn]) -> (Vec<(String, String)>, usize) {
    let backend = Arc::new(RecordedAnswers::new(Vec::new(), None));
    let shared = backend.clone();
    let sessions = Arc::new(MemoryStore::new(SessionLimits { recorded_turns: 0, ..SessionLimits::default() }));
    let mut engine = Engine::new(config, shared, sessions);
    // the live server had a model when its turns recorded answers: replay them
    let model = turns.iter().any(|t| !t.model.is_empty()).then(|| Arc::new(RecordedModel::new(Vec::new())));
    if let Some(model) = &model {
        let shared: Arc<dyn LanguageModel> = model.clone();
        engine = engine.with_llm(Arc::new(Llm::new(shared, Duration::from_secs(5), 0, DEFAULT_MIN_CONFIDENCE)));
    }
    let mut answers = Vec::with_capacity(turns.len());
    for recorded in turns {
        *backend.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            recorded.calls.iter().cloned().collect();
        if let Some(model) = &model {
            model.load(&recorded.model);
        }
        let turn = Turn {
            session_id: Some(recorded.session.clone()),
            channel: if recorded.channel == "voice" { Channel::Voice } else { Channel::Chat },
            text: recorded.said.clone(),
            metadata: Default::default(),
            trace_id: "replay".to_owned(),
            preview_other_channel: false,
            owner: Default::default(),
            request_id: None,
            events: None,
        };
        answers.push(match engine.handle(turn).await {
            Ok(reply) => (reply.intent, reply.text),
            Err(error) => ("(error)".to_owned(), error.to_string()),
        });
    }
    let missing = *backend.missing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    (answers, missing)
}

fn report(
    turns: &[RecordedTurn],
    before: &[(String, String)],
    after: &[(String, String)],
    missing: usize,
) -> ChangeReport {
    let mut report = ChangeReport { turns: turns.len(), calls_not_recorded: missing, ..ChangeReport::default() };
    let mut moves: BTreeMap<(String, String), IntentMove> = BTreeMap::new();
    for ((recorded, (was, said_before)), (intent, text)) in turns.iter().zip(before).zip(after) {
        if intent != was {
            report.intents_changed += 1;
            let entry = moves.entry((was.clone(), intent.clone())).or_insert_with(|| IntentMove {
                from: was.clone(),
                to: intent.clone(),
                count: 0,
                examples: Vec::new(),
            });
            entry.count += 1;
            if entry.examples.len() < EXAMPLES && !entry.examples.contains(&recorded.said) {
                entry.examples.push(recorded.said.clone());
            }
        }
        if text.trim_end() != said_before.trim_end() {
            report.replies_changed += 1;
            if report.replies.len() < EXAMPLES {
                report.replies.push(ReplyChange {
                    said: recorded.said.clone(),
                    before: said_before.clone(),
                    after: text.clone(),
                });
            }
        }
    }
    report.moves = moves.into_values().collect();
    report.moves.sort_by_key(|m| std::cmp::Reverse(m.count));
    report
}
