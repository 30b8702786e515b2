//! The one error body every endpoint returns (the mesh's `error_response.json` shape).

use poem::http::StatusCode;
use poem_openapi::types::ToJSON;
use poem_openapi::Object;
use serde_json::Value;

use crate::engine::TurnError;
use crate::util::utc_timestamp;

/// Stable error codes of the mesh (MESH.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request could not be read (malformed JSON, wrong types).
    InvalidRequest,
    /// The request was read but a value is not acceptable.
    ValidationError,
    /// No valid credentials.
    Unauthorized,
    /// Valid request, but not allowed.
    Forbidden,
    /// Nothing has that id.
    NotFound,
    /// Too many requests from one client.
    RateLimited,
    /// Something failed on our side.
    InternalError,
    /// A part we depend on (e.g. the session store) is down.
    DependencyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::DependencyUnavailable => "DEPENDENCY_UNAVAILABLE",
        }
    }
}

/// `{status: "error", error: {code, message, details}, timestamp}`.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: String,
    pub error: ErrorDetail,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// `INVALID_REQUEST`, `VALIDATION_ERROR`, `INTERNAL_ERROR`, `DEPENDENCY_UNAVAILABLE`, …
    pub code: String,
    /// What went wrong and how to fix it, in one sentence.
    pub message: String,
    /// Machine-readable specifics, e.g. `{"field": "message"}`.
    pub details: Value,
}

impl ErrorBody {
    /// Refused by a rate limit; the same words on every endpoint.
    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        ErrorBody::new(
            ErrorCode::RateLimited,
            format!("too many messages from this client; try again in {retry_after_seconds} s"),
            serde_json::json!({"retry_after_seconds": retry_after_seconds}),
        )
    }

    /// A request id (`field`: where it was sent) came back with another message than the one it
    /// was first used for: not a retry, so nothing runs.
    pub fn request_id_reused(field: &str) -> Self {
        ErrorBody::new(
            ErrorCode::ValidationError,
            format!(
                "this {field} was already used for a different message in this session: a retry resends the same \
                 message; a new message needs a new {field}"
            ),
            serde_json::json!({"field": field}),
        )
    }

    /// The session store failed: nothing was processed or stored.
    pub fn store_unavailable() -> Self {
        ErrorBody::new(
            ErrorCode::DependencyUnavailable,
            "conversations cannot be stored right now, so the message was not processed; please retry",
            serde_json::json!({}),
        )
    }

    /// How a turn that failed is answered, on every endpoint and frame alike.
    /// `request_id_field` says where the client sent its request id. The cause is logged here,
    /// once; the body says only what the caller may know.
    pub fn of_turn(error: &TurnError, request_id_field: &str) -> TurnRefusal {
        match error {
            TurnError::RequestIdReused(_) => TurnRefusal::Unprocessable(ErrorBody::request_id_reused(request_id_field)),
            TurnError::Store(error) => {
                tracing::error!(%error, "session store unavailable");
                TurnRefusal::Unavailable(ErrorBody::store_unavailable())
            }
            TurnError::UnknownIntent(_) => {
                tracing::error!(%error, "turn failed");
                TurnRefusal::Internal(ErrorBody::internal())
            }
        }
    }

    /// Something failed on our side: nothing was stored, and a retry may succeed.
    pub fn internal() -> Self {
        ErrorBody::new(
            ErrorCode::InternalError,
            "the message could not be processed; nothing was stored, please retry",
            serde_json::json!({}),
        )
    }

    /// The body as a plain poem response, for the handlers outside the OpenAPI service
    /// (`/ws`'s upgrade, `/metrics`). A 401 carries `WWW-Authenticate: Bearer`.
    pub fn into_response(self, status: StatusCode) -> poem::Response {
        let mut response = poem::Response::builder().status(status).content_type("application/json");
        if status == StatusCode::UNAUTHORIZED {
            response = response.header("WWW-Authenticate", "Bearer");
        }
        response.body(self.to_json_string())
    }

    pub fn new(code: ErrorCode, message: impl Into<String>, details: Value) -> Self {
        ErrorBody {
            status: "error".to_owned(),
            error: ErrorDetail { code: code.as_str().to_owned(), message: message.into(), details },
            timestamp: utc_timestamp(),
        }
    }
}

/// A failed turn's answer: which kind of refusal (each endpoint's 422, 503 or 500), and its body.
pub enum TurnRefusal {
    /// The request cannot be taken as it is (a reused request id).
    Unprocessable(ErrorBody),
    /// A dependency (the session store) is down; nothing was stored.
    Unavailable(ErrorBody),
    /// Something failed on our side; nothing was stored.
    Internal(ErrorBody),
}

impl TurnRefusal {
    pub fn into_body(self) -> ErrorBody {
        match self {
            TurnRefusal::Unprocessable(body) | TurnRefusal::Unavailable(body) | TurnRefusal::Internal(body) => body,
        }
    }
}

/// How a request that failed before its handler ran (unreadable body, missing or bad token) is
/// answered: every endpoint's `bad_request_handler` goes through here, so all say it alike.
pub enum Refusal {
    /// 401, to be sent with `WWW-Authenticate: Bearer`.
    Unauthorized(poem_openapi::payload::Json<ErrorBody>),
    /// 400, with `hint` saying what to send instead.
    BadRequest(poem_openapi::payload::Json<ErrorBody>),
}

impl Refusal {
    pub fn of(error: &poem::Error, hint: &str) -> Refusal {
        use poem_openapi::payload::Json;
        if error.status() == poem::http::StatusCode::UNAUTHORIZED {
            return Refusal::Unauthorized(Json(ErrorBody::new(
                ErrorCode::Unauthorized,
                error.to_string(),
                serde_json::json!({}),
            )));
        }
        Refusal::BadRequest(Json(ErrorBody::new(
            ErrorCode::InvalidRequest,
            format!("the request could not be read: {error}; {hint}"),
            serde_json::json!({}),
        )))
    }
}
