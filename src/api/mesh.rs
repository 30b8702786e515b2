//! The mesh's message endpoints (MESH.md §3, §6, §7): `POST /message` (envelopes relayed by the
//! Orchestrator: turns to answer, replies to our queries), `POST /heartbeat`, and `POST /send`
//! (forward a payload through the Orchestrator).

use std::net::IpAddr;
use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use super::error::{ErrorBody, ErrorCode, Refusal};
use super::rate_limit::{client_ip, retry_after_seconds, Limit};
use super::udc::MeshAuth;
use super::validate::{check_envelope_turn, envelope_turn};
use super::ApiTags;
use crate::auth::{bearer_token, Anchor, Caller, Verifier};
use crate::droplet_ids::ORCHESTRATOR;
use crate::engine::Engine;
use crate::envelope::{self, Envelope, Party};
use crate::mesh::{OrchestratorClient, Waiters};
use crate::session::{Entry, Owner};
use crate::util::utc_timestamp;

/// How long after an inbound heartbeat the next one is due.
const HEARTBEAT_INTERVAL_SECONDS: f64 = 60.0;

#[derive(ApiResponse)]
#[oai(bad_request_handler = "envelope_unreadable")]
pub enum MessageResponse {
    /// `{received: true, trace_id, processed_at, result: success|queued|error}`. A turn is
    /// `queued`: it is answered through the Orchestrator once processed.
    #[oai(status = 200)]
    Ok(Json<Value>),
    /// Not a usable envelope, or addressed to another droplet.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// With a Registry key set: no token from a sender outside `MESH_RELAY_ALLOW`, or a token
    /// that does not verify. In development (no key) a missing header is accepted.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// A valid token, but not the Orchestrator's: only droplet 10 relays to `/message`.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The turn's session id or metadata is not acceptable (the checks of `/api/chat`).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many envelopes from this address; `Retry-After` says how many seconds to wait.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
}

fn envelope_unreadable(error: poem::Error) -> MessageResponse {
    match Refusal::of(&error, "send a UDC envelope as JSON") {
        Refusal::Unauthorized(body) => MessageResponse::Unauthorized(body, "Bearer".to_owned()),
        Refusal::BadRequest(body) => MessageResponse::BadRequest(body),
    }
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "heartbeat_unreadable")]
pub enum HeartbeatResponse {
    /// An envelope whose payload is `{received: true, next_heartbeat_deadline: <epoch seconds>}`.
    #[oai(status = 200)]
    Ok(Json<Value>),
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
}

fn heartbeat_unreadable(error: poem::Error) -> HeartbeatResponse {
    match Refusal::of(&error, "send a UDC envelope as JSON") {
        Refusal::Unauthorized(body) => HeartbeatResponse::Unauthorized(body, "Bearer".to_owned()),
        Refusal::BadRequest(body) => HeartbeatResponse::BadRequest(body),
    }
}

