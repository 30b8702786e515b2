//! The conversation engine: one turn in, one reply out.
//!
//! The engine is pure: no HTTP types and no file IO. Droplet calls, sessions and the language
//! model come in through traits it is given, which is what lets the server, the CLI and the tests run
//! the very same engine. A turn takes one configuration version at its start and uses only that
//! version, and holds its session's lease from start to commit (see `session`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::future::join_all;
use serde_json::{json, Map, Value};

use crate::backend::DropletBackend;
use crate::config::CompiledConfig;
use crate::dialogue::{self, model_may_decide, InFocus, Plan, Planned, Run, Settled, Settling};
use crate::llm::{Llm, Speaker};
use crate::nlu::Reading;
use crate::pipeline::{RunEnv, TurnDialogue, TurnState};
use crate::session::{
    AnsweredRequest, Channel, Message, Owner, Pending, RecordedCall, RecordedModelAnswer, RecordedTurn, Role, Session,
    SessionStore, StoreError, ANSWERED_KEPT,
};
use crate::trace::{IntentSource, IntentTrace, ModelStatus, TurnTrace};
use crate::turn_events::TurnEvents;
use crate::understand::Understanding;
use crate::util::utc_timestamp;

mod missed;
pub(crate) mod redact;

/// What the user said and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// `None` starts a new session.
    pub session_id: Option<String>,
    pub channel: Channel,
    pub text: String,
    /// Caller metadata, merged into the session.
    pub metadata: Map<String, Value>,
    pub trace_id: String,
    /// Also render the reply for the other channel (the playground shows both side by side).
    pub preview_other_channel: bool,
    /// Whose sessions this turn may use ([`Owner`]): another owner's session id reaches a
    /// session of this owner's own.
    pub owner: Owner,
    /// The client's id for this request (`Idempotency-Key`, `request_id`): a turn retried with
    /// the same id in the same session gets the reply it got the first time, and nothing runs
    /// again.
    pub request_id: Option<String>,
    /// A client that listens while the turn works: progress lines when droplets are slow, and
    /// streamed model answers ([`TurnEvents`]). `None` (REST JSON, relays, the CLI): the turn
    /// runs exactly as without it.
    pub events: Option<TurnEvents>,
}

