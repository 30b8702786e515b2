//! Administration: reload the configuration and see which version runs; the messages the
//! assistant did not understand well.
//!
//! Guarded by a bearer token (`ADMIN_TOKEN`) until the mesh's JWTs are verified here; without
//! the variable the endpoints are switched off (403), never open.

use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use serde_json::{json, Value};

use super::error::{ErrorBody, ErrorCode};
use super::ApiTags;
use crate::reload::{ReloadOptions, Reloader};

/// The configured admin token, if any (request data).
#[derive(Clone)]
pub struct AdminToken(pub Option<Arc<str>>);

/// `Authorization: Bearer <ADMIN_TOKEN>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin_token")]
pub struct AdminAuth(());

async fn check_admin_token(request: &Request, bearer: Bearer) -> poem::Result<()> {
    let configured = request.data::<std::sync::Arc<super::AppState>>().and_then(|state| state.admin_token.0.clone());
    match configured {
        None => Err(poem::Error::from_string(
            "admin endpoints are switched off: set ADMIN_TOKEN to enable them",
            poem::http::StatusCode::FORBIDDEN,
        )),
        Some(token) if crate::auth::same_secret(&bearer.token, &token) => Ok(()),
        Some(_) => Err(poem::Error::from_string(
            "the bearer token is not the admin token",
            poem::http::StatusCode::UNAUTHORIZED,
        )),
    }
}

/// The running configuration and its reload history.
#[derive(Debug, Object)]
pub struct ConfigStatus {
    /// The running version (1 at start-up, +1 per successful reload).
    pub version: u64,
    /// Where the configuration is read from (a folder, or `embedded`).
    pub origin: String,
    /// When the running version went live (RFC 3339 UTC).
    pub loaded_at: String,
    /// The intents it answers.
    pub intents: Vec<String>,
    /// Reloads that went live since start-up.
    pub reloads_succeeded: u64,
    /// Reloads refused because the new configuration had problems.
    pub reloads_failed: u64,
    /// The last reload attempt: trigger, time, outcome and, when it failed, every problem;
    /// `changes` says what it did to the recorded turns.
    pub last_attempt: Option<Value>,
    /// The last `dry_run=true` try and what it would change.
    pub last_dry_run: Option<Value>,
}

/// A successful reload, or a try (`dry_run`).
#[derive(Debug, Object)]
pub struct Reloaded {
    /// The version now running (after a dry run: still the old one).
    pub version: u64,
    /// RFC 3339 UTC.
    pub loaded_at: String,
    /// Nothing was installed: the new configuration was only built and replayed.
    pub dry_run: bool,
    /// What the new configuration does to the recorded turns (replayed on it, no droplet
    /// called): messages that now pick another intent, replies that change.
    pub changes: Option<crate::replay::ChangeReport>,
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "auth_or_bad_request")]
pub enum ReloadResponse {
    /// The new configuration is live.
    #[oai(status = 200)]
    Ok(Json<Reloaded>),
    /// The new configuration has problems; the running one stays. `details.problems` lists
    /// every problem (file, line, column, code, message, help), `details.report` renders them.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// It loads, but makes more recorded messages pick another intent than
    /// `RELOAD_MAX_INTENT_CHANGES` allows: not installed; `details.changes` says what changes.
    /// Reload with `force=true` to install it anyway.
    #[oai(status = 409)]
    TooManyChanges(Json<ErrorBody>),
    /// Missing or wrong bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Admin endpoints are switched off (no `ADMIN_TOKEN`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
}

