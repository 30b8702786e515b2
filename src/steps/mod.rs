//! The step kinds a pipeline is made of, one file each, named after its YAML keyword.
//!
//! Dispatch is a closed enum: adding a step kind means a new file here, a variant, a schema
//! entry and a compile rule — all visible in review, none discovered at run time.

mod confirm;
mod extract;
mod format;
mod query;
mod reason;

pub use confirm::{ConfirmStep, DEFAULT_CONFIRM_TRIES};
pub use extract::{ExtractStep, DEFAULT_TRIES};
pub use format::{FormatStep, ReplyTemplates};
pub use query::{summary_name, Call, Progress, QueryStep, Target, DEFAULT_CALL_TIMEOUT};
pub use reason::{ReasonOutput, ReasonStep};

use crate::template::RenderError;

#[derive(Debug)]
pub enum Step {
    Extract(ExtractStep),
    Query(QueryStep),
    Reason(ReasonStep),
    Confirm(ConfirmStep),
    Format(FormatStep),
}

impl Step {
    /// One line saying what the step does, for `explain`.
    pub fn describe(&self, catalogue: &crate::catalogue::Catalogue) -> String {
        match self {
            Step::Extract(step) => step.describe(),
            Step::Query(step) => step.describe(catalogue),
            Step::Reason(step) => step.describe(),
            Step::Confirm(step) => step.describe(),
            Step::Format(step) => step.describe(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Step::Extract(_) => "extract",
            Step::Query(_) => "query",
            Step::Reason(_) => "reason",
            Step::Confirm(_) => "confirm",
            Step::Format(_) => "format",
        }
    }
}

/// Ends an action after too many unusable answers (to a slot's question or to a read-back):
/// the give-up reply, with `gave_up` describing what could not be had; nothing is sent.
fn give_up(
    templates: &ReplyTemplates,
    pipeline: &crate::pipeline::Pipeline,
    env: &crate::pipeline::RunEnv<'_>,
    state: &mut crate::pipeline::TurnState,
    note: String,
    detail: serde_json::Value,
) -> Result<Option<crate::pipeline::Flow>, StepError> {
    state.trace.notes.push(note);
    state.dialogue.state = Some(crate::trace::DialogueState::GaveUp);
    let detail = crate::template::to_value(detail);
    Ok(Some(crate::pipeline::Flow::Reply(templates.render(pipeline, env, state, &[("gave_up", detail)])?)))
}

/// A turn that could not produce its reply. Droplet failures are *not* errors (they are
/// outcomes the templates render); these are faults in the configuration that only show at
/// run time, such as a template reading a value of the wrong shape.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("pipeline `{intent}` ran out of steps without a reply")]
    NoReply { intent: String },
}
