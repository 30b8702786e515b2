//! `GET /metrics`: Prometheus exposition text (see `crate::metrics`). Like every mesh endpoint
//! it needs a bearer token — a Registry-signed one, or `METRICS_TOKEN` for a scraper that cannot
//! renew JWTs — except in development mode without a Registry key.

use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, IntoResponse, Request, Response};

use super::error::{ErrorBody, ErrorCode};
use super::AppState;

/// How long counting sessions may take before the gauge keeps its last value.
const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

#[handler]
pub async fn metrics(request: &Request, Data(state): Data<&std::sync::Arc<AppState>>) -> Response {
    let token = request.header("authorization").and_then(crate::auth::bearer_token);
    let static_token_ok = matches!((&state.metrics_token, &token), (Some(expected), Some(given)) if crate::auth::same_secret(given, expected));
    if !state.verifier.is_open() && !static_token_ok && state.verifier.verify(token.as_deref()).is_err() {
        let message = "send a bearer token signed by the Registry, or METRICS_TOKEN";
        return ErrorBody::new(ErrorCode::Unauthorized, message, serde_json::json!({}))
            .into_response(StatusCode::UNAUTHORIZED);
    }
    if let Ok(Ok(count)) = tokio::time::timeout(COUNT_TIMEOUT, state.engine.sessions().count()).await {
        ::metrics::gauge!("sessions_active").set(count as f64);
    }
    crate::metrics::render().with_content_type("text/plain; version=0.0.4; charset=utf-8").into_response()
}