/// The messages not understood well, grouped by what they say.
#[derive(Debug, Object)]
pub struct MissedReport {
    /// How many messages are kept (within the count and age limits).
    pub total: usize,
    /// At most this many are kept (`MISSED_MESSAGES_KEPT`)…
    pub kept_at_most: usize,
    /// …for at most this many days (`MISSED_MESSAGES_DAYS`).
    pub days: u64,
    /// Groups of messages that read the same, most said first.
    pub groups: Vec<crate::session::MissedGroup>,
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "auth_or_bad_request_missed")]
pub enum MissedResponse {
    /// The messages kept, grouped.
    #[oai(status = 200)]
    Ok(Json<MissedReport>),
    /// Missing or wrong bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Admin endpoints are switched off (no `ADMIN_TOKEN`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The session store (which keeps them) does not answer.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "auth_or_bad_request_recorded")]
pub enum RecordedResponse {
    /// The conversation's turns still kept, oldest first, with the droplet answers they used.
    #[oai(status = 200)]
    Ok(Json<Vec<crate::session::RecordedTurn>>),
    /// Missing or wrong bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Admin endpoints are switched off (no `ADMIN_TOKEN`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No turn of that conversation is kept.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The session store does not answer.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn auth_or_bad_request_recorded(error: poem::Error) -> RecordedResponse {
    match auth_error(&error) {
        (401, body) => RecordedResponse::Unauthorized(body, "Bearer".to_owned()),
        (_, body) => RecordedResponse::Forbidden(body),
    }
}

fn auth_or_bad_request_missed(error: poem::Error) -> MissedResponse {
    match auth_error(&error) {
        (401, body) => MissedResponse::Unauthorized(body, "Bearer".to_owned()),
        (_, body) => MissedResponse::Forbidden(body),
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "auth_or_bad_request_status")]
pub enum StatusResponse {
    /// The running configuration.
    #[oai(status = 200)]
    Ok(Json<ConfigStatus>),
    /// Missing or wrong bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Admin endpoints are switched off (no `ADMIN_TOKEN`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
}

/// Authentication failures arrive here as errors; keep their status and use the uniform body.
pub(super) fn auth_error(error: &poem::Error) -> (u16, Json<ErrorBody>) {
    let status = error.status().as_u16();
    let code = if status == 403 { ErrorCode::Forbidden } else { ErrorCode::Unauthorized };
    let message = if status == 401 || status == 403 {
        error.to_string()
    } else {
        "send `Authorization: Bearer <ADMIN_TOKEN>`".to_owned()
    };
    (status, Json(ErrorBody::new(code, message, json!({}))))
}

fn auth_or_bad_request(error: poem::Error) -> ReloadResponse {
    match auth_error(&error) {
        (403, body) => ReloadResponse::Forbidden(body),
        (_, body) => ReloadResponse::Unauthorized(body, "Bearer".to_owned()),
    }
}

fn auth_or_bad_request_status(error: poem::Error) -> StatusResponse {
    match auth_error(&error) {
        (403, body) => StatusResponse::Forbidden(body),
        (_, body) => StatusResponse::Unauthorized(body, "Bearer".to_owned()),
    }
}

pub struct AdminApi {
    pub reloader: Arc<Reloader>,
}

#[OpenApi]
impl AdminApi {
    /// Reload the configuration now.
    ///
    /// Builds the configuration from its files off the request path and swaps it in only if it
    /// has no problems. Requests in flight finish on the version they started with. Before it
    /// goes live, the recorded turns are replayed on it (no droplet is called) and the answer
    /// says what changes; `dry_run=true` only does that.
    #[oai(path = "/api/admin/reload", method = "post", tag = "ApiTags::Admin")]
    async fn reload(
        &self,
        _auth: AdminAuth,
        /// Build and replay only; install nothing.
        dry_run: Query<Option<bool>>,
        /// Install even beyond `RELOAD_MAX_INTENT_CHANGES`.
        force: Query<Option<bool>>,
    ) -> ReloadResponse {
        let options = ReloadOptions { dry_run: dry_run.0.unwrap_or(false), force: force.0.unwrap_or(false) };
        let attempt = self.reloader.reload_with("admin", options).await;
        let running = self.reloader.state();
        match attempt.version {
            Some(version) => ReloadResponse::Ok(Json(Reloaded {
                version,
                loaded_at: attempt.at,
                dry_run: false,
                changes: attempt.changes,
            })),
            None if attempt.ok && attempt.dry_run => ReloadResponse::Ok(Json(Reloaded {
                version: running.version,
                loaded_at: running.loaded_at,
                dry_run: true,
                changes: attempt.changes,
            })),
            None if attempt.changes.is_some() => ReloadResponse::TooManyChanges(Json(ErrorBody::new(
                ErrorCode::ValidationError,
                attempt.report.clone().unwrap_or_default(),
                json!({"changes": attempt.changes}),
            ))),
            None => {
                let running = self.reloader.state().version;
                ReloadResponse::Invalid(Json(ErrorBody::new(
                    ErrorCode::ValidationError,
                    format!(
                        "the new configuration has {} problem(s); version {running} keeps running",
                        attempt.problems.len().max(1)
                    ),
                    json!({"problems": attempt.problems, "report": attempt.report}),
                )))
            }
        }
    }

