//! The other processes of a run: the framework baseline (a bare poem JSON endpoint), a
//! zero-latency Gemini and a zero-latency Orchestrator that speaks droplet 10's relay protocol.
//! Each runs as `bench <role> <port> [...]` in its own process, so `/proc` figures of our server
//! are its own.

use std::time::Duration;

use poem::listener::TcpListener;
use poem::web::{Data, Json};
use poem::{handler, post, EndpointExt, IntoResponse, Route, Server};
use serde_json::{json, Value};

/// The framework baseline: the smallest poem JSON endpoint, on the same runtime defaults.
pub async fn baseline(port: u16) -> anyhow::Result<()> {
    #[handler]
    fn hello() -> Json<Value> {
        Json(json!({"status": "ok", "service": "baseline"}))
    }
    let app = Route::new().at("/json", poem::get(hello));
    Server::new(TcpListener::bind(("127.0.0.1", port))).run(app).await?;
    Ok(())
}

/// Gemini answering every `generateContent` at once with a valid classification.
pub async fn fake_llm(port: u16) -> anyhow::Result<()> {
    #[handler]
    fn generate() -> Json<Value> {
        let classification =
            json!({"intents": ["list_registry"], "confidence": 0.9, "slots": [], "clarification": null}).to_string();
        Json(json!({
            "candidates": [{"content": {"parts": [{"text": classification}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 800, "candidatesTokenCount": 30, "totalTokenCount": 830},
            "modelVersion": "gemini-2.5-flash"
        }))
    }
    let app = Route::new()
        .at("/v1beta/models/*rest", post(generate))
        .at("/health", poem::get(poem::endpoint::make_sync(|_| "ok")));
    Server::new(TcpListener::bind(("127.0.0.1", port))).run(app).await?;
    Ok(())
}

#[derive(Clone)]
struct Relay {
    ours: String,
    http: reqwest::Client,
}

/// Droplet 10: `/send` returns a receipt at once and relays the target's answer to our
/// `/message` as a correlated `response` envelope; the directory routes just succeed.
pub async fn fake_orchestrator(port: u16, ours: String) -> anyhow::Result<()> {
    #[handler]
    fn send(Data(relay): Data<&Relay>) -> Json<Value> {
        let trace_id = uuid::Uuid::new_v4().to_string();
        let reply = json!({
            "udc_version": "1.0", "trace_id": uuid::Uuid::new_v4().to_string(), "source": "droplet-10",
            "target": "droplet-12", "message_type": "response", "timestamp": "2025-11-20T14:07:03.410222",
            "payload": {"in_reply_to": trace_id, "origin": "1", "data": [
                {"id": 1, "name": "Registry", "host": "drop1.example", "status": "active"},
                {"id": 2, "name": "Dashboard", "host": "drop2.example", "status": "active"},
                {"id": 14, "name": "Visibility Deck", "host": "drop14.example", "status": "active"}
            ]}
        });
        let (http, url) = (relay.http.clone(), format!("{}/message", relay.ours));
        tokio::spawn(async move {
            let _ = http.post(url).json(&reply).send().await;
        });
        Json(json!({"sent": true, "target_droplet": "Registry", "target_droplet_id": 1,
                    "message_delivered_at": "2025-11-20T14:07:01.882090", "trace_id": trace_id}))
    }
    #[handler]
    fn anything() -> impl IntoResponse {
        Json(json!({"status": "ok"}))
    }
    let relay = Relay { ours, http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()? };
    let app = Route::new().at("/send", post(send)).at("/*rest", anything).data(relay);
    Server::new(TcpListener::bind(("127.0.0.1", port))).run(app).await?;
    Ok(())
}
