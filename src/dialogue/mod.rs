//! The conversation's one room: where a message meets what the assistant is waiting for.
//!
//! A turn goes through here twice. Before the pipelines run, [`plan`] decides which of them
//! answer and from which step: an interrupt (cancel), the pending action's continuation (a bare
//! answer, a yes or a no, a correction; read by [`answers`]), a digression answered while the
//! action waits, or something new. After they ran, [`settle`] decides what the conversation
//! waits for next: the action left pending, the reply's texts and the dialogue trace.
//!
//! The states an action goes through have one name each, [`DialogueState`]; the action waiting
//! between turns has one shape, [`Pending`], made by the step that asks
//! ([`crate::pipeline::Pipeline::park`]) and stored in the session as it is.
//!
//! [`Pending`]: crate::session::Pending

pub mod answers;
pub mod focus;
pub mod plan;
pub mod settle;

pub use crate::trace::DialogueState;
pub use focus::InFocus;
pub use plan::{model_may_decide, plan, Plan, Planned};
pub use settle::{settle, Run, Settled, Settling};
