//! `GET /`: the playground, one self-contained page built into the binary (no CDN, no build
//! step), where a steward tries every intent and sees why each reply came out as it did.
//!
//! In development, to a client on this host (not through a proxy, and not on a server with a
//! Registry key), the page also asks `GET /api/playground/config` whether the running
//! configuration is the one in the files: after an edit that did not load (a broken template,
//! a typo in a pipeline), the old version keeps answering, and the page says so with the
//! problems, located, instead of leaving the steward to wonder why nothing changed.

use std::sync::Arc;

use poem_openapi::payload::{Html, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::{ErrorBody, ErrorCode};
use crate::reload::Reloader;

const PAGE: &str = include_str!("../../playground/index.html");

pub struct PlaygroundApi {
    pub reloader: Arc<Reloader>,
    /// `ENVIRONMENT=development`: only then does the page get the configuration's problems.
    pub development: bool,
    /// A Registry key is configured: callers are meant to prove who they are, so being on this
    /// host proves nothing (a reverse proxy on the same host makes every client loopback).
    pub secured: bool,
}

/// Whether the running configuration is the files' latest, for the playground.
#[derive(Debug, Object)]
pub struct LiveConfig {
    /// The running version.
    pub version: u64,
    /// When it went live (RFC 3339 UTC).
    pub loaded_at: String,
    /// True when the last reload failed: the files have changes that are not running.
    pub stale: bool,
    /// When that reload was tried.
    pub failed_at: Option<String>,
    /// Its problems, rendered as `check` prints them.
    pub report: Option<String>,
}

#[derive(ApiResponse)]
pub enum MissedResponse {
    /// The messages not understood well, grouped as `GET /api/admin/missed` groups them.
    #[oai(status = 200)]
    Ok(Json<Vec<crate::session::MissedGroup>>),
    /// Not in development: the admin API has them there.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The session store does not answer.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum LiveConfigResponse {
    #[oai(status = 200)]
    Ok(Json<LiveConfig>),
    /// Not in development: configuration problems are for the admin API there.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

impl PlaygroundApi {
    /// What users said and where the configuration has problems are for the steward at this
    /// machine: in development, only to a client on this host (a development server bound to
    /// 0.0.0.0 does not show them to the network; the admin API does, with its token), and
    /// neither on a secured server nor through a proxy, where a loopback peer can be anyone.
    fn serves(&self, request: &poem::Request) -> bool {
        let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| request.header(h).is_some());
        self.development
            && !self.secured
            && !proxied
            && request.remote_addr().as_socket_addr().is_some_and(|peer| peer.ip().is_loopback())
    }
}

#[OpenApi]
impl PlaygroundApi {
    /// The playground page (HTML for people, so not part of the API document).
    #[oai(path = "/", method = "get", hidden)]
    async fn page(&self) -> Html<&'static str> {
        Html(PAGE)
    }

    /// The messages not understood well, for the playground's panel (development only).
    #[oai(path = "/api/playground/missed", method = "get", hidden)]
    async fn missed(&self, request: &poem::Request) -> MissedResponse {
        if !self.serves(request) {
            return MissedResponse::NotFound(Json(ErrorBody::new(
                ErrorCode::NotFound,
                "the playground's missed messages are only served in development, to this host; use GET /api/admin/missed",
                serde_json::json!({}),
            )));
        }
        let engine = self.reloader.engine();
        match engine.sessions().missed().await {
            Ok(messages) => MissedResponse::Ok(Json(engine.group_missed(&messages))),
            Err(error) => MissedResponse::Unavailable(Json(ErrorBody::new(
                ErrorCode::DependencyUnavailable,
                error.to_string(),
                serde_json::json!({}),
            ))),
        }
    }

    /// Whether the running configuration is behind the files (development only).
    #[oai(path = "/api/playground/config", method = "get", hidden)]
    async fn live_config(&self, request: &poem::Request) -> LiveConfigResponse {
        if !self.serves(request) {
            return LiveConfigResponse::NotFound(Json(ErrorBody::new(
                ErrorCode::NotFound,
                "the playground's configuration status is only served in development, to this host; use GET /api/admin/config",
                serde_json::json!({}),
            )));
        }
        let state = self.reloader.state();
        let failed = state.last_attempt.filter(|attempt| !attempt.ok);
        LiveConfigResponse::Ok(Json(LiveConfig {
            version: state.version,
            loaded_at: state.loaded_at,
            stale: failed.is_some(),
            failed_at: failed.as_ref().map(|a| a.at.clone()),
            report: failed.and_then(|a| a.report),
        }))
    }
}