/// `POST /send` body (the fixture `udc_send_request.json`).
#[derive(Debug, Object)]
pub struct SendRequest {
    /// The droplet to send to: `"6"`, `6`, `"droplet-6"`…
    pub target: Value,
    /// `command`, `query`, `response` or `event`.
    pub message_type: String,
    pub payload: Value,
    /// `high`, `normal` or `low` (recorded, not used for ordering yet).
    pub priority: Option<String>,
    /// Accepted for compatibility; the Orchestrator does not retry relays.
    pub retry_count: Option<u32>,
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "send_unreadable")]
pub enum SendResponse {
    /// `{sent, trace_id, target, timestamp, result}`.
    #[oai(status = 200)]
    Ok(Json<Value>),
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No Orchestrator is configured (`ORCHESTRATOR_URL`), or it did not take the message.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn send_unreadable(error: poem::Error) -> SendResponse {
    match Refusal::of(&error, "send {target, message_type, payload}") {
        Refusal::Unauthorized(body) => SendResponse::Unauthorized(body, "Bearer".to_owned()),
        Refusal::BadRequest(body) => SendResponse::BadRequest(body),
    }
}

pub struct MeshApi {
    pub engine: Arc<Engine>,
    pub verifier: Arc<Verifier>,
    pub waiters: Arc<Waiters>,
    pub orchestrator: Option<OrchestratorClient>,
    /// Addresses whose envelopes need no token (`MESH_RELAY_ALLOW`).
    pub relay_allow: Arc<[ipnet::IpNet]>,
    /// Envelopes per minute per sending address (`RATE_LIMIT_PROCESS`, a budget of its own).
    pub limit: Limit,
}

impl MeshApi {
    /// Who sent an envelope, when they may: with a Registry key set, the Orchestrator's verified
    /// token, or no token from an address in `MESH_RELAY_ALLOW`; in development anyone.
    fn relay_sender(
        &self,
        request: &poem::Request,
        remote: Option<IpAddr>,
    ) -> Result<Option<Caller>, Box<MessageResponse>> {
        let unauthorized = |message: String| {
            MessageResponse::Unauthorized(
                Json(ErrorBody::new(ErrorCode::Unauthorized, message, json!({}))),
                "Bearer".to_owned(),
            )
        };
        let header = request.header("authorization").filter(|h| *h != "Bearer development-mode");
        let Some(header) = header else {
            if self.verifier.is_open() || remote.is_some_and(|ip| self.relay_allow.iter().any(|net| net.contains(&ip)))
            {
                return Ok(None);
            }
            return Err(Box::new(unauthorized(
                "a bearer token is required: only the Orchestrator relays here, with its token or from an address \
                 in MESH_RELAY_ALLOW"
                    .to_owned(),
            )));
        };
        let caller =
            self.verifier.verify(bearer_token(header).as_deref()).map_err(|e| Box::new(unauthorized(e.to_string())))?;
        if caller.anchor != Anchor::Unverified && caller.droplet != Some(ORCHESTRATOR) {
            return Err(Box::new(MessageResponse::Forbidden(Json(ErrorBody::new(
                ErrorCode::Forbidden,
                format!("the token is `{}`'s; only the Orchestrator (droplet 10) relays to /message", caller.subject),
                json!({}),
            )))));
        }
        Ok(Some(caller))
    }
}

fn ack(trace_id: &str, result: &str) -> MessageResponse {
    MessageResponse::Ok(Json(json!({
        "received": true,
        "trace_id": trace_id,
        "processed_at": utc_timestamp(),
        "result": result,
    })))
}

#[OpenApi]
impl MeshApi {
    /// Receive a UDC envelope (relayed by the Orchestrator or sent directly).
    ///
    /// Only the Orchestrator relays here. In development (no Registry key) anyone may; with a
    /// key, the envelope needs the Orchestrator's token, or must come from an address in
    /// `MESH_RELAY_ALLOW` (droplet 10 relays with no Authorization header). A header that is
    /// present must verify. Relayed turns have sessions of their own: an envelope never
    /// reaches a session started on `/api/chat`, `/ws` or `/api/process`.
    /// A turn (`query`/`command` with `payload.message`) is acknowledged
    /// as `queued` at once and answered through the Orchestrator; a `response`/`error` is
    /// matched to the query waiting for it.
    #[oai(path = "/message", method = "post", tag = "ApiTags::Udc")]
    async fn message(&self, body: Json<Value>, request: &poem::Request) -> MessageResponse {
        let remote = request.remote_addr().as_socket_addr().map(|a| a.ip());
        if let Err(wait) = self.limit.check(client_ip(request.remote_addr())) {
            let seconds = retry_after_seconds(wait);
            return MessageResponse::TooManyRequests(Json(ErrorBody::rate_limited(seconds)), seconds.to_string());
        }
        let sender = match self.relay_sender(request, remote) {
            Ok(sender) => sender,
            Err(refused) => return *refused,
        };
        let incoming = match Envelope::parse(&body.0) {
            Ok(incoming) => incoming,
            Err(error) => return bad_message(format!("the envelope is not usable: {error}")),
        };
        let our_id = self.engine.runtime().config.identity.id;
        if let Some(target) = &incoming.target {
            if target.droplet() != Some(our_id) {
                return bad_message(format!(
                    "the envelope is addressed to `{}`, not to droplet {our_id}",
                    target.wire()
                ));
            }
        }
        match incoming.message_type.as_str() {
            "response" | "error" => {
                let key = ["in_reply_to", "trace_id"]
                    .iter()
                    .find_map(|k| incoming.payload.get(*k).and_then(Value::as_str))
                    .unwrap_or(&incoming.trace_id)
                    .to_owned();
                let matched = self.waiters.deliver(&key, body.0.clone());
                tracing::debug!(in_reply_to = %key, matched, "reply received");
                ack(&incoming.trace_id, "success")
            }
            "query" | "command" if incoming.user_text().is_ok() => {
                if let Err(problem) = check_envelope_turn(&incoming) {
                    return MessageResponse::Unprocessable(Json(*problem));
                }
                // relayed turns have sessions of their own, per origin: an envelope cannot reach a
                // chat session by naming it in `payload.metadata.session_id`
                let origin = format!(
                    "{}{}",
                    incoming.origin().wire(),
                    sender.map(|c| format!("/{}", c.subject)).unwrap_or_default()
                );
                let owner = Owner::new(Entry::Relay, Some(&origin));
                let (engine, orchestrator) = (self.engine.clone(), self.orchestrator.clone());
                let trace_id = incoming.trace_id.clone();
                // droplet 10 gives us 10 s before it reports a timeout: answer later, not now
                tokio::spawn(answer_relayed_turn(engine, orchestrator, incoming, our_id, owner));
                ack(&trace_id, "queued")
            }
            _ => ack(&incoming.trace_id, "success"),
        }
    }

