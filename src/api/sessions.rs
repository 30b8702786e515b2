//! Session administration. The seed left these endpoints public, so anyone could read or wipe
//! every conversation; here they need the admin bearer token, and a session is only ever found
//! by its exact id.

use std::sync::Arc;
use std::time::Duration;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{json, Value};

use super::admin::{auth_error, AdminAuth};
use super::error::{ErrorBody, ErrorCode};
use super::ApiTags;
use crate::session::{Channel, Session, SessionStore};

/// One line per session.
#[derive(Debug, Object)]
pub struct SessionSummary {
    pub id: String,
    /// `chat` or `voice`: the channel of the last turn.
    pub channel: String,
    /// Messages kept (user and assistant).
    pub messages: u32,
    /// The intent waiting for an answer, if any.
    pub pending_intent: Option<String>,
    /// Seconds since the last turn.
    pub idle_seconds: u64,
}

#[derive(Debug, Object)]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
    pub total: u32,
}

/// A whole session: history, pending action and metadata.
#[derive(Debug, Object)]
pub struct SessionDetail {
    pub id: String,
    pub channel: String,
    /// Oldest first: `{role, text, intent, at}`.
    pub history: Vec<Value>,
    /// `{intent, step, slots}` of the action waiting for an answer.
    pub pending: Option<Value>,
    pub metadata: Value,
    pub idle_seconds: u64,
}

#[derive(Debug, Object)]
pub struct SessionStats {
    pub sessions: u32,
    pub chat_sessions: u32,
    pub voice_sessions: u32,
    pub messages: u32,
    /// Sessions waiting for the user to supply missing details.
    pub pending_actions: u32,
}

#[derive(Debug, Object)]
pub struct Deleted {
    /// How many sessions were forgotten.
    pub deleted: u32,
}

macro_rules! admin_response {
    ($name:ident, $handler:ident, $handler_name:literal, $ok:ty, $ok_doc:literal $(, $not_found:ident)?) => {
        #[derive(ApiResponse)]
        #[oai(bad_request_handler = $handler_name)]
        pub enum $name {
            #[doc = $ok_doc]
            #[oai(status = 200)]
            Ok(Json<$ok>),
            $(
            /// No session has this id.
            #[oai(status = 404)]
            $not_found(Json<ErrorBody>),
            )?
            /// Missing or wrong bearer token.
            #[oai(status = 401)]
            Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
            /// Admin endpoints are switched off (no `ADMIN_TOKEN`).
            #[oai(status = 403)]
            Forbidden(Json<ErrorBody>),
            /// The session store is unavailable.
            #[oai(status = 503)]
            Unavailable(Json<ErrorBody>),
        }

        fn $handler(error: poem::Error) -> $name {
            match auth_error(&error) {
                (403, body) => $name::Forbidden(body),
                (_, body) => $name::Unauthorized(body, "Bearer".to_owned()),
            }
        }

        impl $name {
            fn unavailable(error: impl std::fmt::Display) -> Self {
                tracing::error!(%error, "session store unavailable");
                $name::Unavailable(Json(ErrorBody::new(
                    ErrorCode::DependencyUnavailable,
                    "the session store is unavailable; retry later",
                    json!({}),
                )))
            }

            $(
            fn not_found(id: &str) -> Self {
                $name::$not_found(Json(ErrorBody::new(
                    ErrorCode::NotFound,
                    format!("no session has the id `{id}`"),
                    json!({"session_id": id}),
                )))
            }
            )?
        }
    };
}

admin_response!(ListResponse, list_auth, "list_auth", SessionList, "Every live session.");
admin_response!(DetailResponse, detail_auth, "detail_auth", SessionDetail, "The session.", NotFound);
admin_response!(StatsResponse, stats_auth, "stats_auth", SessionStats, "Counts over every live session.");
admin_response!(ClearResponse, clear_auth, "clear_auth", Deleted, "Every session is forgotten.");
admin_response!(DeleteResponse, delete_auth, "delete_auth", Deleted, "The session is forgotten.", NotFound);

