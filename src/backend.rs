//! How the engine reaches droplets: the [`DropletBackend`] seam and its outcomes.
//!
//! The mesh's Orchestrator relays a request without handing back the answer (MESH.md §6.4), so a
//! call has three honest outcomes, and templates must be able to tell them apart: data came
//! back, the request was dispatched but no answer arrived in time, or it failed for a typed
//! reason. The engine only sees this trait; the bundled [`SampleBackend`] answers from the
//! catalogue's sample data (the embedded default), and [`crate::mesh::MeshRouter`] reaches the
//! real mesh.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::catalogue::NativeForm;
use crate::template::{RenderError, Templates};
use crate::util::human_duration;

/// One call the engine wants made.
#[derive(Debug, Clone)]
pub struct DropletRequest {
    pub droplet_id: i64,
    pub droplet_name: String,
    pub endpoint: String,
    pub method: String,
    pub params: serde_json::Map<String, Value>,
    pub body: Option<Value>,
    pub timeout: Duration,
    pub trace_id: String,
    /// What the turn's catalogue declares about this endpoint and method; `None` when it
    /// declares neither. The query step resolves it in the turn's configuration, so a backend
    /// keeps no catalogue of its own: one long-lived backend serves every configuration
    /// version, and a turn cannot mix two.
    pub declared: Option<Declared>,
}

/// The catalogue's forms of one endpoint: its bundled answer and how droplet 10 answers it
/// itself. Both are JSON whose strings are templates over the call's `body` and `params`.
#[derive(Clone)]
pub struct Declared {
    pub sample: Option<Arc<Value>>,
    pub native: Option<Arc<NativeForm>>,
    /// The turn's templates, which render the forms.
    pub templates: Arc<Templates>,
}

impl std::fmt::Debug for Declared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declared").field("sample", &self.sample).field("native", &self.native).finish_non_exhaustive()
    }
}

impl Declared {
    /// `form` rendered for `request`.
    pub fn render(&self, form: &Value, request: &DropletRequest) -> Result<Value, RenderError> {
        #[derive(serde::Serialize)]
        struct Context<'r> {
            body: &'r Value,
            params: &'r serde_json::Map<String, Value>,
        }
        let body = request.body.as_ref().unwrap_or(&Value::Null);
        let context = crate::template::to_value(Context { body, params: &request.params });
        self.templates.render_value(form, &context)
    }
}

/// What became of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The droplet answered.
    Data(Value),
    /// Delivered (e.g. relayed by the Orchestrator), but no answer came back in time.
    Dispatched {
        relay_trace_id: String,
    },
    Failed {
        kind: FailureKind,
        message: String,
    },
}

/// Why a call failed; stable names templates and clients can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum FailureKind {
    Timeout,
    Unreachable,
    Refused,
    UnknownTarget,
    UnknownEndpoint,
    NoSampleData,
    BadResponse,
    /// The droplet answered, but not in its endpoint's declared `response:` shape.
    UnexpectedAnswer,
}

impl FailureKind {
    /// The kind an [`as_str`](FailureKind::as_str) name stands for.
    pub fn parse(name: &str) -> Option<FailureKind> {
        name.parse().ok()
    }
}

crate::serde_by_name!(FailureKind);

crate::api_state! {
    /// What became of a call, in one word: the `status` templates and traces see.
    pub enum CallStatus {
        /// The droplet answered.
        Data,
        /// Delivered, no answer came back in time.
        Dispatched,
        Failed,
    }
}

/// A call that failed, already in the words a reply can use: what [`Outcome::Failed`] holds,
/// and what the mesh's own calls (to the Orchestrator) return as their error.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn timeout(who: &str, after: Duration) -> Failure {
        Failure {
            kind: FailureKind::Timeout,
            message: format!("The {who} did not answer within {}.", human_duration(after)),
        }
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Outcome {
        Outcome::Failed { kind: failure.kind, message: failure.message }
    }
}

impl Outcome {
    pub fn status(&self) -> CallStatus {
        match self {
            Outcome::Data(_) => CallStatus::Data,
            Outcome::Dispatched { .. } => CallStatus::Dispatched,
            Outcome::Failed { .. } => CallStatus::Failed,
        }
    }

    pub fn timeout(droplet_name: &str, after: Duration) -> Outcome {
        Failure::timeout(droplet_name, after).into()
    }
}

/// Where droplet calls go. Implementations must not panic and must return within the request's
/// timeout or close to it; the engine enforces the timeout as well.
pub trait DropletBackend: Send + Sync {
    /// Shown in `/dependencies`-style reports and in every reply trace, e.g. `fallback-data`.
    fn name(&self) -> &str;

    /// The way this particular call travels (a mesh mode, or the backend's name).
    fn route(&self, _request: &DropletRequest) -> &str {
        self.name()
    }

    /// How long the engine lets the call run before calling it a timeout: the pipeline's
    /// per-call timeout, unless the way the call travels needs longer (a relay waits for
    /// droplet 10's own 10 s window, then for the reply).
    fn time_limit(&self, request: &DropletRequest) -> Duration {
        request.timeout
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome>;
}

/// Answers from the sample data bundled in the catalogue (carried by each request): the
/// embedded default, so the server does its whole job with no mesh around it.
#[derive(Debug, Default)]
pub struct SampleBackend;

impl SampleBackend {
    pub const NAME: &'static str = "fallback-data";

    fn answer(&self, request: &DropletRequest) -> Outcome {
        let name = &request.droplet_name;
        let Some(declared) = &request.declared else {
            return Outcome::Failed {
                kind: FailureKind::UnknownEndpoint,
                message: format!("The {name} has no endpoint {}.", request.endpoint),
            };
        };
        let Some(sample) = &declared.sample else {
            return Outcome::Failed {
                kind: FailureKind::NoSampleData,
                message: format!("No sample answer is bundled for {name} {}.", request.endpoint),
            };
        };
        match declared.render(sample, request) {
            Ok(data) => Outcome::Data(data),
            Err(error) => Outcome::Failed {
                kind: FailureKind::BadResponse,
                message: format!("The sample answer for {name} {} could not be built: {error}", request.endpoint),
            },
        }
    }
}

impl DropletBackend for SampleBackend {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        let outcome = self.answer(&request);
        Box::pin(async move { outcome })
    }
}
