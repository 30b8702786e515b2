//! `serve`: load, check and run the HTTP server until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::api::rate_limit::RateLimits;
use crate::api::udc::{Deployment, Health};
use crate::api::AppState;
use crate::auth::{load_public_key, Verifier};
use crate::backend::DropletBackend;
use crate::backend::SampleBackend;
use crate::credentials::{OrchestratorCredentials, RegistryCredentials};
use crate::engine::Engine;
use crate::lifecycle::{Lifecycle, LifecycleConfig};
use crate::llm::gemini::Gemini;
use crate::llm::openai::OpenAiCompatible;
use crate::llm::{LanguageModel, Llm};
use crate::mesh::{MeshSetup, OrchestratorClient, OrchestratorConfig, Waiters};
use crate::reload::Reloader;
use crate::session::{MemoryStore, RedisStore, SessionStore};
use crate::settings::{LlmSettings, Settings};

pub async fn run(config_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    let filter =
        tracing_subscriber::EnvFilter::try_new(&settings.log_level).context("LOG_LEVEL is not a valid log filter")?;
    let json = match settings.log_format.as_deref() {
        Some("json") => true,
        Some(_) => false,
        // one JSON object per line for log collectors; readable text on a terminal
        None => !std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    if json {
        tracing_subscriber::fmt().json().flatten_event(true).with_current_span(false).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let (files, root) = super::config_files(config_dir.as_deref())?;
    let Some(compiled) = super::load_or_report(&files) else {
        eprintln!("the server did not start");
        return Ok(ExitCode::FAILURE);
    };
    tracing::info!(
        origin = %compiled.origin,
        pipelines = compiled.pipelines.len(),
        droplets = compiled.catalogue.droplets.len(),
        "configuration loaded"
    );
    let waiters = Arc::new(Waiters::default());
    let credentials = Arc::new(orchestrator_credentials(&settings, &compiled.identity)?);
    let registry_credentials = settings.registry_url.as_ref().map(|url| {
        Arc::new(RegistryCredentials::new(
            url,
            compiled.identity.id,
            settings.droplet_secret.clone(),
            settings.registry_timeout,
        ))
    });
    let orchestrator = settings.orchestrator_url.as_ref().map(|url| {
        OrchestratorClient::new(OrchestratorConfig {
            base_url: url.clone(),
            credentials: credentials.clone(),
            our_id: compiled.identity.id,
            reply_timeout: settings.mesh_reply_timeout,
            timeout: settings.orchestrator_timeout,
        })
    });
    let backend: Arc<dyn DropletBackend> = match &orchestrator {
        Some(client) => {
            tracing::info!(
                orchestrator = %client.config().base_url,
                mode = settings.mesh_mode.as_str(),
                "droplet queries go through the mesh (droplet 10's own questions natively)"
            );
            let router = MeshSetup {
                client: client.clone(),
                waiters: waiters.clone(),
                mode: settings.mesh_mode,
                target_modes: settings.mesh_target_modes.clone(),
                proxy_url: settings.proxy_url.clone(),
                direct_urls: settings.direct_urls.clone(),
                registry: registry_credentials.clone(),
            }
            .into_router();
            Arc::new(router)
        }
        None => {
            tracing::warn!(
                backend = SampleBackend::NAME,
                "no Orchestrator configured: droplet answers come from the bundled sample data"
            );
            Arc::new(SampleBackend)
        }
    };
    let sessions: Arc<dyn SessionStore> = match &settings.redis_url {
        Some(url) => {
            let store = RedisStore::connect(url, &settings.redis_prefix, settings.sessions)?;
            tracing::info!(prefix = %settings.redis_prefix, "sessions are kept in Redis");
            Arc::new(store)
        }
        None => {
            let store = Arc::new(MemoryStore::new(settings.sessions));
            store.spawn_sweeper(Duration::from_secs(60));
            tracing::info!("sessions are kept in memory (set REDIS_URL to share them between replicas)");
            store
        }
    };
    let identity = compiled.identity.clone();
    let mut engine = Engine::new(Arc::new(compiled), backend, sessions).with_progress_after(settings.progress_after);
    match language_model(&settings) {
        Some(llm) => {
            tracing::info!(
                provider = llm.provider(),
                model = llm.model(),
                "messages no rule matches are classified by the language model"
            );
            engine = engine.with_llm(Arc::new(llm));
        }
        None => tracing::info!("no language model configured (GEMINI_API_KEY or OPENAI_BASE_URL): rules answer alone"),
    }
    let engine = Arc::new(engine);

    let verifier = verifier(&settings)?;
    let mut warnings = Vec::new();
    if verifier.is_open() {
        let warning = "authentication is OFF: REGISTRY_PUBLIC_KEY is not set, so every endpoint but /message accepts requests without a token (development only)";
        tracing::warn!("{warning}");
        warnings.push(warning.to_owned());
    }
    let mut state = AppState::new(engine.clone(), root.clone(), settings.admin_token.clone());
    state.reloader =
        Arc::new(Reloader::new(engine.clone(), root).with_max_intent_changes(settings.reload_max_intent_changes));
    state.rate_limits = RateLimits::new(settings.rate_limit_chat, settings.rate_limit_websocket)
        .with_process(settings.rate_limit_process);
    state.verifier = Arc::new(verifier);
    state.relay_allow = Arc::from(settings.mesh_relay_allow.clone());
    state.connection_limits = settings.connections;
    state.health = Arc::new(Health::new(warnings));
    state.waiters = waiters;
    state.metrics_token = settings.metrics_token.as_deref().map(std::sync::Arc::from);
    if let Some(client) = &orchestrator {
        state.health.spawn_orchestrator_probe(client.config().base_url.clone(), Duration::from_secs(30));
    }
    state.orchestrator = orchestrator;
    state.deployment =
        Deployment { environment: settings.environment.clone(), deployed_by: settings.deployed_by.clone() };
    state.health.spawn_store_check(engine, Duration::from_secs(10));
    state.stats.spawn_cpu_sampler(Duration::from_secs(5));
    state.reloader.spawn_sighup().context("cannot listen for SIGHUP")?;
    // kept alive for as long as the server runs; dropping it stops watching
    let _watcher = if settings.config_watch {
        state.reloader.spawn_watcher().context("cannot watch the configuration folders")?
    } else {
        None
    };
    if settings.admin_token.is_none() {
        tracing::info!("admin endpoints are switched off (set ADMIN_TOKEN to enable /api/admin/*)");
    }

    let listener = tokio::net::TcpListener::bind((settings.host, settings.port)).await.with_context(|| {
        format!("cannot listen on {}:{} (set HOST/PORT to change it)", settings.host, settings.port)
    })?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local} (API docs at http://{local}/docs)");
    let lifecycle = Lifecycle::new(
        LifecycleConfig {
            registry_credentials,
            orchestrator_url: settings.orchestrator_url.clone(),
            orchestrator_credentials: credentials,
            identity,
            registry_heartbeat: Duration::from_secs(30),
            orchestrator_heartbeat: Duration::from_secs(60),
            backoff: Duration::from_secs(5),
            registry_timeout: settings.registry_timeout,
            orchestrator_timeout: settings.orchestrator_timeout,
        },
        state.stats.clone(),
    );
    lifecycle.spawn();
    if settings.registry_url.is_some() || settings.orchestrator_url.is_some() {
        state.lifecycle = Some(lifecycle.clone());
    }
    if let Some(url) = &settings.registry_url {
        state.health.spawn_registry_probe(url.clone(), Duration::from_secs(30));
    }
    crate::server::run(listener, state, shutdown_signal()).await?;
    lifecycle.leave().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// How to get tokens for droplet 10: a static token, a minted one, or a fetched one.
fn orchestrator_credentials(
    settings: &Settings,
    identity: &crate::identity::Identity,
) -> anyhow::Result<OrchestratorCredentials> {
    Ok(
        match (
            &settings.orchestrator_token,
            &settings.orchestrator_private_key,
            &settings.orchestrator_secret,
            &settings.orchestrator_url,
        ) {
            (Some(token), _, _, _) => OrchestratorCredentials::Static(token.clone()),
            (None, Some(key), _, _) => OrchestratorCredentials::mint(key, identity.id, &identity.steward)?,
            (None, None, Some(secret), Some(url)) => {
                OrchestratorCredentials::fetch(url, identity.id, secret, settings.orchestrator_timeout)
            }
            _ => OrchestratorCredentials::None,
        },
    )
}

/// The language model the settings ask for, if any.
fn language_model(settings: &Settings) -> Option<Llm> {
    let (model, timeout): (Arc<dyn LanguageModel>, Duration) = match settings.llm.as_ref()? {
        LlmSettings::Gemini { api_key, model, base_url, timeout } => {
            (Arc::new(Gemini::new(base_url, api_key, model)), *timeout)
        }
        LlmSettings::OpenAi { base_url, api_key, model, timeout } => {
            (Arc::new(OpenAiCompatible::new(base_url, api_key.as_deref(), model)), *timeout)
        }
    };
    Some(Llm::new(model, timeout, settings.llm_max_retries, settings.llm_min_confidence))
}

/// The token verifier the settings ask for; production without a Registry key is refused.
fn verifier(settings: &Settings) -> anyhow::Result<Verifier> {
    let Some(registry_key) = &settings.registry_public_key else {
        anyhow::ensure!(
            settings.environment != "production",
            "ENVIRONMENT=production needs REGISTRY_PUBLIC_KEY (the Registry's RSA public key: PEM text or a file path); refusing to start open"
        );
        return Ok(Verifier::Open);
    };
    let registry = load_public_key("REGISTRY_PUBLIC_KEY", registry_key)?;
    let orchestrator = settings
        .orchestrator_public_key
        .as_deref()
        .map(|key| load_public_key("ORCHESTRATOR_PUBLIC_KEY", key))
        .transpose()?;
    Ok(Verifier::Keys {
        registry,
        orchestrator,
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
        max_lifetime: settings.jwt_max_lifetime,
    })
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
