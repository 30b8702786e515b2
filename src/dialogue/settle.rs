//! Settling a turn: what the conversation waits for after the pipelines' runs.
//!
//! One function, [`settle`], takes what each run returned and the action that was pending
//! before the message, and decides the texts of the reply, the action left pending and the
//! dialogue trace. The rules it keeps:
//!
//! - the first question asked wins (two plans cannot both park);
//! - a reply that failed to render keeps what was pending, unless a command already went out
//!   (keeping it would send the command twice);
//! - an action that waited while something else was answered ([`Planned::kept`]) asks its
//!   question again after the reply, unless the reply asked one of its own; its trace says
//!   [`DialogueState::Kept`].
//!
//! [`Planned::kept`]: super::plan::Planned::kept

use serde_json::json;

use crate::config::CompiledConfig;
use crate::pipeline::{Flow, Pipeline, RunEnv, TurnDialogue, TurnState};
use crate::session::{Channel, Pending};
use crate::steps::StepError;
use crate::trace::{AnswerReading, DialogueState, DialogueTrace, ModelStatus, TurnTrace};

/// Said when a reply could not be rendered. The user's message is still stored.
const RENDER_FAILURE_CHAT: &str =
    "Sorry — something went wrong while preparing that answer. Your message was kept; please try again in a moment.";
const RENDER_FAILURE_VOICE: &str =
    "Sorry, something went wrong while preparing that answer. Your message was kept. Please try again in a moment.";

/// What one pipeline run returned, with the state it ran on.
pub struct Run<'c> {
    pub pipeline: &'c Pipeline,
    pub flow: Result<Flow, StepError>,
    pub state: TurnState,
}

/// The turn as settling needs it.
pub struct Settling<'a> {
    pub config: &'a CompiledConfig,
    pub env: &'a RunEnv<'a>,
    pub channel: Channel,
    /// Render the reply for the other channel too.
    pub preview_other_channel: bool,
    pub config_version: u64,
    /// The action that was pending before this message.
    pub previous: Option<Pending>,
    /// The action that waited while the message was answered as something else.
    pub kept: Option<Pending>,
}

/// What the conversation is after the turn.
pub struct Settled {
    /// The reply's parts in order.
    pub texts: Vec<String>,
    /// The same, rendered for the other channel (when asked for).
    pub other_texts: Vec<String>,
    /// What the session waits for next.
    pub pending: Option<Pending>,
    /// The intent that answered: the first run's.
    pub intent: String,
    /// The first run's state, the other runs' traces joined into its trace.
    pub state: TurnState,
}

/// Settles a turn from its runs (in plan order). `None` only when there was no run at all,
/// which planning never returns.
pub async fn settle(turn: Settling<'_>, runs: Vec<Run<'_>>) -> Option<Settled> {
    let mut texts = Vec::new();
    let mut other_texts = Vec::new();
    let mut primary: Option<(String, TurnState)> = None;
    let mut asked: Option<Pending> = None;
    let mut failed = false;
    for Run { pipeline, flow, mut state } in runs {
        let intent = pipeline.intent.clone();
        let mut asked_here = None;
        let text = match flow {
            Ok(Flow::Reply(text)) => text,
            Ok(Flow::Ask { text, pending }) => {
                asked_here = pending.asking.clone();
                asked.get_or_insert(*pending);
                text
            }
            Err(error) => {
                tracing::error!(trace_id = %turn.env.trace_id, intent = %intent, error = %error, "turn failed to render");
                state.trace.notes.push(format!("reply failed: {error}"));
                let sent = state.trace.commands_sent().next().is_some();
                if sent {
                    state
                        .trace
                        .notes
                        .push("the command was sent before the reply failed: nothing is kept to send again".to_owned());
                }
                failed = primary.is_none() && !sent;
                // what was pending stays pending: the trace says what it still waits for
                if let Some(previous) = turn.previous.as_ref().filter(|_| failed) {
                    asked_here = previous.asking.clone();
                    let waiting = if asked_here.is_some() { DialogueState::Asking } else { DialogueState::Confirming };
                    state.dialogue.state = Some(waiting);
                    state.trace.dialogue = None;
                }
                match turn.channel {
                    Channel::Chat => RENDER_FAILURE_CHAT.to_owned(),
                    Channel::Voice => crate::speech::to_speech(RENDER_FAILURE_VOICE),
                }
            }
        };
        texts.push(text);
        other_texts.extend(state.other_channel_text.take());
        if state.trace.dialogue.is_none() {
            state.trace.dialogue = dialogue_trace(&intent, &state.dialogue, asked_here);
        }
        match &mut primary {
            None => primary = Some((intent, state)),
            Some((_, first)) => join_trace(&mut first.trace, state.trace),
        }
    }
    let (intent, mut state) = primary?;
    // a failed reply keeps whatever was pending, so the user's unfinished action survives
    let mut pending = if failed { turn.previous.clone() } else { asked };
    match turn.kept.clone() {
        // something else was answered: the waiting action's question comes back
        Some(kept) if pending.is_none() && !failed => {
            let again = ask_again(&turn, kept).await;
            if let Some(again) = again {
                texts.push(again.text);
                other_texts.extend(again.other_text);
                state
                    .trace
                    .notes
                    .push(format!("answered something else; the `{}` action still waits", again.pending.intent));
                state.trace.dialogue =
                    dialogue_trace(&again.pending.intent, &again.dialogue, again.pending.asking.clone()).map(|trace| {
                        DialogueTrace {
                            state: DialogueState::Kept,
                            answer: Some(AnswerReading::AnotherRequest),
                            ..trace
                        }
                    });
                pending = Some(again.pending);
            }
        }
        Some(kept) if pending.as_ref().is_some_and(|p| p.intent != kept.intent) => {
            state.trace.notes.push(format!("left the unfinished `{}` action for a new one", kept.intent));
        }
        _ => {}
    }
    Some(Settled { texts, other_texts, pending, intent, state })
}