fn summary(session: &Session, idle: Duration) -> SessionSummary {
    SessionSummary {
        id: session.id.clone(),
        channel: session.channel.as_str().to_owned(),
        messages: session.history.len() as u32,
        pending_intent: session.pending.as_ref().map(|p| p.intent.clone()),
        idle_seconds: idle.as_secs(),
    }
}

pub struct SessionsApi {
    pub sessions: Arc<dyn SessionStore>,
}

#[OpenApi]
impl SessionsApi {
    /// List live sessions.
    #[oai(path = "/api/sessions", method = "get", tag = "ApiTags::Sessions")]
    async fn list(&self, _auth: AdminAuth) -> ListResponse {
        match self.sessions.list().await {
            Ok(all) => {
                let sessions: Vec<SessionSummary> = all.iter().map(|(s, idle)| summary(s, *idle)).collect();
                ListResponse::Ok(Json(SessionList { total: sessions.len() as u32, sessions }))
            }
            Err(error) => ListResponse::unavailable(error),
        }
    }

    /// Counts over every live session.
    #[oai(path = "/api/sessions/stats", method = "get", tag = "ApiTags::Sessions")]
    async fn stats(&self, _auth: AdminAuth) -> StatsResponse {
        match self.sessions.list().await {
            Ok(all) => {
                let count = |channel| all.iter().filter(|(s, _)| s.channel == channel).count() as u32;
                StatsResponse::Ok(Json(SessionStats {
                    sessions: all.len() as u32,
                    chat_sessions: count(Channel::Chat),
                    voice_sessions: count(Channel::Voice),
                    messages: all.iter().map(|(s, _)| s.history.len() as u32).sum(),
                    pending_actions: all.iter().filter(|(s, _)| s.pending.is_some()).count() as u32,
                }))
            }
            Err(error) => StatsResponse::unavailable(error),
        }
    }

    /// One session, by its exact id.
    #[oai(path = "/api/sessions/:id", method = "get", tag = "ApiTags::Sessions")]
    async fn get(&self, _auth: AdminAuth, id: Path<String>) -> DetailResponse {
        match self.sessions.get(&id.0).await {
            Ok(Some((session, idle))) => DetailResponse::Ok(Json(SessionDetail {
                id: session.id.clone(),
                channel: session.channel.as_str().to_owned(),
                history: session.history.iter().filter_map(|m| serde_json::to_value(m).ok()).collect(),
                pending: session.pending.as_ref().and_then(|p| serde_json::to_value(masked_pending(p)).ok()),
                metadata: Value::Object(session.metadata.clone()),
                idle_seconds: idle.as_secs(),
            })),
            Ok(None) => DetailResponse::not_found(&id.0),
            Err(error) => DetailResponse::unavailable(error),
        }
    }

    /// Forget one session.
    #[oai(path = "/api/sessions/:id", method = "delete", tag = "ApiTags::Sessions")]
    async fn delete(&self, _auth: AdminAuth, id: Path<String>) -> DeleteResponse {
        match self.sessions.delete(&id.0).await {
            Ok(true) => DeleteResponse::Ok(Json(Deleted { deleted: 1 })),
            Ok(false) => DeleteResponse::not_found(&id.0),
            Err(error) => DeleteResponse::unavailable(error),
        }
    }

    /// Forget every session.
    #[oai(path = "/api/sessions", method = "delete", tag = "ApiTags::Sessions")]
    async fn clear(&self, _auth: AdminAuth) -> ClearResponse {
        match self.sessions.clear().await {
            Ok(deleted) => ClearResponse::Ok(Json(Deleted { deleted: deleted as u32 })),
            Err(error) => ClearResponse::unavailable(error),
        }
    }
}

/// The pending action as the admin view shows it: its sensitive slot values masked.
fn masked_pending(pending: &crate::session::Pending) -> crate::session::Pending {
    let mut shown = pending.clone();
    for name in &pending.sensitive {
        if let Some(value) = shown.slots.get_mut(name).filter(|v| !v.is_null()) {
            *value = serde_json::Value::String(crate::engine::redact::MASK.to_owned());
        }
    }
    shown
}
