//! Any OpenAI-compatible chat-completions endpoint (Ollama, vLLM, llama.cpp server, OpenAI):
//! `POST {base}/chat/completions`, structured output through `response_format: {type:
//! json_schema, json_schema: {name, strict: true, schema}}`. The key, when there is one, goes
//! in `Authorization: Bearer`. A streamed answer sets `stream: true` (with usage in the last
//! chunk) and comes as `chat.completion.chunk` events ending with `data: [DONE]`.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::stream::{sse_pieces, Piece, StreamStart};
use super::{
    exchange, send, stream_error, Attempt, LanguageModel, LlmAnswer, LlmError, LlmErrorKind, LlmRequest, Speaker, Usage,
};

/// Ollama's OpenAI-compatible endpoint on this machine.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:11434/v1";

pub struct OpenAiCompatible {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    model: String,
}

impl OpenAiCompatible {
    pub fn new(base_url: &str, api_key: Option<&str>, model: &str) -> Self {
        OpenAiCompatible {
            http: crate::util::outgoing_http(None),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.map(str::to_owned),
            model: model.to_owned(),
        }
    }

    /// The chat-completions body for a request.
    pub fn body(&self, request: &LlmRequest) -> Value {
        let mut messages = vec![json!({"role": "system", "content": request.system})];
        for (speaker, text) in &request.history {
            let role = match speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            messages.push(json!({"role": role, "content": text}));
        }
        messages.push(json!({"role": "user", "content": request.prompt}));
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_completion_tokens": request.purpose.max_output_tokens(),
        });
        if let Some(schema) = &request.schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "strict": true, "schema": schema},
            });
        }
        body
    }

    async fn call(&self, request: &LlmRequest, timeout: Duration) -> Attempt {
        let mut call = self.http.post(format!("{}/chat/completions", self.base_url)).json(&self.body(request));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        exchange(call, timeout, |body| answer(body, &self.model), |_| None).await
    }

    async fn open_stream<'a>(&'a self, request: &'a LlmRequest, timeout: Duration) -> StreamStart<'a> {
        let mut body = self.body(request);
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let mut call = self.http.post(format!("{}/chat/completions", self.base_url)).json(&body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        match send(call, timeout, |_| None).await {
            Ok(response) => StreamStart::Started(sse_pieces(response, |event| {
                (event.event == "error")
                    .then(|| Err(stream_error(&error_of(&event.data))))
                    .or_else(|| Some(piece(&event.data)))
            })),
            Err(attempt) => attempt.into(),
        }
    }
}

impl LanguageModel for OpenAiCompatible {
    fn provider(&self) -> &'static str {
        "openai"
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

/// The error object of an `event: error`, whether its data is the object or wraps it.
fn error_of(data: &str) -> Value {
    let value: Value = serde_json::from_str(data).unwrap_or_else(|_| json!({"message": data}));
    if value["error"].is_object() {
        value["error"].clone()
    } else {
        value
    }
}

/// One `chat.completion.chunk` (or `[DONE]`, or an error object, as vLLM and llama.cpp send
/// one mid-stream).
fn piece(data: &str) -> Result<Piece, LlmError> {
    if data.trim() == "[DONE]" {
        return Ok(Piece { done: true, ..Piece::default() });
    }
    let chunk: Value = serde_json::from_str(data).map_err(|error| {
        LlmError::new(LlmErrorKind::BadResponse, format!("The language model sent an event that is not JSON: {error}"))
    })?;
    if chunk["error"].is_object() {
        return Err(stream_error(&chunk["error"]));
    }
    let choice = &chunk["choices"][0];
    if let Some(refusal) = choice["delta"]["refusal"].as_str() {
        return Err(LlmError::new(LlmErrorKind::Refused, format!("The language model refused: {refusal}")));
    }
    let done = match choice["finish_reason"].as_str() {
        Some("length") => {
            return Err(LlmError::new(LlmErrorKind::BadResponse, "The language model's answer was cut off."))
        }
        Some("content_filter") => {
            return Err(LlmError::new(LlmErrorKind::Refused, "The language model's content filter stopped it."))
        }
        Some(_) => true,
        None => false,
    };
    let usage = chunk["usage"].is_object().then(|| {
        let count = |name: &str| chunk["usage"][name].as_u64().unwrap_or(0);
        Usage {
            prompt_tokens: count("prompt_tokens"),
            output_tokens: count("completion_tokens"),
            total_tokens: count("total_tokens"),
        }
    });
    Ok(Piece {
        text: choice["delta"]["content"].as_str().unwrap_or_default().to_owned(),
        usage,
        model: chunk["model"].as_str().map(str::to_owned),
        done,
    })
}

fn answer(body: &Value, configured_model: &str) -> Result<LlmAnswer, LlmError> {
    let choice = &body["choices"][0];
    if let Some(refusal) = choice["message"]["refusal"].as_str() {
        return Err(LlmError::new(LlmErrorKind::Refused, format!("The language model refused: {refusal}")));
    }
    match choice["finish_reason"].as_str() {
        Some("length") => {
            return Err(LlmError::new(LlmErrorKind::BadResponse, "The language model's answer was cut off."))
        }
        Some("content_filter") => {
            return Err(LlmError::new(LlmErrorKind::Refused, "The language model's content filter stopped it."))
        }
        _ => {}
    }
    let text = choice["message"]["content"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return Err(LlmError::new(LlmErrorKind::BadResponse, "The language model gave an empty answer."));
    }
    let usage = &body["usage"];
    let count = |name: &str| usage[name].as_u64().unwrap_or(0);
    Ok(LlmAnswer {
        text: text.to_owned(),
        model: body["model"].as_str().unwrap_or(configured_model).to_owned(),
        usage: Usage {
            prompt_tokens: count("prompt_tokens"),
            output_tokens: count("completion_tokens"),
            total_tokens: count("total_tokens"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_chunks_become_pieces() {
        let chunk = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1763647200,"model":"llama3.1:8b","choices":[{"index":0,"delta":{"role":"assistant","content":"All"},"finish_reason":null}]}"#;
        assert_eq!(piece(chunk).expect("piece").text, "All");
        let last = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1763647200,"model":"llama3.1:8b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert!(piece(last).expect("piece").done);
        let usage = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1763647200,"model":"llama3.1:8b","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":5,"total_tokens":45}}"#;
        assert_eq!(piece(usage).expect("piece").usage.map(|u| u.output_tokens), Some(5));
        assert!(piece("[DONE]").expect("done").done);
        let error = r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","code":500}}"#;
        assert_eq!(piece(error).expect_err("error").kind, LlmErrorKind::Unreachable);
        assert_eq!(piece(&chunk.replace("null", "\"length\"")).expect_err("cut").kind, LlmErrorKind::BadResponse);
    }

    #[test]
    fn answers_and_refusals() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1763647200, "model": "llama3.1:8b",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"a\":1}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}
        });
        let answer = answer(&body, "llama3.1").expect("answer");
        assert_eq!((answer.text.as_str(), answer.model.as_str()), ("{\"a\":1}", "llama3.1:8b"));
        assert_eq!(answer.usage.total_tokens, 55);
        let refused = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
        assert_eq!(super::answer(&refused, "m").expect_err("refusal").kind, LlmErrorKind::Refused);
    }
}
