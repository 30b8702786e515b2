//! `POST /api/process`: a turn from another droplet — the Voice droplet above all — as a UDC
//! envelope, answered synchronously with a response envelope addressed to `route_back`
//! (MESH.md §7, form V1). Voice turns run on the voice channel in the session
//! `droplet_6_{user_id}`.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::{json, Value};

use super::error::{ErrorBody, ErrorCode, Refusal, TurnRefusal};
use super::rate_limit::{client_ip, retry_after_seconds, Limit};
use super::udc::MeshAuth;
use super::validate::{check_envelope_turn, check_sender, envelope_turn};
use super::ApiTags;
use crate::engine::Engine;
use crate::envelope::{self, Envelope};
use crate::session::{Entry, Owner};

#[derive(ApiResponse)]
#[oai(bad_request_handler = "process_bad_request")]
pub enum ProcessResponse {
    /// The answer: `{udc_version, trace_id, source: "12", target: <route_back or source>,
    /// message_type: "response", payload: {response, session_id}, timestamp}`.
    #[oai(status = 200)]
    Ok(Json<Value>),
    /// The envelope cannot be used (not an object, no trace id, no text, addressed elsewhere…).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The token is valid but not the sender's: a droplet may only send its own turns.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The session id or metadata is not acceptable (as on `/api/chat`).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many turns from this client; `Retry-After` says how many seconds to wait.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
    /// Something failed on our side; nothing was stored.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The session store is unavailable; nothing was stored.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn process_bad_request(error: poem::Error) -> ProcessResponse {
    match Refusal::of(&error, "send a UDC envelope as JSON") {
        Refusal::Unauthorized(body) => ProcessResponse::Unauthorized(body, "Bearer".to_owned()),
        Refusal::BadRequest(body) => ProcessResponse::BadRequest(body),
    }
}

fn bad_request(message: String) -> ProcessResponse {
    ProcessResponse::BadRequest(Json(ErrorBody::new(ErrorCode::InvalidRequest, message, json!({}))))
}

pub struct ProcessApi {
    pub engine: Arc<Engine>,
    pub limit: Limit,
}

#[OpenApi]
impl ProcessApi {
    /// Answer a turn sent by another droplet (Voice) as a UDC envelope.
    #[oai(path = "/api/process", method = "post", tag = "ApiTags::Udc")]
    async fn process(
        &self,
        MeshAuth(caller): MeshAuth,
        body: Json<Value>,
        remote: &poem::web::RemoteAddr,
    ) -> ProcessResponse {
        if let Err(wait) = self.limit.check(client_ip(remote)) {
            let seconds = retry_after_seconds(wait);
            return ProcessResponse::TooManyRequests(Json(ErrorBody::rate_limited(seconds)), seconds.to_string());
        }
        let request = match Envelope::parse(&body.0) {
            Ok(request) => request,
            Err(error) => return bad_request(format!("the envelope is not usable: {error}")),
        };
        let runtime = self.engine.runtime();
        let our_id = runtime.config.identity.id;
        if let Some(target) = &request.target {
            if target.droplet() != Some(our_id) {
                return bad_request(format!(
                    "the envelope is addressed to `{}`, not to droplet {our_id}",
                    target.wire()
                ));
            }
        }
        let text = match request.user_text() {
            Ok(text) => text,
            Err(error) => return bad_request(error.to_string()),
        };
        if let Err(refused) = check_sender(&caller, &request) {
            return ProcessResponse::Forbidden(Json(*refused));
        }
        let session_id = match check_envelope_turn(&request) {
            Ok(session_id) => session_id,
            Err(problem) => return ProcessResponse::Unprocessable(Json(*problem)),
        };
        let owner = Owner::new(Entry::Process, caller.verified_subject());
        let turn = envelope_turn(&request, session_id.clone(), text, owner);
        match self.engine.handle(turn).await {
            Ok(reply) => ProcessResponse::Ok(Json(envelope::response(
                &request,
                our_id,
                json!({"response": reply.text, "session_id": session_id, "intent": reply.intent}),
            ))),
            Err(error) => match ErrorBody::of_turn(&error, "payload.request_id") {
                TurnRefusal::Unprocessable(body) => ProcessResponse::Unprocessable(Json(body)),
                TurnRefusal::Unavailable(body) => ProcessResponse::Unavailable(Json(body)),
                TurnRefusal::Internal(body) => ProcessResponse::Internal(Json(body)),
            },
        }
    }
}
