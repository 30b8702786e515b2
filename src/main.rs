//! The `chat-orchestrator` binary: read settings, load and check the configuration, serve.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chat_orchestrator::backend::SampleBackend;
use chat_orchestrator::config::{self, ConfigFiles};
use chat_orchestrator::engine::Engine;
use chat_orchestrator::session::MemoryStore;
use chat_orchestrator::settings::Settings;

#[tokio::main]
async fn main() {
    // start-up errors are for operators: one plain line, no backtrace
    if let Err(error) = serve().await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&settings.log_level)
                .context("LOG_LEVEL is not a valid log filter")?,
        )
        .init();

    let files = match &settings.config_dir {
        Some(dir) => ConfigFiles::from_dir(dir)?,
        None if Path::new("pipelines").is_dir() => ConfigFiles::from_dir(Path::new("."))?,
        None => ConfigFiles::embedded(),
    };
    let compiled = match config::load(&files) {
        Ok(compiled) => compiled,
        Err(error) => {
            eprintln!("{}", error.render());
            eprintln!("the configuration in {} has problems; the server did not start", files.origin);
            std::process::exit(1);
        }
    };
    tracing::info!(origin = %compiled.origin, pipelines = compiled.pipelines.len(), droplets = compiled.catalogue.droplets.len(), "configuration loaded");

    tracing::warn!(
        backend = SampleBackend::NAME,
        "no Orchestrator configured: droplet answers come from the bundled sample data"
    );
    let sessions = Arc::new(MemoryStore::new(settings.sessions));
    sessions.spawn_sweeper(Duration::from_secs(60));
    let engine = Arc::new(Engine::new(Arc::new(compiled), SampleBackend::factory(), sessions));

    let address = (settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {}:{} (set HOST/PORT to change it)", settings.host, settings.port)
    })?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local} (API docs at http://{local}/docs)");
    chat_orchestrator::server::run(listener, engine, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