    /// The messages the assistant did not understand well.
    ///
    /// Turns that ended in the fallback, in a question back from the language model, in a
    /// guess the rules were not sure of, or in an intent only the model found, and parts of a
    /// message nobody understood: grouped by what the matcher reads in them (numbers and droplet
    /// names count as one word), most said first, with examples and the intents that answered.
    /// Sensitive slot values are masked.
    #[oai(path = "/api/admin/missed", method = "get", tag = "ApiTags::Admin")]
    async fn missed(&self, _auth: AdminAuth) -> MissedResponse {
        let engine = self.reloader.engine();
        let limits = engine.sessions().limits().missed;
        let messages = match engine.sessions().missed().await {
            Ok(messages) => messages,
            Err(error) => {
                return MissedResponse::Unavailable(Json(ErrorBody::new(
                    ErrorCode::DependencyUnavailable,
                    error.to_string(),
                    json!({}),
                )))
            }
        };
        let groups = engine.group_missed(&messages);
        MissedResponse::Ok(Json(MissedReport {
            total: messages.len(),
            kept_at_most: limits.kept,
            days: limits.max_age.as_secs() / (24 * 3600),
            groups,
        }))
    }

    /// Every recorded turn, with the droplet answers it used.
    ///
    /// The traffic `chat-orchestrator test --against` replays offline on two configurations
    /// (saved to a file, or fetched with the admin token). Oldest first; sensitive slot values
    /// masked.
    #[oai(path = "/api/admin/recorded", method = "get", tag = "ApiTags::Admin")]
    async fn recorded_all(&self, _auth: AdminAuth) -> RecordedResponse {
        match self.reloader.engine().sessions().recorded().await {
            Ok(turns) => RecordedResponse::Ok(Json(turns)),
            Err(error) => RecordedResponse::Unavailable(Json(ErrorBody::new(
                ErrorCode::DependencyUnavailable,
                error.to_string(),
                json!({}),
            ))),
        }
    }

    /// A conversation's recorded turns, with the droplet answers they used.
    ///
    /// What `chat-orchestrator record` turns into a conversation fixture that replays the same
    /// forever. Only the last `RECORDED_TURNS` turns of the server are kept; sensitive slot
    /// values are masked.
    #[oai(path = "/api/admin/recorded/:session", method = "get", tag = "ApiTags::Admin")]
    async fn recorded(&self, _auth: AdminAuth, session: Path<String>) -> RecordedResponse {
        let turns = match self.reloader.engine().sessions().recorded().await {
            Ok(turns) => turns,
            Err(error) => {
                return RecordedResponse::Unavailable(Json(ErrorBody::new(
                    ErrorCode::DependencyUnavailable,
                    error.to_string(),
                    json!({}),
                )))
            }
        };
        let mine: Vec<crate::session::RecordedTurn> = turns.into_iter().filter(|t| t.session == session.0).collect();
        if mine.is_empty() {
            return RecordedResponse::NotFound(Json(ErrorBody::new(
                ErrorCode::NotFound,
                format!("no turn of conversation `{}` is kept (only the last RECORDED_TURNS turns are)", session.0),
                json!({}),
            )));
        }
        RecordedResponse::Ok(Json(mine))
    }

    /// The running configuration version and the reload history.
    #[oai(path = "/api/admin/config", method = "get", tag = "ApiTags::Admin")]
    async fn config(&self, _auth: AdminAuth) -> StatusResponse {
        let state = self.reloader.state();
        let runtime = self.reloader.engine().runtime();
        StatusResponse::Ok(Json(ConfigStatus {
            version: state.version,
            origin: state.origin,
            loaded_at: state.loaded_at,
            intents: runtime.config.pipelines.iter().map(|p| p.intent.clone()).collect(),
            reloads_succeeded: state.reloads_succeeded,
            reloads_failed: state.reloads_failed,
            last_attempt: state.last_attempt.and_then(|a| serde_json::to_value(a).ok()),
            last_dry_run: state.last_dry_run.and_then(|a| serde_json::to_value(a).ok()),
        }))
    }
}
