//! The HTTP surface, declared with poem-openapi so the OpenAPI document is generated from the
//! same types the handlers use. Handlers translate HTTP to engine turns and back; they hold no
//! conversation logic.

mod chat;
pub mod error;
pub mod limits;

use std::sync::Arc;

use poem_openapi::{OpenApiService, Tags};

pub use chat::{ChatApi, MAX_MESSAGE_CHARS};

use crate::engine::Engine;

#[derive(Tags)]
pub enum ApiTags {
    /// Talking to the assistant.
    Chat,
}

/// The documented API. `spec()` on it prints the OpenAPI document without serving.
pub fn service(engine: Arc<Engine>) -> OpenApiService<ChatApi, ()> {
    OpenApiService::new(ChatApi { engine }, "Chat Orchestrator (droplet 12)", env!("CARGO_PKG_VERSION")).description(
        "A declarative conversation engine: stewards describe each intent as a YAML pipeline \
             and write replies as templates; this API runs them.",
    )
}
