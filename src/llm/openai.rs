//! Any OpenAI-compatible chat-completions endpoint (Ollama, vLLM, llama.cpp server, OpenAI):
//! `POST {base}/chat/completions`, structured output through `response_format: {type:
//! json_schema, json_schema: {name, strict: true, schema}}`. The key, when there is one, goes
//! in `Authorization: Bearer`.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{exchange, Attempt, LanguageModel, LlmAnswer, LlmError, LlmErrorKind, LlmRequest, Speaker, Usage};

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
            http: reqwest::Client::new(),
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
        let mut body = json!({"model": self.model, "messages": messages, "temperature": 0});
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
