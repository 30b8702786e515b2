//! Language models, behind one small trait, with the retry, timing and bookkeeping every
//! provider shares.
//!
//! The engine never depends on a provider: it builds an [`LlmRequest`] (system instruction,
//! history, the prompt, and — for structured output — a JSON Schema) and gets text back.
//! Providers ([`gemini`], [`openai`]) translate that to their wire format, one attempt at a
//! time; [`Llm::ask`] retries 429/503 answers (honouring `Retry-After`) within one overall
//! timeout, records the call for the turn's trace and counts it by purpose.

pub mod gemini;
pub mod openai;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

pub use stream::{Piece, Pieces, StreamStart, TokenSink};

use crate::trace::LlmCallTrace;

/// What an LLM call is for; calls are counted and traced by purpose.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr, strum::EnumString, strum::VariantNames,
)]
#[strum(serialize_all = "lowercase")]
pub enum Purpose {
    /// Choose among the declared intents (no rule matched).
    Classify,
    /// Fill slots the `key:value` parser could not.
    Extract,
    /// A pipeline's `reason` step.
    Reason,
}

crate::serde_by_name!(Purpose);

impl Purpose {
    /// The most tokens the model may answer with: a classification or an extraction is a small
    /// JSON object; a `reason` step writes a reply. Nothing a model says can grow without bound.
    pub fn max_output_tokens(self) -> u32 {
        match self {
            Purpose::Classify | Purpose::Extract => 1024,
            Purpose::Reason => 4096,
        }
    }
}

/// The largest answer body read from a model (bytes): far above what
/// [`Purpose::max_output_tokens`] allows, so only a broken or hostile endpoint reaches it.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Who said an earlier message of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    User,
    Assistant,
}

/// One call to a model.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    pub purpose: Purpose,
    /// The instruction: ours, never the user's.
    pub system: String,
    /// Earlier messages of the conversation, oldest first.
    pub history: Vec<(Speaker, String)>,
    /// The last user turn of the request (user text inside it is quoted as data).
    pub prompt: String,
    /// A JSON Schema the answer must follow (structured output); `None` for free text.
    pub schema: Option<Value>,
    /// Name of the schema, for providers that want one (OpenAI's `json_schema.name`).
    pub schema_name: &'static str,
}

/// Tokens a call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAnswer {
    pub text: String,
    /// The model that answered, as the provider named it.
    pub model: String,
    pub usage: Usage,
}

/// Why a call gave no usable answer; templates and traces show the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum LlmErrorKind {
    Timeout,
    Unreachable,
    /// 429 (or the provider's quota error) that did not clear within the time allowed.
    OverQuota,
    /// The provider refused: a bad key, a blocked prompt, a refusal.
    Refused,
    /// An answer that is not what was asked for (not JSON, wrong shape, truncated).
    BadResponse,
    /// A streamed answer that stopped after part of it was handed on (a cut connection, an
    /// error event, the time limit): the part is never presented as the answer.
    Interrupted,
    /// Nobody listened to the streamed answer any more, so the call was stopped.
    Cancelled,
}

crate::serde_by_name!(LlmErrorKind);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    pub kind: LlmErrorKind,
    pub message: String,
}

impl LlmError {
    pub fn new(kind: LlmErrorKind, message: impl Into<String>) -> Self {
        LlmError { kind, message: message.into() }
    }
}

/// The result of one HTTP exchange with a provider.
#[derive(Debug)]
pub enum Attempt {
    Answer(LlmAnswer),
    /// Worth trying again (429, 503), after the delay the provider asked for, if it did.
    Retry {
        after: Option<Duration>,
        error: LlmError,
    },
    Failed(LlmError),
}

/// A provider: one attempt at a time; [`Llm`] does the rest.
pub trait LanguageModel: Send + Sync {
    /// `gemini` or `openai`.
    fn provider(&self) -> &'static str;
    /// The configured model name.
    fn model(&self) -> &str;
    /// One exchange, bounded by `timeout`.
    fn attempt<'a>(&'a self, request: &'a LlmRequest, timeout: Duration) -> BoxFuture<'a, Attempt>;
    /// One exchange whose answer comes as a stream of pieces, bounded by `timeout`. A provider
    /// that cannot stream gives its whole answer as one piece.
    fn stream<'a>(&'a self, request: &'a LlmRequest, timeout: Duration) -> BoxFuture<'a, StreamStart<'a>> {
        Box::pin(async move { StreamStart::from(self.attempt(request, timeout).await) })
    }
}