impl Turn {
    /// The session this turn is in: the one named, or the new one it starts (the same on every
    /// retry of a first turn with a request id, so the retry finds the stored reply).
    pub fn session_id(&self) -> String {
        self.session_id.clone().unwrap_or_else(|| match &self.request_id {
            Some(request) => session_for_request(request),
            None => uuid::Uuid::new_v4().to_string(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub session_id: String,
    pub trace_id: String,
    pub intent: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
    pub trace: TurnTrace,
    /// The same reply rendered for the other channel, when the turn asked for it.
    pub other_channel_text: Option<String>,
}

impl Reply {
    /// The reply a request id got before, given again.
    fn replayed(answered: AnsweredRequest, session_id: String) -> Reply {
        let trace = TurnTrace {
            intent: crate::trace::IntentTrace {
                id: answered.intent.clone(),
                source: IntentSource::Replayed,
                reason: "this request id was answered before".to_owned(),
                ..Default::default()
            },
            notes: vec!["a retried request: the stored reply is returned and nothing ran again".to_owned()],
            ..Default::default()
        };
        Reply {
            text: answered.text,
            session_id,
            trace_id: answered.trace_id,
            intent: answered.intent,
            timestamp: answered.timestamp,
            trace,
            other_channel_text: answered.other_channel_text,
        }
    }
}

/// The reply a retried request got the first time, when this turn retries one: the session is
/// left as it is (the lease is dropped uncommitted). A request id reused for another message is
/// refused.
fn answered_before(session: &Session, turn: &Turn, session_id: &str) -> Result<Option<Reply>, TurnError> {
    let Some(answered) = turn.request_id.as_ref().and_then(|id| session.answered.iter().find(|a| a.request_id == *id))
    else {
        return Ok(None);
    };
    if !answered.carried(&turn.text) {
        return Err(TurnError::RequestIdReused(answered.request_id.clone()));
    }
    tracing::info!(trace_id = %answered.trace_id, session = %session_id, "retried request answered from the session");
    Ok(Some(Reply::replayed(answered.clone(), session_id.to_owned())))
}

/// What a turn keeps of its runs besides the reply: for masking, and for the turn journal.
#[derive(Default)]
struct Journal {
    /// The sensitive values given in the action so far.
    secrets: redact::Secrets,
    /// Every droplet call made, with its answer as it came.
    calls: Vec<RecordedCall>,
    /// Every model answer.
    model: Vec<RecordedModelAnswer>,
}

/// The session a first turn with this request id starts: the same on every retry (and on every
/// replica), so the retry finds the stored reply.
fn session_for_request(request_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("request:{request_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: the resolver chose intent `{0}`, which is not compiled")]
    UnknownIntent(String),
    /// The request id was used before in this session for a different message: a retry must
    /// resend the same message.
    #[error("the request id `{0}` was already used for a different message in this session; send a new id")]
    RequestIdReused(String),
}

/// One configuration version. A turn reads it once and uses it throughout; the droplet backend
/// keeps no configuration (each request carries what the turn's catalogue declares), so a
/// turn cannot mix two versions.
pub struct Runtime {
    pub config: Arc<CompiledConfig>,
    /// Increases by one with every configuration installed, starting at 1.
    pub version: u64,
}

pub struct Engine {
    current: ArcSwap<Runtime>,
    /// The language model, when one is configured; rules answer without it.
    llm: Option<Arc<Llm>>,
    /// Where droplet calls go, for every configuration version.
    backend: Arc<dyn DropletBackend>,
    /// Serialises installs so versions go live in the order they are numbered.
    installing: std::sync::Mutex<u64>,
    sessions: Arc<dyn SessionStore>,
    /// Where `test --coverage` collects what each run reached.
    coverage: Option<Arc<crate::coverage::Coverage>>,
    /// How long a query waits before its `progress:` line is sent (`PROGRESS_AFTER_MS`).
    progress_after: std::time::Duration,
}

/// `PROGRESS_AFTER_MS`'s default: long enough that a quick answer sends no progress line.
pub const DEFAULT_PROGRESS_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// What [`Engine::analyze`] found.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The intents, most important first (several only when the model found several).
    pub intents: Vec<Analyzed>,
    /// The model's call, when one was made.
    pub llm: Vec<crate::trace::LlmCallTrace>,
    pub llm_status: ModelStatus,
}

#[derive(Debug, Clone)]
pub struct Analyzed {
    pub why: IntentTrace,
    /// Slot values the message gives (from `key:value` pairs, droplet names, or the model).
    pub slots: Map<String, Value>,
    pub notes: Vec<String>,
}

/// How many earlier messages the language model sees.
const LLM_HISTORY: usize = 6;

/// The plans for a turn after asking the language model (when it was asked).
struct Understood {
    plans: Vec<Plan>,
    status: ModelStatus,
    /// The `llm` template variable: `{configured, status, clarification, message}`.
    context: Value,
    calls: Vec<crate::trace::LlmCallTrace>,
}

impl Engine {
    pub fn new(config: Arc<CompiledConfig>, backend: Arc<dyn DropletBackend>, sessions: Arc<dyn SessionStore>) -> Self {
        let first = Runtime { config, version: 1 };
        Engine {
            current: ArcSwap::from_pointee(first),
            llm: None,
            backend,
            installing: std::sync::Mutex::new(1),
            sessions,
            coverage: None,
            progress_after: DEFAULT_PROGRESS_AFTER,
        }
    }

    /// How long a query waits for its droplets before a listening client gets its `progress:`
    /// line (a step may set its own `after_ms`).
    pub fn with_progress_after(mut self, after: std::time::Duration) -> Self {
        self.progress_after = after;
        self
    }

    /// Reports every pipeline run to `coverage` (`test --coverage`).
    pub fn with_coverage(mut self, coverage: Arc<crate::coverage::Coverage>) -> Self {
        self.coverage = Some(coverage);
        self
    }

    /// Lets the engine ask a language model when no rule decides.
    pub fn with_llm(mut self, llm: Arc<Llm>) -> Self {
        self.llm = Some(llm);
        self
    }

    /// The language model, when one is configured.
    pub fn llm(&self) -> Option<&Arc<Llm>> {
        self.llm.as_ref()
    }

    /// The greeting for a client that just connected, on its channel.
    pub fn welcome(&self, channel: Channel) -> Result<String, crate::template::RenderError> {
        let runtime = self.runtime();
        let config = &runtime.config;
        let context = minijinja::Value::from(std::collections::BTreeMap::from([
            ("channel", minijinja::Value::from(channel.as_str())),
            ("droplets", config.droplets_value.clone()),
            ("intents", config.intents_value.clone()),
            ("backend", minijinja::Value::from(self.backend.name())),
        ]));
        let text = config.templates.render(config.welcome.for_channel(channel), &context)?;
        Ok(match channel {
            Channel::Chat => text,
            Channel::Voice => crate::speech::to_speech(&text),
        })
    }

    /// The sentence about parts of a message no intent reads, on the turn's channel.
    fn say_unread(
        &self,
        config: &CompiledConfig,
        channel: Channel,
        unread: &[String],
    ) -> Result<String, crate::template::RenderError> {
        // spoken, only parts made of plain words are read back: a fragment of a web address or a
        // run of symbols would be read out as nonsense ("example or login now")
        let plain =
            |part: &&String| part.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "'-,".contains(c));
        let unread: Vec<&String> = match channel {
            Channel::Chat => unread.iter().collect(),
            Channel::Voice => unread.iter().filter(plain).collect(),
        };
        let context = minijinja::Value::from(std::collections::BTreeMap::from([
            ("channel", minijinja::Value::from(channel.as_str())),
            ("unread", crate::template::to_value(unread)),
        ]));
        let text = config.templates.render(config.unread.for_channel(channel), &context)?;
        Ok(match channel {
            Channel::Chat => text,
            Channel::Voice => crate::speech::to_speech(&text),
        })
    }

    /// Where conversations are kept.
    /// Missed messages grouped by what the running configuration's matcher reads in them (the
    /// same words, any number, any droplet name).
    pub fn group_missed(&self, messages: &[crate::session::MissedMessage]) -> Vec<crate::session::MissedGroup> {
        let runtime = self.runtime();
        let analyzer = runtime.config.resolver.analyzer();
        crate::session::group_missed(messages, |text| {
            let mut terms = analyzer.analyze(text, crate::nlu::analyzer::Entities::Message).terms;
            terms.sort();
            terms.join(" ")
        })
    }

    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.sessions
    }

