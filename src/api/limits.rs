//! Request body limits, applied before any handler reads the body.
//!
//! poem's own `SizeLimit` answers 411 to every request without `Content-Length` (GETs included,
//! and chunked uploads slip past it), so this checks the declared length when there is one and
//! otherwise reads at most the limit.

use poem::http::StatusCode;
use poem::web::Json;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::types::ToJSON;
use serde_json::json;

use super::error::{ErrorBody, ErrorCode};

/// Largest request body accepted (a 5000-character message plus metadata fits many times over).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Middleware function for `EndpointExt::around`. The whole body is read here, within the body
/// timeout, so a client that stops half-way through its body (declared length or chunked) holds
/// its connection for seconds, not for ever: it gets 408.
pub async fn limit_body<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    mut request: Request,
    timeout: std::time::Duration,
) -> poem::Result<Response> {
    let declared = request.header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Ok(too_large());
    }
    match tokio::time::timeout(timeout, request.take_body().into_bytes_limit(MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => request.set_body(bytes),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => return Ok(too_large()),
        Ok(Err(error)) => return Err(error.into()),
        Err(_) => return Ok(too_slow(timeout)),
    }
    endpoint.call(request).await.map(IntoResponse::into_response)
}

fn too_slow(timeout: std::time::Duration) -> Response {
    let body = ErrorBody::new(
        ErrorCode::InvalidRequest,
        format!("the request body did not arrive within {} seconds", timeout.as_secs_f64()),
        json!({"timeout_seconds": timeout.as_secs_f64()}),
    );
    let mut response =
        Json(body.to_json().unwrap_or_default()).with_status(StatusCode::REQUEST_TIMEOUT).into_response();
    // the rest of the body may still be on its way: do not read it as the next request
    response.headers_mut().insert(poem::http::header::CONNECTION, poem::http::HeaderValue::from_static("close"));
    response
}

fn too_large() -> Response {
    let body = ErrorBody::new(
        ErrorCode::InvalidRequest,
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        json!({"limit": MAX_BODY_BYTES}),
    );
    Json(body.to_json().unwrap_or_default()).with_status(StatusCode::PAYLOAD_TOO_LARGE).into_response()
}