/// A waiting action's question, asked again.
struct AskedAgain {
    text: String,
    other_text: Option<String>,
    pending: Pending,
    dialogue: TurnDialogue,
}

/// Asks the question of an action that waited while something else was answered: its pipeline
/// runs again from the waiting step with no new words.
async fn ask_again(turn: &Settling<'_>, kept: Pending) -> Option<AskedAgain> {
    let pipeline = turn.config.pipeline(&kept.intent)?;
    let mut state = TurnState {
        message: String::new(),
        reading: Default::default(),
        channel: turn.channel,
        resumed: false,
        slots: kept.slots.clone(),
        results: Default::default(),
        cleared: None,
        llm: json!({"configured": turn.env.llm.is_some(), "status": ModelStatus::NotNeeded, "clarification": null, "message": null}),
        llm_may_extract: false,
        preview_other_channel: turn.preview_other_channel,
        other_channel_text: None,
        dialogue: TurnDialogue { resuming: true, waiting: Some(kept.clone()), ..TurnDialogue::default() },
        trace: TurnTrace { config_version: turn.config_version, ..TurnTrace::default() },
        sources: Default::default(),
        answers: Vec::new(),
        understanding: Default::default(),
    };
    match pipeline.run(turn.env, &mut state, kept.step).await {
        Ok(Flow::Ask { text, pending }) => {
            // the same question, not a new one: its unusable answers still count
            let pending = Pending { tries: kept.tries, answered: kept.answered, ..*pending };
            Some(AskedAgain { text, other_text: state.other_channel_text.take(), pending, dialogue: state.dialogue })
        }
        // the waiting step needs nothing more (cannot happen with no new words): leave it
        Ok(Flow::Reply(_)) | Err(_) => None,
    }
}

/// The trace's view of an action's dialogue, when a step got as far as asking or confirming;
/// `asking` is the slot a question asked for this turn.
fn dialogue_trace(intent: &str, dialogue: &TurnDialogue, asking: Option<String>) -> Option<DialogueTrace> {
    Some(DialogueTrace {
        intent: intent.to_owned(),
        state: dialogue.state?,
        asking,
        tries_left: dialogue.tries_left,
        changed: dialogue.changed.clone(),
        answer: dialogue.answer,
    })
}

/// Adds a further intent's run to the turn's trace (a message that asked for several things).
fn join_trace(first: &mut TurnTrace, other: TurnTrace) {
    first.joined.push(other.intent);
    first.steps.extend(other.steps);
    first.calls.extend(other.calls);
    first.llm.extend(other.llm);
    first.templates.extend(other.templates);
    first.notes.extend(other.notes);
}