    /// Where droplet calls go.
    pub fn backend(&self) -> &Arc<dyn DropletBackend> {
        &self.backend
    }

    /// The configuration version turns start on now.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Makes `config` the version every new turn uses; turns in flight finish on theirs.
    /// Returns the new version number.
    pub fn install(&self, config: Arc<CompiledConfig>) -> u64 {
        let mut last = self.installing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last += 1;
        self.current.store(Arc::new(Runtime { config, version: *last }));
        *last
    }

    /// Runs one turn to a reply. Only a session store failure is an error: everything that goes
    /// wrong inside the pipeline still yields a reply and keeps the user's message.
    ///
    /// lease → plan → understand → run → settle → commit → record.
    pub async fn handle(&self, turn: Turn) -> Result<Reply, TurnError> {
        let started = std::time::Instant::now();
        let runtime = self.runtime();
        let config = &runtime.config;
        let session_id = turn.session_id();
        let mut lease = self.sessions.lease(&turn.owner.key(&session_id)).await?;
        if let Some(reply) = answered_before(lease.session(), &turn, &session_id)? {
            return Ok(reply);
        }
        let history = self.open_turn(lease.session(), &turn);
        let previous = lease.session().pending.take();

        // the message is read once (words, typos, numbers, droplets) and every reader starts from it
        let reading = Arc::new(config.resolver.analyzer().read(&turn.text));
        let focus = lease.session().focus.clone();
        let in_focus = InFocus::new(&focus, lease.session().turns, config.focus_turns);
        let Planned { plans, kept } = dialogue::plan(config, &reading, previous.clone(), &in_focus);
        let rules_unsure = plans.iter().any(|p| !p.confident && p.why.source == IntentSource::Rules);
        let understood = self.understand(config, plans, &reading, history, &in_focus).await;
        let llm_status = understood.status;
        // the fallback's reply already says what was not understood
        let unread: Vec<String> = understood
            .plans
            .iter()
            .filter(|p| p.intent != config.resolver.fallback())
            .flat_map(|p| p.unread.iter().cloned())
            .collect();
        let env = self.run_env(config, &turn);
        let mut runs = match self.run(config, &runtime, &turn, &env, understood.plans, &understood.context).await {
            Ok(runs) => runs,
            Err(unknown) => {
                // the resolver only names compiled intents: reaching this is a bug, reported as
                // one, but the user's message is stored first
                lease.commit().await?;
                return Err(unknown);
            }
        };
        let mut journal = self.gather(config, &mut runs, [&previous, &kept], &understood.calls);

        let settling = Settling {
            config,
            env: &env,
            channel: turn.channel,
            preview_other_channel: turn.preview_other_channel,
            config_version: runtime.version,
            previous,
            kept,
        };
        let Some(mut settled) = dialogue::settle(settling, runs).await else {
            // planning always gives at least one plan; none would be a bug like the one above
            lease.commit().await?;
            return Err(TurnError::UnknownIntent(String::new()));
        };
        settled.state.trace.llm.splice(0..0, understood.calls);
        dialogue::focus::remember(config, &settled, &reading, lease.session());
        let said = journal.secrets.mask(&turn.text);
        let reply = self.reply(config, lease.session(), &turn, settled, &unread, &journal, &session_id, &said);
        lease.commit().await?;

        let understood_as = missed::Understood {
            why: &reply.trace.intent,
            llm_status,
            rules_unsure,
            fallback: config.resolver.fallback(),
        };
        self.keep_missed(&understood_as, &said, &unread, &turn, &journal.secrets).await;
        self.record_turn(&runtime, &turn, &session_id, &said, &reply, &mut journal).await;
        let channel = turn.channel.as_str();
        metrics::counter!("chat_turns_total", "intent" => reply.intent.clone(), "channel" => channel, "source" => reply.trace.intent.source.as_str())
            .increment(1);
        metrics::histogram!("chat_turn_duration_seconds", "channel" => channel).record(started.elapsed().as_secs_f64());
        tracing::info!(trace_id = %turn.trace_id, session = %session_id, intent = %reply.intent, channel, "turn answered");
        Ok(reply)
    }