/// First pause between attempts when the provider gives no `Retry-After`; doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Attempts at one call: how many so far, and the pause before the next one, within the
/// retries allowed and the time left (whole and streamed answers share it).
struct Retries {
    deadline: Instant,
    max_retries: u32,
    attempts: u32,
    backoff: Duration,
}

impl Retries {
    fn new(deadline: Instant, max_retries: u32) -> Self {
        Retries { deadline, max_retries, attempts: 0, backoff: FIRST_BACKOFF }
    }

    /// Counts an attempt about to start; returns the time it has.
    fn next_attempt(&mut self) -> Duration {
        self.attempts += 1;
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The pause before trying again (the provider's `after`, else a doubling backoff), or
    /// `None` when the retries are used up or the pause would outlast the time left.
    fn pause(&mut self, after: Option<Duration>) -> Option<Duration> {
        let pause = after.unwrap_or(self.backoff);
        self.backoff *= 2;
        let left = self.deadline.saturating_duration_since(Instant::now());
        (self.attempts <= self.max_retries && pause < left).then_some(pause)
    }
}

/// A configured model with its limits and counters.
pub struct Llm {
    model: Arc<dyn LanguageModel>,
    /// The whole call, retries included (`GEMINI_TIMEOUT` / `OPENAI_TIMEOUT`).
    timeout: Duration,
    max_retries: u32,
    /// Below this a classification is not trusted (`LLM_MIN_CONFIDENCE`).
    pub min_confidence: f64,
    stats: Mutex<LlmStats>,
}

/// Calls and tokens by purpose, and how the last call went: for `/dependencies` and metrics.
#[derive(Debug, Clone, Default, Serialize, poem_openapi::Object)]
pub struct LlmStats {
    /// `gemini` or `openai`.
    pub provider: String,
    pub model: String,
    /// `ok` after a successful call, `failing` after a failed one, `unused` before any call.
    pub status: String,
    /// The last failure, in plain words.
    pub last_error: Option<String>,
    /// Calls by purpose (`classify`, `extract`, `reason`), failures included.
    pub calls: BTreeMap<String, u64>,
    /// Failed calls by purpose.
    pub failures: BTreeMap<String, u64>,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
}

impl Llm {
    pub fn new(model: Arc<dyn LanguageModel>, timeout: Duration, max_retries: u32, min_confidence: f64) -> Self {
        let stats = LlmStats {
            provider: model.provider().to_owned(),
            model: model.model().to_owned(),
            status: "unused".to_owned(),
            ..LlmStats::default()
        };
        Llm { model, timeout, max_retries, min_confidence, stats: Mutex::new(stats) }
    }

    pub fn provider(&self) -> &'static str {
        self.model.provider()
    }

    pub fn model(&self) -> &str {
        self.model.model()
    }

    pub fn stats(&self) -> LlmStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the model, retrying 429/503 within the timeout. Always returns the call's trace.
    pub async fn ask(&self, request: &LlmRequest) -> (Result<LlmAnswer, LlmError>, LlmCallTrace) {
        let started = Instant::now();
        let mut retries = Retries::new(started + self.timeout, self.max_retries);
        let result = loop {
            let left = retries.next_attempt();
            let attempt = match tokio::time::timeout(left, self.model.attempt(request, left)).await {
                Ok(attempt) => attempt,
                Err(_) => Attempt::Failed(timed_out(self.timeout)),
            };
            match attempt {
                Attempt::Answer(answer) => break Ok(answer),
                // said with the whole budget, not the remainder the last attempt had
                Attempt::Failed(error) if error.kind == LlmErrorKind::Timeout => break Err(timed_out(self.timeout)),
                Attempt::Failed(error) => break Err(error),
                Attempt::Retry { after, error } => match retries.pause(after) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => break Err(error),
                },
            }
        };
        let trace = self.trace(request, &result, started, retries.attempts);
        self.record(request.purpose, &result, started.elapsed());
        (result, trace)
    }

    /// The call as the turn's trace shows it.
    fn trace(
        &self,
        request: &LlmRequest,
        result: &Result<LlmAnswer, LlmError>,
        started: Instant,
        attempts: u32,
    ) -> LlmCallTrace {
        LlmCallTrace {
            purpose: request.purpose.as_str().to_owned(),
            provider: self.provider().to_owned(),
            model: result.as_ref().map(|a| a.model.clone()).unwrap_or_else(|_| self.model().to_owned()),
            latency_ms: started.elapsed().as_millis() as u64,
            attempts,
            prompt_tokens: result.as_ref().map(|a| a.usage.prompt_tokens).unwrap_or(0),
            output_tokens: result.as_ref().map(|a| a.usage.output_tokens).unwrap_or(0),
            outcome: crate::trace::ModelCallOutcome::of(result),
            error: result.as_ref().err().map(|e| e.message.clone()),
            stream: None,
            answer: result.as_ref().ok().map(|a| a.text.clone()),
        }
    }

