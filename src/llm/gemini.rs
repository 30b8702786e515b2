//! Google Gemini over its REST API: `POST {base}/v1beta/models/{model}:generateContent` with the
//! key in `x-goog-api-key`; a streamed answer is `:streamGenerateContent?alt=sse`, one
//! `GenerateContentResponse` per server-sent event. Structured output uses `generationConfig.responseMimeType =
//! application/json` and a `responseSchema` (Gemini's OpenAPI-style subset, converted from our
//! JSON Schema by [`response_schema`]). Token counts come from `usageMetadata`.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

use super::stream::{sse_pieces, Piece, StreamStart};
use super::{
    exchange, send, stream_error, Attempt, LanguageModel, LlmAnswer, LlmError, LlmErrorKind, LlmRequest, Speaker, Usage,
};

/// The public endpoint; tests and proxies set `GEMINI_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
pub const DEFAULT_MODEL: &str = "gemini-2.5-flash";

pub struct Gemini {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    model: String,
}

impl Gemini {
    pub fn new(base_url: &str, api_key: &str, model: &str) -> Self {
        Gemini {
            http: crate::util::outgoing_http(None),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            model: model.to_owned(),
        }
    }

    /// The `generateContent` body for a request.
    pub fn body(request: &LlmRequest) -> Value {
        let mut contents: Vec<Value> = Vec::new();
        // the conversation must open with the user; a leading assistant greeting is dropped
        let history = request.history.iter().skip_while(|(speaker, _)| *speaker == Speaker::Assistant);
        for (speaker, text) in history {
            let role = match speaker {
                Speaker::User => "user",
                Speaker::Assistant => "model",
            };
            contents.push(json!({"role": role, "parts": [{"text": text}]}));
        }
        contents.push(json!({"role": "user", "parts": [{"text": request.prompt}]}));
        let mut generation = json!({"temperature": 0, "maxOutputTokens": request.purpose.max_output_tokens()});
        if let Some(schema) = &request.schema {
            generation["responseMimeType"] = json!("application/json");
            generation["responseSchema"] = response_schema(schema);
        }
        json!({
            "systemInstruction": {"parts": [{"text": request.system}]},
            "contents": contents,
            "generationConfig": generation,
        })
    }

    async fn call(&self, request: &LlmRequest, timeout: Duration) -> Attempt {
        let url = format!("{}/v1beta/models/{}:generateContent", self.base_url, self.model);
        let call = self.http.post(&url).header("x-goog-api-key", &self.api_key).json(&Self::body(request));
        exchange(call, timeout, |body| answer(body, &self.model), retry_info_delay).await
    }

    async fn open_stream<'a>(&'a self, request: &'a LlmRequest, timeout: Duration) -> StreamStart<'a> {
        let url = format!("{}/v1beta/models/{}:streamGenerateContent?alt=sse", self.base_url, self.model);
        let call = self.http.post(&url).header("x-goog-api-key", &self.api_key).json(&Self::body(request));
        match send(call, timeout, retry_info_delay).await {
            Ok(response) => StreamStart::Started(sse_pieces(response, |event| Some(piece(&event.data)))),
            Err(attempt) => attempt.into(),
        }
    }
}

impl LanguageModel for Gemini {
    fn provider(&self) -> &'static str {
        "gemini"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn attempt<'a>(&'a self, request: &'a LlmRequest, timeout: Duration) -> BoxFuture<'a, Attempt> {
        Box::pin(self.call(request, timeout))
    }

    fn stream<'a>(&'a self, request: &'a LlmRequest, timeout: Duration) -> BoxFuture<'a, StreamStart<'a>> {
        Box::pin(self.open_stream(request, timeout))
    }
}

