//! Talking to the mesh (MESH.md §6).
//!
//! The engine's `query` step sees one [`DropletBackend`](crate::backend::DropletBackend); with
//! an Orchestrator configured it is a [`MeshRouter`] that sends each call the way its target is
//! reached:
//!
//! - `orchestrator_send` ([`send`]): droplet 10 does not proxy. `POST /send` relays a payload to
//!   the target's `/message` and returns a receipt, never the target's data; a waiter
//!   ([`waiters`]) is registered under the receipt's trace id and the answer — if the target
//!   sends one back — arrives at our `POST /message`. No answer in time is `Dispatched`.
//! - `orchestrator_native` ([`native`]): droplet 10's own questions, automatically.
//! - `proxy` ([`proxy`]): an Orchestrator that proxies synchronously.
//! - `direct` ([`direct`]): the target's own API with our Registry token.
//!
//! Without an Orchestrator the bundled sample data answers (`fallback-data`).

mod direct;
mod native;
mod orchestrator;
mod proxy;
mod router;
mod send;
mod waiters;

pub use direct::DirectBackend;
pub use native::NativeBackend;
pub use orchestrator::{OrchestratorClient, OrchestratorConfig, DEFAULT_ORCHESTRATOR_TIMEOUT, MIN_SEND_TIMEOUT};
pub use proxy::ProxyBackend;
pub use router::{MeshMode, MeshRouter, MeshSetup};
pub use send::OrchestratorSendBackend;
pub use waiters::{Waiters, EARLY_REPLY_HOLD};