    fn record(&self, purpose: Purpose, result: &Result<LlmAnswer, LlmError>, elapsed: Duration) {
        let (purpose_label, provider) = (purpose.as_str(), self.provider());
        let outcome = crate::trace::ModelCallOutcome::of(result).as_str();
        metrics::counter!("llm_calls_total", "purpose" => purpose_label, "provider" => provider, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("llm_call_duration_seconds", "purpose" => purpose_label).record(elapsed.as_secs_f64());
        if let Ok(answer) = result {
            metrics::counter!("llm_tokens_total", "purpose" => purpose_label, "kind" => "prompt")
                .increment(answer.usage.prompt_tokens);
            metrics::counter!("llm_tokens_total", "purpose" => purpose_label, "kind" => "output")
                .increment(answer.usage.output_tokens);
        }
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        *stats.calls.entry(purpose.as_str().to_owned()).or_default() += 1;
        match result {
            Ok(answer) => {
                stats.status = "ok".to_owned();
                stats.prompt_tokens += answer.usage.prompt_tokens;
                stats.output_tokens += answer.usage.output_tokens;
            }
            Err(error) => {
                stats.status = "failing".to_owned();
                stats.last_error = Some(error.message.clone());
                *stats.failures.entry(purpose.as_str().to_owned()).or_default() += 1;
            }
        }
    }
}

fn timed_out(after: Duration) -> LlmError {
    LlmError::new(
        LlmErrorKind::Timeout,
        format!("The language model did not answer within {}.", crate::util::human_duration(after)),
    )
}

/// One HTTP exchange with a provider, as an [`Attempt`]. Providers differ in their request and
/// success bodies (`read`) and in where a 429 may say how long to wait (`body_delay`); the
/// transport failures and error statuses mean the same everywhere:
/// - a connection that never opened is worth another try; a timeout has used the budget;
/// - 429 is over quota and 500/502/503 unavailable, both retried (after `Retry-After`);
/// - 400/401/403/404 are refusals (a bad key, a bad request, an unknown model); anything else is
///   a bad response.
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    read: impl FnOnce(&Value) -> Result<LlmAnswer, LlmError>,
    body_delay: impl FnOnce(&Value) -> Option<Duration>,
) -> Attempt {
    let response = match send(request, timeout, body_delay).await {
        Ok(response) => response,
        Err(attempt) => return attempt,
    };
    let body = match read_capped(response).await {
        Ok(body) => body,
        Err(error) => return Attempt::Failed(error),
    };
    match read(&body) {
        Ok(answer) => Attempt::Answer(answer),
        Err(error) => Attempt::Failed(error),
    }
}

/// Sends a request to a provider: the response when its status is a success, otherwise the
/// attempt's failure as [`exchange`] describes them. `timeout` bounds the body too (a stream).
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    body_delay: impl FnOnce(&Value) -> Option<Duration>,
) -> Result<reqwest::Response, Attempt> {
    let response = match request.timeout(timeout).send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return Err(Attempt::Failed(timed_out(timeout))),
        Err(_) => {
            let error = LlmError::new(LlmErrorKind::Unreachable, "The language model could not be reached.");
            return Err(Attempt::Retry { after: None, error });
        }
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let header_delay = retry_after(response.headers());
    let body: Value = read_capped(response).await.unwrap_or(Value::Null);
    let message = body["error"]["message"].as_str().unwrap_or("no reason given");
    let error = |kind, text: String| LlmError::new(kind, text);
    Err(match status {
        429 => Attempt::Retry {
            after: header_delay.or_else(|| body_delay(&body)),
            error: error(LlmErrorKind::OverQuota, format!("The language model is over its quota: {message}")),
        },
        500 | 502 | 503 => Attempt::Retry {
            after: header_delay,
            error: error(LlmErrorKind::Unreachable, format!("The language model is unavailable: {message}")),
        },
        400 | 401 | 403 | 404 => Attempt::Failed(error(
            LlmErrorKind::Refused,
            format!("The language model refused the request ({status}): {message}"),
        )),
        _ => Attempt::Failed(error(
            LlmErrorKind::BadResponse,
            format!("The language model answered with status {status}: {message}"),
        )),
    })
}

