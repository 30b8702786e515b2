//! `POST /api/analyze`: which intent a message has and the slots it gives, without acting on it
//! (the catalogue's `/analyze` of droplet 12). Nothing is stored and no droplet is called.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::{ErrorBody, Refusal};
use super::rate_limit::{client_ip, retry_after_seconds, Limit};
use super::text::Text;
use super::udc::MeshAuth;
use super::validate::check_message;
use super::ApiTags;
use crate::engine::Engine;
use crate::trace::{IntentTrace, LlmCallTrace};

#[derive(Debug, Object)]
pub struct AnalyzeRequest {
    /// The message to analyse: 1 to 5000 characters after trimming.
    pub message: Text,
}

#[derive(Debug, Object)]
pub struct AnalyzedIntent {
    /// The intent, how it was chosen (`rules`, `llm`, `fallback`), its score or the model's
    /// confidence, and why.
    pub intent: IntentTrace,
    /// Slot values the message gives.
    pub slots: serde_json::Value,
    /// Values dropped and why (e.g. a value the model gave that the user never said).
    pub notes: Vec<String>,
}

#[derive(Debug, Object)]
pub struct AnalyzeReply {
    /// The intent that would answer.
    pub intent: String,
    /// Its score (rules) or the model's confidence; 0 for the fallback.
    pub confidence: f64,
    /// Every intent found, most important first (several only when the model found several).
    pub intents: Vec<AnalyzedIntent>,
    /// What became of asking the model (`not_needed`: the rules decided).
    pub llm_status: crate::trace::ModelStatus,
    /// The language-model call, when one was made.
    pub llm: Vec<LlmCallTrace>,
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "unreadable_request")]
pub enum AnalyzeResponse {
    /// What the message means.
    #[oai(status = 200)]
    Ok(Json<AnalyzeReply>),
    /// The body is not valid JSON or does not have the documented shape.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The message is empty or too long.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Missing or invalid bearer token (required once `REGISTRY_PUBLIC_KEY` is set).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Too many requests from this client; `Retry-After` says how many seconds to wait.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
}

fn unreadable_request(error: poem::Error) -> AnalyzeResponse {
    match Refusal::of(&error, "send JSON like {\"message\": \"show me all droplets\"}") {
        Refusal::Unauthorized(body) => AnalyzeResponse::Unauthorized(body, "Bearer".to_owned()),
        Refusal::BadRequest(body) => AnalyzeResponse::BadRequest(body),
    }
}

pub struct AnalyzeApi {
    pub engine: Arc<Engine>,
    /// Shared with `/api/chat`: analysing costs a model call too.
    pub limit: Limit,
}

#[OpenApi]
impl AnalyzeApi {
    /// Tell which intent a message has and the slots it gives, without acting on it.
    #[oai(path = "/api/analyze", method = "post", tag = "ApiTags::Chat")]
    async fn analyze(
        &self,
        _auth: MeshAuth,
        body: Json<AnalyzeRequest>,
        remote: &poem::web::RemoteAddr,
    ) -> AnalyzeResponse {
        if let Err(wait) = self.limit.check(client_ip(remote)) {
            let seconds = retry_after_seconds(wait);
            return AnalyzeResponse::TooManyRequests(Json(ErrorBody::rate_limited(seconds)), seconds.to_string());
        }
        let text = body.0.message.trim().to_owned();
        if let Err(problem) = check_message(&text) {
            return AnalyzeResponse::Unprocessable(Json(*problem));
        }
        let analysis = self.engine.analyze(&text).await;
        let first = analysis.intents.first();
        AnalyzeResponse::Ok(Json(AnalyzeReply {
            intent: first.map(|a| a.why.id.clone()).unwrap_or_default(),
            confidence: first.map(|a| a.why.score).unwrap_or(0.0),
            intents: analysis
                .intents
                .into_iter()
                .map(|a| AnalyzedIntent { intent: a.why, slots: serde_json::Value::Object(a.slots), notes: a.notes })
                .collect(),
            llm_status: analysis.llm_status,
            llm: analysis.llm,
        }))
    }
}
