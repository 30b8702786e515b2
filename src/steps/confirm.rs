//! `confirm`: read the values back and wait for consent before the steps after it run.
//!
//! The engine reads the answer to the read-back (`dialogue::answers`) and tells this step what it
//! was: yes continues, no gives the declined reply and ends the action with nothing sent, and
//! anything else (a first visit, a correction, an unclear answer) shows the read-back again. An
//! answer that is still unclear after the allowed tries ends the action politely.

use super::{ReplyTemplates, StepError};
use crate::nlu::answers::YesNo;
use crate::pipeline::{Flow, Pipeline, RunEnv, TurnState};
use crate::trace::DialogueState;

#[derive(Debug)]
pub struct ConfirmStep {
    /// The read-back, ending in a yes/no question.
    pub ask: ReplyTemplates,
    /// The reply to "no".
    pub declined: ReplyTemplates,
    /// The reply when the answers stayed unclear.
    pub give_up: ReplyTemplates,
    pub tries: u32,
}

/// How many unclear answers to a read-back before giving up.
pub const DEFAULT_CONFIRM_TRIES: u32 = 3;

impl ConfirmStep {
    /// `Ok(None)` when consent was given (the next steps run), else the reply or question.
    pub fn run(
        &self,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        index: usize,
    ) -> Result<Option<Flow>, StepError> {
        match state.dialogue.consent {
            Some(YesNo::Yes) => {
                state.trace.notes.push("the user agreed to go ahead".to_owned());
                state.dialogue.state = Some(DialogueState::Confirmed);
                Ok(None)
            }
            Some(YesNo::No) => {
                state.trace.notes.push("the user said no: nothing was sent".to_owned());
                state.dialogue.state = Some(DialogueState::Declined);
                Ok(Some(Flow::Reply(self.declined.render(pipeline, env, state, &[])?)))
            }
            None => {
                let tries = if state.dialogue.unclear { state.dialogue.tries() + 1 } else { 0 };
                if tries >= self.tries {
                    let note = format!("no clear yes or no after {tries} tries: the action was dropped");
                    let detail = serde_json::json!({"question": "consent"});
                    return super::give_up(&self.give_up, pipeline, env, state, note, detail);
                }
                state.dialogue.state = Some(DialogueState::Confirming);
                let unclear = minijinja::Value::from(state.dialogue.unclear);
                let text = self.ask.render(pipeline, env, state, &[("unclear_answer", unclear)])?;
                let answered = state.dialogue.answered().map(str::to_owned);
                let pending = pipeline.park(index, &state.slots, None, tries, answered);
                Ok(Some(Flow::Ask { text, pending: Box::new(pending) }))
            }
        }
    }

    /// One line for `explain`.
    pub fn describe(&self) -> String {
        format!("confirm with {} (chat) / {} (voice), then wait for yes or no", self.ask.chat, self.ask.voice)
    }
}
