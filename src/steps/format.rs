//! `format`: render the reply for the turn's channel.

use minijinja::Value;

use super::StepError;
use crate::pipeline::{Pipeline, RunEnv, TurnState};
use crate::session::Channel;
use crate::speech;

#[derive(Debug)]
pub struct FormatStep {
    pub templates: ReplyTemplates,
}

/// A chat template and a voice template (paths under `templates/`).
#[derive(Debug, Clone)]
pub struct ReplyTemplates {
    pub chat: String,
    pub voice: String,
}

impl FormatStep {
    /// One line for `explain`.
    pub fn describe(&self) -> String {
        format!("format with {} (chat) / {} (voice)", self.templates.chat, self.templates.voice)
    }
}

impl ReplyTemplates {
    pub fn for_channel(&self, channel: Channel) -> &str {
        match channel {
            Channel::Chat => &self.chat,
            Channel::Voice => &self.voice,
        }
    }

    /// Renders the channel's template. Voice output always passes through the speech filter,
    /// so the voice invariant (no markup, emoji or symbols) holds whatever the template says.
    pub fn render(
        &self,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        extra: &[(&str, Value)],
    ) -> Result<String, StepError> {
        if state.preview_other_channel {
            let channel = state.channel;
            state.channel = channel.other();
            let preview = self.render_for(pipeline, env, state, extra);
            state.channel = channel;
            state.other_channel_text = Some(preview?);
        }
        self.render_for(pipeline, env, state, extra)
    }

    /// Renders the turn's channel only (what a progress line needs: no preview of the other).
    pub(crate) fn render_for(
        &self,
        pipeline: &Pipeline,
        env: &RunEnv<'_>,
        state: &mut TurnState,
        extra: &[(&str, Value)],
    ) -> Result<String, StepError> {
        let name = self.for_channel(state.channel);
        let context = pipeline.context(env, state, extra);
        state.trace.templates.push(name.to_owned());
        let text = env.templates.render(name, &context)?;
        Ok(match state.channel {
            Channel::Chat => text,
            Channel::Voice => speech::to_speech(&text),
        })
    }
}