/// A response body as JSON, read up to [`MAX_ANSWER_BYTES`]: a larger one is a bad response,
/// not a reason to hold gigabytes. A body that is not JSON reads as `null`.
async fn read_capped(response: reqwest::Response) -> Result<Value, LlmError> {
    let bytes = crate::util::body_within(response, MAX_ANSWER_BYTES).await.ok_or_else(|| {
        LlmError::new(
            LlmErrorKind::BadResponse,
            format!("The language model's answer was larger than {MAX_ANSWER_BYTES} bytes."),
        )
    })?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// An error a provider reports inside a stream (`{"error": {"code", "message"}}`), as the
/// same kinds its HTTP statuses mean.
pub(crate) fn stream_error(error: &Value) -> LlmError {
    let message = error["message"].as_str().unwrap_or("no reason given");
    let code = error["code"].as_u64().unwrap_or(0);
    let kind = match code {
        429 => LlmErrorKind::OverQuota,
        500..=599 => LlmErrorKind::Unreachable,
        400..=499 => LlmErrorKind::Refused,
        _ => LlmErrorKind::BadResponse,
    };
    LlmError::new(kind, format!("The language model reported an error: {message}"))
}

/// How long a provider asked us to wait: OpenAI's `retry-after-ms`, else `Retry-After` in
/// seconds (the HTTP-date form is not used by these providers).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    header("retry-after")?.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers from a script, one attempt per entry.
    struct Scripted(Mutex<Vec<Attempt>>);

    impl LanguageModel for Scripted {
        fn provider(&self) -> &'static str {
            "scripted"
        }
        fn model(&self) -> &str {
            "script-1"
        }
        fn attempt<'a>(&'a self, _: &'a LlmRequest, _: Duration) -> BoxFuture<'a, Attempt> {
            let next = self.0.lock().expect("lock").remove(0);
            Box::pin(async move { next })
        }
    }

    fn request() -> LlmRequest {
        LlmRequest {
            purpose: Purpose::Classify,
            system: String::new(),
            history: Vec::new(),
            prompt: "hi".into(),
            schema: None,
            schema_name: "answer",
        }
    }

    fn answer() -> Attempt {
        Attempt::Answer(LlmAnswer {
            text: "{}".into(),
            model: "script-1".into(),
            usage: Usage { prompt_tokens: 10, output_tokens: 2, total_tokens: 12 },
        })
    }

    fn quota() -> Attempt {
        Attempt::Retry {
            after: Some(Duration::from_millis(10)),
            error: LlmError::new(LlmErrorKind::OverQuota, "over quota"),
        }
    }

    #[tokio::test]
    async fn quota_answers_are_retried_then_counted() {
        let llm = Llm::new(Arc::new(Scripted(Mutex::new(vec![quota(), answer()]))), Duration::from_secs(5), 2, 0.6);
        let (result, trace) = llm.ask(&request()).await;
        assert!(result.is_ok());
        assert_eq!((trace.attempts, trace.prompt_tokens, trace.outcome.as_str()), (2, 10, "ok"));
        let stats = llm.stats();
        assert_eq!((stats.calls.get("classify"), stats.status.as_str()), (Some(&1), "ok"));
    }

    #[tokio::test]
    async fn retries_stop_at_the_limit_and_the_failure_is_kept() {
        let llm =
            Llm::new(Arc::new(Scripted(Mutex::new(vec![quota(), quota(), quota()]))), Duration::from_secs(5), 2, 0.6);
        let (result, trace) = llm.ask(&request()).await;
        assert_eq!(result.expect_err("gave up").kind, LlmErrorKind::OverQuota);
        assert_eq!(trace.attempts, 3);
        assert_eq!(llm.stats().failures.get("classify"), Some(&1));
    }

    #[tokio::test]
    async fn a_retry_after_longer_than_the_time_left_is_not_waited_for() {
        let long = Attempt::Retry {
            after: Some(Duration::from_secs(60)),
            error: LlmError::new(LlmErrorKind::OverQuota, "over quota"),
        };
        let llm = Llm::new(Arc::new(Scripted(Mutex::new(vec![long, answer()]))), Duration::from_secs(2), 2, 0.6);
        let started = std::time::Instant::now();
        let (result, _) = llm.ask(&request()).await;
        assert_eq!(result.expect_err("no wait").kind, LlmErrorKind::OverQuota);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
