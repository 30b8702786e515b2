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

/// Middleware function for `EndpointExt::around`.
pub async fn limit_body<E: Endpoint>(endpoint: std::sync::Arc<E>, mut request: Request) -> poem::Result<Response> {
    let declared = request.header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
    match declared {
        Some(length) if length > MAX_BODY_BYTES => return Ok(too_large()),
        Some(_) => {}
        None => match request.take_body().into_bytes_limit(MAX_BODY_BYTES).await {
            Ok(bytes) => request.set_body(bytes),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
            Err(error) => return Err(error.into()),
        },
    }
    endpoint.call(request).await.map(IntoResponse::into_response)
}

fn too_large() -> Response {
    let body = ErrorBody::new(
        ErrorCode::InvalidRequest,
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        json!({"limit": MAX_BODY_BYTES}),
    );
    Json(body.to_json().unwrap_or_default()).with_status(StatusCode::PAYLOAD_TOO_LARGE).into_response()
}