/// One event of `streamGenerateContent`: the candidate's next text, and on the last one its
/// `finishReason` and the token counts. An error object or a stop for any reason but `STOP`
/// ends the answer with that error.
fn piece(data: &str) -> Result<Piece, LlmError> {
    let body: Value = serde_json::from_str(data).map_err(|error| {
        LlmError::new(LlmErrorKind::BadResponse, format!("The language model sent an event that is not JSON: {error}"))
    })?;
    if body["error"].is_object() {
        return Err(stream_error(&body["error"]));
    }
    if let Some(reason) = body["promptFeedback"]["blockReason"].as_str() {
        return Err(LlmError::new(LlmErrorKind::Refused, format!("The language model blocked the prompt ({reason}).")));
    }
    let candidate = &body["candidates"][0];
    let done = match candidate["finishReason"].as_str() {
        None => false,
        Some("STOP") => true,
        Some(finish) => {
            return Err(LlmError::new(LlmErrorKind::Refused, format!("The language model stopped early ({finish}).")))
        }
    };
    let parts = candidate["content"]["parts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let text: String =
        parts.iter().filter(|part| part["thought"] != json!(true)).filter_map(|part| part["text"].as_str()).collect();
    Ok(Piece {
        text,
        usage: body["usageMetadata"].is_object().then(|| usage(&body["usageMetadata"])),
        model: body["modelVersion"].as_str().map(str::to_owned),
        done,
    })
}

fn usage(usage: &Value) -> Usage {
    let count = |name: &str| usage[name].as_u64().unwrap_or(0);
    Usage {
        prompt_tokens: count("promptTokenCount"),
        // thinking tokens are billed as output
        output_tokens: count("candidatesTokenCount") + count("thoughtsTokenCount"),
        total_tokens: count("totalTokenCount"),
    }
}

/// The text of the first candidate (thought parts skipped), with its token counts.
fn answer(body: &Value, configured_model: &str) -> Result<LlmAnswer, LlmError> {
    if let Some(reason) = body["promptFeedback"]["blockReason"].as_str() {
        return Err(LlmError::new(LlmErrorKind::Refused, format!("The language model blocked the prompt ({reason}).")));
    }
    let candidate = &body["candidates"][0];
    let finish = candidate["finishReason"].as_str().unwrap_or("STOP");
    if !matches!(finish, "STOP" | "FINISH_REASON_UNSPECIFIED") {
        let kind = if finish == "MAX_TOKENS" { LlmErrorKind::BadResponse } else { LlmErrorKind::Refused };
        return Err(LlmError::new(kind, format!("The language model stopped early ({finish}).")));
    }
    let parts = candidate["content"]["parts"].as_array().cloned().unwrap_or_default();
    let text: String =
        parts.iter().filter(|part| part["thought"] != json!(true)).filter_map(|part| part["text"].as_str()).collect();
    if text.trim().is_empty() {
        return Err(LlmError::new(LlmErrorKind::BadResponse, "The language model gave an empty answer."));
    }
    Ok(LlmAnswer {
        text,
        model: body["modelVersion"].as_str().unwrap_or(configured_model).to_owned(),
        usage: usage(&body["usageMetadata"]),
    })
}

/// `google.rpc.RetryInfo.retryDelay` ("17s") from a 429's `error.details`.
fn retry_info_delay(body: &Value) -> Option<Duration> {
    body["error"]["details"].as_array()?.iter().find_map(|detail| {
        let delay = detail["retryDelay"].as_str()?;
        delay
            .trim_end_matches('s')
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    })
}

/// Our JSON Schema in the subset Gemini's `responseSchema` takes: upper-case types, `nullable`
/// instead of a `null` type, `propertyOrdering` so fields come in the order we declared, and no
/// `additionalProperties` (an object only has the properties listed anyway).
pub fn response_schema(schema: &Value) -> Value {
    let Some(object) = schema.as_object() else { return schema.clone() };
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "type" => {
                let types: Vec<&str> = match value {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if types.contains(&"null") {
                    out.insert("nullable".into(), json!(true));
                }
                if let Some(t) = types.iter().find(|t| **t != "null") {
                    out.insert("type".into(), json!(t.to_uppercase()));
                }
            }
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .map(|p| p.iter().map(|(name, s)| (name.clone(), response_schema(s))).collect())
                    .unwrap_or_default();
                out.insert("propertyOrdering".into(), json!(properties.keys().collect::<Vec<_>>()));
                out.insert("properties".into(), Value::Object(properties));
            }
            "items" => {
                out.insert("items".into(), response_schema(value));
            }
            "enum" | "required" | "description" | "minItems" | "maxItems" | "minimum" | "maximum" | "format" => {
                out.insert(key.clone(), value.clone());
            }
            _ => {} // additionalProperties, $schema, title, …: not in Gemini's subset
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schema_becomes_gemini_response_schema() {
        let schema = json!({
            "type": "object", "additionalProperties": false, "required": ["a", "b"],
            "properties": {
                "a": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}, "maxItems": 3},
                "b": {"type": ["string", "null"], "description": "maybe"},
            }
        });
        assert_eq!(
            response_schema(&schema),
            json!({
                "type": "OBJECT", "required": ["a", "b"], "propertyOrdering": ["a", "b"],
                "properties": {
                    "a": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["x", "y"]}, "maxItems": 3},
                    "b": {"type": "STRING", "nullable": true, "description": "maybe"},
                }
            })
        );
    }

    #[test]
    fn stream_events_become_pieces() {
        let first = r#"{"candidates": [{"content": {"parts": [{"text": "All six"}], "role": "model"}, "index": 0}], "modelVersion": "gemini-2.5-flash"}"#;
        assert_eq!(
            piece(first).expect("piece"),
            Piece { text: "All six".into(), usage: None, model: Some("gemini-2.5-flash".into()), done: false }
        );
        let last = r#"{"candidates": [{"content": {"parts": [{"text": " are up."}], "role": "model"}, "finishReason": "STOP", "index": 0}],
                       "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 4, "totalTokenCount": 54}}"#;
        let last = piece(last).expect("piece");
        assert!(last.done);
        assert_eq!(last.usage.map(|u| u.total_tokens), Some(54));
        let error = r#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#;
        assert_eq!(piece(error).expect_err("error").kind, LlmErrorKind::Unreachable);
        let safety =
            r#"{"candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": "SAFETY", "index": 0}]}"#;
        assert_eq!(piece(safety).expect_err("stopped").kind, LlmErrorKind::Refused);
    }

    #[test]
    fn answers_skip_thoughts_and_read_usage() {
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "thinking…", "thought": true}, {"text": "{\"ok\":true}"}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 7, "thoughtsTokenCount": 20, "totalTokenCount": 127},
            "modelVersion": "gemini-2.5-flash-001"
        });
        let answer = answer(&body, "gemini-2.5-flash").expect("answer");
        assert_eq!(answer.text, "{\"ok\":true}");
        assert_eq!(answer.model, "gemini-2.5-flash-001");
        assert_eq!(answer.usage, Usage { prompt_tokens: 100, output_tokens: 27, total_tokens: 127 });
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        assert_eq!(super::answer(&blocked, "m").expect_err("blocked").kind, LlmErrorKind::Refused);
        let delay = json!({"error": {"code": 429, "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}]}});
        assert_eq!(retry_info_delay(&delay), Some(Duration::from_secs(17)));
    }
}