    /// Answer a peer's heartbeat with the deadline for its next one.
    #[oai(path = "/heartbeat", method = "post", tag = "ApiTags::Udc")]
    async fn heartbeat(&self, _auth: MeshAuth, body: Json<Value>) -> HeartbeatResponse {
        let incoming = match Envelope::parse(&body.0) {
            Ok(incoming) => incoming,
            Err(error) => {
                return HeartbeatResponse::BadRequest(Json(ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    format!("the heartbeat envelope is not usable: {error}"),
                    json!({}),
                )))
            }
        };
        let sent_at = incoming
            .timestamp
            .as_deref()
            .and_then(|t| time::OffsetDateTime::parse(t, &Rfc3339).ok())
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        let deadline = sent_at.unix_timestamp_nanos() as f64 / 1e9 + HEARTBEAT_INTERVAL_SECONDS;
        let our_id = self.engine.runtime().config.identity.id;
        HeartbeatResponse::Ok(Json(envelope::response(
            &incoming,
            our_id,
            json!({"received": true, "next_heartbeat_deadline": deadline}),
        )))
    }

    /// Send a payload to another droplet through the Orchestrator.
    #[oai(path = "/send", method = "post", tag = "ApiTags::Udc")]
    async fn send(&self, _auth: MeshAuth, body: Json<SendRequest>) -> SendResponse {
        let request = body.0;
        let Some(target) = Party::parse(&request.target).and_then(|p| p.droplet()).filter(|id| *id >= 1) else {
            return SendResponse::BadRequest(Json(ErrorBody::new(
                ErrorCode::InvalidRequest,
                "`target` must name a droplet by number, e.g. \"6\"",
                json!({"field": "target"}),
            )));
        };
        let Some(orchestrator) = &self.orchestrator else {
            return SendResponse::Unavailable(Json(ErrorBody::new(
                ErrorCode::DependencyUnavailable,
                "no Orchestrator is configured (ORCHESTRATOR_URL), so nothing can be sent",
                json!({}),
            )));
        };
        let trace_id = uuid::Uuid::new_v4().to_string();
        match orchestrator
            .send(target, &request.message_type, &request.payload, &trace_id, &format!("droplet {target}"))
            .await
        {
            Ok(relay) => SendResponse::Ok(Json(json!({
                "sent": true,
                "trace_id": relay,
                "target": target.to_string(),
                "timestamp": utc_timestamp(),
                "result": "success",
            }))),
            Err(error) => SendResponse::Unavailable(Json(ErrorBody::new(
                ErrorCode::DependencyUnavailable,
                error.message,
                json!({}),
            ))),
        }
    }
}

fn bad_message(message: String) -> MessageResponse {
    MessageResponse::BadRequest(Json(ErrorBody::new(ErrorCode::InvalidRequest, message, json!({}))))
}

/// Runs a relayed turn and sends the answer back through the Orchestrator (MESH.md §7, V2/V3).
async fn answer_relayed_turn(
    engine: Arc<Engine>,
    orchestrator: Option<OrchestratorClient>,
    incoming: Envelope,
    our_id: i64,
    owner: Owner,
) {
    let session_id = incoming.session_id();
    let Ok(text) = incoming.user_text() else { return };
    let turn = envelope_turn(&incoming, session_id.clone(), text, owner);
    let reply = match engine.handle(turn).await {
        Ok(reply) => reply,
        Err(error) => {
            tracing::error!(%error, trace_id = %incoming.trace_id, "relayed turn failed");
            return;
        }
    };
    let relayed_without_route_back =
        incoming.source.droplet() == Some(crate::droplet_ids::ORCHESTRATOR) && incoming.route_back.is_none();
    let target = incoming.reply_target();
    let (Some(orchestrator), Some(target_id), false) = (orchestrator, target.droplet(), relayed_without_route_back)
    else {
        // the reply is in the session; nobody can be told
        tracing::warn!(trace_id = %incoming.trace_id, session = %session_id, "relayed turn answered but not delivered: no Orchestrator or no route back");
        return;
    };
    let body = json!({
        "response": reply.text,
        "session_id": session_id,
        "in_reply_to": incoming.trace_id,
        "origin": our_id.to_string(),
    });
    if let Err(error) =
        orchestrator.send(target_id, "response", &body, &incoming.trace_id, &format!("droplet {target_id}")).await
    {
        tracing::error!(trace_id = %incoming.trace_id, error = %error.message, "the answer could not be delivered; it stays in the session");
    }
}
