//! `openapi`: print the OpenAPI document the server would serve at `/openapi.json`.

use std::process::ExitCode;
use std::sync::Arc;

use crate::backend::SampleBackend;
use crate::config::{self, ConfigFiles};
use crate::engine::Engine;
use crate::session::{MemoryStore, SessionLimits};

pub fn run() -> anyhow::Result<ExitCode> {
    // The document depends on the code only; the embedded configuration just fills the engine
    // the service needs to exist.
    let compiled = config::load(&ConfigFiles::embedded()).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    let sessions = Arc::new(MemoryStore::new(SessionLimits::default()));
    let engine = Arc::new(Engine::new(Arc::new(compiled), Arc::new(SampleBackend), sessions));
    println!("{}", crate::api::service(&crate::api::AppState::new(engine, None, None)).spec());
    Ok(ExitCode::SUCCESS)
}