    /// Starts the turn in its session: the channel and metadata it came with, the user's message
    /// in the history. Returns what was said before it, for the language model's context.
    fn open_turn(&self, session: &mut Session, turn: &Turn) -> Vec<(Speaker, String)> {
        session.channel = turn.channel;
        session.metadata.extend(turn.metadata.clone());
        session.turns += 1;
        let history = session
            .history
            .iter()
            .rev()
            .take(LLM_HISTORY)
            .rev()
            .map(|m| (if m.role == Role::User { Speaker::User } else { Speaker::Assistant }, m.text.to_string()))
            .collect();
        let message =
            Message { role: Role::User, text: turn.text.as_str().into(), intent: None, at: utc_timestamp().into() };
        session.push(message, self.sessions.limits().max_history);
        history
    }

    /// Everything a run reads but does not own, for this turn.
    fn run_env<'a>(&'a self, config: &'a CompiledConfig, turn: &'a Turn) -> RunEnv<'a> {
        RunEnv {
            templates: &config.templates,
            catalogue: &config.catalogue,
            analyzer: config.resolver.analyzer(),
            backend: self.backend.as_ref(),
            droplets: &config.droplets_value,
            intents: &config.intents_value,
            trace_id: &turn.trace_id,
            llm: self.llm.as_deref(),
            events: turn.events.as_ref(),
            progress_after: self.progress_after,
        }
    }

    /// Runs each plan's pipeline from its step, all at once; the runs come back in plan order.
    async fn run<'c>(
        &self,
        config: &'c CompiledConfig,
        runtime: &Runtime,
        turn: &Turn,
        env: &RunEnv<'_>,
        plans: Vec<Plan>,
        llm: &Value,
    ) -> Result<Vec<Run<'c>>, TurnError> {
        let classified_by_llm = plans.first().is_some_and(|p| p.why.source == IntentSource::Llm);
        let mut planned = Vec::new();
        for plan in plans {
            match config.pipeline(&plan.intent) {
                Some(pipeline) => planned.push((pipeline, plan)),
                None => return Err(TurnError::UnknownIntent(plan.intent)),
            }
        }
        Ok(join_all(planned.into_iter().map(|(pipeline, plan)| {
            let mut state = TurnState {
                message: plan.reading.text.clone(),
                reading: plan.reading,
                channel: turn.channel,
                resumed: plan.resumed,
                slots: plan.slots,
                results: Default::default(),
                cleared: plan.cleared,
                llm: llm.clone(),
                llm_may_extract: !classified_by_llm,
                preview_other_channel: turn.preview_other_channel,
                other_channel_text: None,
                dialogue: plan.dialogue,
                sources: plan.sources,
                answers: Vec::new(),
                understanding: plan.understanding.unwrap_or_default(),
                trace: TurnTrace {
                    intent: plan.why,
                    backend: self.backend.name().to_owned(),
                    config_version: runtime.version,
                    notes: plan.notes,
                    ..TurnTrace::default()
                },
            };
            async move {
                let flow = pipeline.run(env, &mut state, plan.start).await;
                Run { pipeline, flow, state }
            }
        }))
        .await)
    }

    /// What the turn keeps of its runs, before they are settled: the sensitive values to mask
    /// (those given earlier in a pending action too), the droplet and model answers for the
    /// journal, the trace's masked slots, and what coverage reached.
    fn gather(
        &self,
        config: &CompiledConfig,
        runs: &mut [Run<'_>],
        pending: [&Option<Pending>; 2],
        model_calls: &[crate::trace::LlmCallTrace],
    ) -> Journal {
        let mut journal = Journal { model: model_calls.iter().map(model_answer).collect(), ..Journal::default() };
        // a value given earlier in the action (a correction replaces it; its question comes back
        // after a digression) is as sensitive as one given now
        for pending in pending.into_iter().flatten() {
            if let Some(pipeline) = config.pipeline(&pending.intent) {
                journal.secrets.add(&pipeline.slots, &pending.slots);
            }
        }
        for Run { pipeline, state, .. } in runs.iter_mut() {
            journal.model.extend(state.trace.llm.iter().map(model_answer));
            journal.secrets.add(&pipeline.slots, &state.slots);
            journal.calls.append(&mut state.answers);
            if let Some(coverage) = &self.coverage {
                coverage.record(pipeline, &state.trace);
            }
            state.trace.slots = Value::Object(redact::masked_slots(&pipeline.slots, &state.slots));
            state.trace.slot_sources = slot_sources(state);
        }
        journal
    }

    /// The reply the settled turn gives, written into the session (the action left pending, the
    /// answer in the history, the reply under the request id) with no sensitive value kept.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &self,
        config: &CompiledConfig,
        session: &mut Session,
        turn: &Turn,
        settled: Settled,
        unread: &[String],
        journal: &Journal,
        session_id: &str,
        said: &str,
    ) -> Reply {
        let Settled { mut texts, other_texts, pending, intent, mut state } = settled;
        session.pending = pending;
        if !unread.is_empty() {
            match self.say_unread(config, turn.channel, unread) {
                Ok(said) => texts.push(said),
                Err(error) => state.trace.notes.push(format!("could not say what was not understood: {error}")),
            }
            state.trace.notes.push(format!("not understood: {}", unread.join(" | ")));
        }
        let secrets = &journal.secrets;
        let separator = if turn.channel == Channel::Voice { " " } else { "\n\n" };
        let text = texts.join(separator);
        // what is kept of this turn holds no sensitive value (the reply itself still does)
        let kept_text = secrets.mask(&text);
        if !secrets.is_empty() {
            if let Some(message) = session.history.iter_mut().rev().find(|m| m.role == Role::User) {
                message.text = said.into();
            }
            // a correction is traced as `slot: old → new`
            if let Some(dialogue) = &mut state.trace.dialogue {
                dialogue.changed = dialogue.changed.iter().map(|c| secrets.mask(c)).collect();
            }
        }
        let other_channel_text = (!other_texts.is_empty())
            .then(|| other_texts.join(if turn.channel == Channel::Voice { "\n\n" } else { " " }));
        let answer = Message {
            role: Role::Assistant,
            text: kept_text.as_str().into(),
            intent: Some(intent.as_str().into()),
            at: utc_timestamp().into(),
        };
        session.push(answer, self.sessions.limits().max_history);
        if let Some(request_id) = &turn.request_id {
            session.answered.push_back(AnsweredRequest {
                request_id: request_id.clone(),
                said: said.to_owned(),
                said_digest: Some(crate::session::message_digest(&turn.text)),
                text: kept_text,
                intent: intent.clone(),
                trace_id: turn.trace_id.clone(),
                timestamp: utc_timestamp(),
                other_channel_text: other_channel_text.as_deref().map(|t| secrets.mask(t)),
            });
            while session.answered.len() > ANSWERED_KEPT {
                session.answered.pop_front();
            }
        }
        Reply {
            text,
            session_id: session_id.to_owned(),
            trace_id: turn.trace_id.clone(),
            intent,
            timestamp: utc_timestamp(),
            trace: state.trace,
            other_channel_text,
        }
    }

    /// Keeps a message the stewards should see (not understood well). Never a reason for the
    /// turn to fail.
    async fn keep_missed(
        &self,
        understood: &missed::Understood<'_>,
        said: &str,
        unread: &[String],
        turn: &Turn,
        secrets: &redact::Secrets,
    ) {
        if self.sessions.limits().missed.kept == 0 {
            return;
        }
        for mut message in missed::kept(understood, said, unread, turn.channel) {
            message.text = secrets.mask(&message.text);
            if let Err(error) = self.sessions.note_missed(message).await {
                tracing::warn!(trace_id = %turn.trace_id, error = %error, "a missed message could not be kept");
            }
        }
    }

    /// Keeps the turn with its droplet and model answers (masked) for replays. Never a reason
    /// for the turn to fail.
    async fn record_turn(
        &self,
        runtime: &Runtime,
        turn: &Turn,
        session_id: &str,
        said: &str,
        reply: &Reply,
        journal: &mut Journal,
    ) {
        if self.sessions.limits().recorded_turns == 0 {
            return;
        }
        let secrets = &journal.secrets;
        for call in &mut journal.calls {
            if let Some(data) = &mut call.data {
                secrets.mask_json(data);
            }
        }
        let recorded = RecordedTurn {
            session: session_id.to_owned(),
            said: said.to_owned(),
            channel: turn.channel.as_str().to_owned(),
            intent: reply.intent.clone(),
            reply: secrets.mask(&reply.text),
            calls: std::mem::take(&mut journal.calls),
            model: std::mem::take(&mut journal.model)
                .into_iter()
                .map(|mut m| {
                    m.answer = m.answer.map(|a| secrets.mask(&a));
                    m
                })
                .collect(),
            at: utc_timestamp(),
            config_version: runtime.version,
        };
        if let Err(error) = self.sessions.record_turn(recorded).await {
            tracing::warn!(trace_id = %turn.trace_id, error = %error, "a turn could not be kept for replays");
        }
    }

    /// Which intent(s) a message has and the slots it gives, without running anything or
    /// touching a session: rules, then (when no rule decides) the same one classification call a
    /// turn would make.
    pub async fn analyze(&self, text: &str) -> Analysis {
        let runtime = self.runtime();
        let config = &runtime.config;
        let reading = Arc::new(config.resolver.analyzer().read(text));
        let plans = dialogue::plan(config, &reading, None, &InFocus::none()).plans;
        let understood = self.understand(config, plans, &reading, Vec::new(), &InFocus::none()).await;
        let intents = understood
            .plans
            .into_iter()
            .map(|plan| {
                let mut slots = plan.slots;
                let extract =
                    config.pipeline(&plan.intent).and_then(|pipeline| Some((pipeline, pipeline.first_extract()?)));
                if let Some((pipeline, extract)) = extract {
                    let reader = extract.reader(pipeline, &config.catalogue, config.resolver.analyzer());
                    reader.fill(&plan.reading, crate::slots::fill::Said::Fresh, &mut slots);
                }
                Analyzed { why: plan.why, slots, notes: plan.notes }
            })
            .collect();
        Analysis { intents, llm: understood.calls, llm_status: understood.status }
    }

    /// Whether, with a model configured, a fresh message would be asked of it (the rules are
    /// unsure). Counted over the utterance corpus.
    pub fn would_ask_model(&self, text: &str) -> bool {
        let runtime = self.runtime();
        let reading = Arc::new(runtime.config.resolver.analyzer().read(text));
        model_may_decide(&dialogue::plan(&runtime.config, &reading, None, &InFocus::none()).plans)
    }

    /// When no rule decided (and nothing was pending), asks the language model to choose among
    /// the declared intents: one call, told what the conversation is about; a slot the chosen
    /// request leaves open takes the value in focus as a rule-read follow-up would. Any failure
    /// leaves the fallback plan in place, and says why in the `llm` template variable.
    async fn understand(
        &self,
        config: &CompiledConfig,
        mut plans: Vec<Plan>,
        reading: &Arc<Reading>,
        history: Vec<(Speaker, String)>,
        focus: &InFocus<'_>,
    ) -> Understood {
        let text = reading.text.as_str();
        let context = |status: ModelStatus, clarification: Option<String>, message: Option<String>| json!({"configured": self.llm.is_some(), "status": status, "clarification": clarification, "message": message});
        let unsure = model_may_decide(&plans);
        let Some(llm) = self.llm.as_deref().filter(|_| unsure) else {
            let status = if self.llm.is_some() { ModelStatus::NotNeeded } else { ModelStatus::Off };
            return Understood { plans, status, context: context(status, None, None), calls: Vec::new() };
        };
        let Some(plan) = plans.pop() else {
            let status = ModelStatus::NotNeeded;
            return Understood { plans, status, context: context(status, None, None), calls: Vec::new() };
        };
        let (result, call) = llm.ask(&config.classifier.request(history, text, focus.describe(config))).await;
        let mut fallback = plan;
        let (plans, status, clarification, message) = match result {
            Err(error) => {
                fallback.notes.push(format!("the language model could not classify the message: {error}"));
                (vec![fallback], ModelStatus::Unavailable, None, Some(error.message))
            }
            Ok(answer) => {
                match config.classifier.read(
                    &answer.text,
                    &config.pipelines,
                    &config.catalogue,
                    text,
                    llm.min_confidence,
                ) {
                    Understanding::Intents { chosen, confidence, notes } => {
                        let plans = chosen
                            .into_iter()
                            .map(|chosen| Plan {
                                why: IntentTrace {
                                    id: chosen.intent.clone(),
                                    source: IntentSource::Llm,
                                    score: confidence,
                                    reason: format!(
                                        "no rule decided; the language model chose it (confidence {confidence:.2})"
                                    ),
                                    runner_up: None,
                                },
                                intent: chosen.intent,
                                reading: reading.clone(),
                                confident: true,
                                start: 0,
                                slots: chosen.slots,
                                resumed: false,
                                cleared: None,
                                notes: notes.clone(),
                                dialogue: TurnDialogue::default(),
                                unread: Vec::new(),
                                sources: Default::default(),
                                understanding: None,
                            })
                            .map(|plan| dialogue::focus::with_focus_values(config, plan, focus))
                            .collect();
                        (plans, ModelStatus::Understood, None, None)
                    }
                    Understanding::Unsure { confidence, clarification } => {
                        fallback.notes.push(format!(
                            "the language model was not sure enough (confidence {confidence:.2}, needed {:.2})",
                            llm.min_confidence
                        ));
                        (vec![fallback], ModelStatus::Unsure, clarification, None)
                    }
                    Understanding::Invalid { reason } => {
                        fallback.notes.push(format!("the language model's answer was rejected: {reason}"));
                        (vec![fallback], ModelStatus::Invalid, None, Some(reason))
                    }
                }
            }
        };
        Understood { plans, status, context: context(status, clarification, message), calls: vec![call] }
    }
}

/// Where each slot value a run ended with came from: what the plan started with (`earlier`,
/// `focus, turn N`) unless this message changed it, else `asked` (the answer to the question
/// for it) or `said`.
fn slot_sources(state: &TurnState) -> std::collections::BTreeMap<String, String> {
    let started = state.dialogue.waiting.as_ref().map(|w| &w.slots);
    state
        .slots
        .iter()
        .map(|(name, value)| {
            let unchanged = started.is_none_or(|before| before.get(name) == Some(value));
            let source = match state.sources.get(name) {
                Some(source) if unchanged => source.clone(),
                _ if state.resumed && state.dialogue.asking() == Some(name.as_str()) => "asked".to_owned(),
                _ => "said".to_owned(),
            };
            (name.clone(), source)
        })
        .collect()
}

/// A model call as the turn journal keeps it.
fn model_answer(call: &crate::trace::LlmCallTrace) -> RecordedModelAnswer {
    RecordedModelAnswer { purpose: call.purpose.clone(), answer: call.answer.clone() }
}
