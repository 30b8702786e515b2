//! Hot reload: rebuild the configuration off the request path and swap it in only if it is
//! valid.
//!
//! Three triggers — a debounced file watcher, SIGHUP and `POST /api/admin/reload` — all call
//! [`Reloader::reload`]. It reads the files, compiles them on a blocking thread, and hands the
//! result to `Engine::install` only when there is not a single problem; otherwise the running
//! configuration stays and the problems are kept for `GET /api/admin/config`. Reloads run one at
//! a time, so an older build can never replace a newer one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Serialize;

use crate::config::{self, ConfigFiles, CONFIG_FOLDERS, UDC_CONFIG_FILE};
use crate::diagnostic::Diagnostic;
use crate::engine::Engine;
use crate::util::utc_timestamp;

/// How long the watcher waits for a burst of file events (an editor's save) to settle.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What one reload attempt did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// RFC 3339 UTC.
    pub at: String,
    /// `watcher`, `sighup` or `admin`.
    pub trigger: String,
    /// Whether the new configuration went live.
    pub ok: bool,
    /// The version that went live, when it did.
    pub version: Option<u64>,
    /// Every problem found, when it did not.
    pub problems: Vec<Diagnostic>,
    /// The problems rendered with source snippets, as `check` prints them.
    pub report: Option<String>,
    /// What the new configuration does to the recorded turns (replayed on it, no droplet
    /// called), when it loaded.
    pub changes: Option<crate::replay::ChangeReport>,
    /// Only tried: nothing was installed.
    pub dry_run: bool,
}

/// How a reload goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadOptions {
    /// Build and replay, install nothing.
    pub dry_run: bool,
    /// Install even when more messages change intent than `RELOAD_MAX_INTENT_CHANGES` allows.
    pub force: bool,
}

/// The reload history shown by `GET /api/admin/config`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadState {
    /// The running configuration version (1 at start-up).
    pub version: u64,
    /// Where the configuration is read from.
    pub origin: String,
    /// When the running version went live.
    pub loaded_at: String,
    pub reloads_succeeded: u64,
    pub reloads_failed: u64,
    pub last_attempt: Option<Attempt>,
    /// The last `dry_run` try, with what it would change.
    pub last_dry_run: Option<Attempt>,
}

pub struct Reloader {
    engine: Arc<Engine>,
    /// `None`: the embedded copy, which cannot change while running.
    root: Option<PathBuf>,
    state: Mutex<ReloadState>,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    /// `RELOAD_MAX_INTENT_CHANGES`: a reload that makes more recorded messages pick another
    /// intent is refused unless forced.
    max_intent_changes: Option<usize>,
}

impl Reloader {
    pub fn new(engine: Arc<Engine>, root: Option<PathBuf>) -> Self {
        let runtime = engine.runtime();
        let state = ReloadState {
            version: runtime.version,
            origin: runtime.config.origin.clone(),
            loaded_at: utc_timestamp(),
            reloads_succeeded: 0,
            reloads_failed: 0,
            last_attempt: None,
            last_dry_run: None,
        };
        Reloader {
            engine,
            root,
            state: Mutex::new(state),
            running: tokio::sync::Mutex::new(()),
            max_intent_changes: None,
        }
    }

    /// Refuses (unless forced) a reload making more than `limit` recorded messages pick another
    /// intent.
    pub fn with_max_intent_changes(mut self, limit: Option<usize>) -> Self {
        self.max_intent_changes = limit;
        self
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn state(&self) -> ReloadState {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Rebuilds and, if valid, installs the configuration. Returns what happened.
    pub async fn reload(&self, trigger: &str) -> Attempt {
        self.reload_with(trigger, ReloadOptions::default()).await
    }

    /// [`reload`](Reloader::reload), or only a try (`dry_run`), or past the change limit (`force`).
    pub async fn reload_with(&self, trigger: &str, options: ReloadOptions) -> Attempt {
        let _one_at_a_time = self.running.lock().await;
        let root = self.root.clone();
        let built = tokio::task::spawn_blocking(move || {
            let files = match &root {
                Some(root) => ConfigFiles::from_dir(root).map_err(|e| (Vec::new(), e.to_string()))?,
                None => ConfigFiles::embedded(),
            };
            config::load(&files).map_err(|error| (error.diagnostics.0.clone(), error.render()))
        })
        .await
        .unwrap_or_else(|join_error| Err((Vec::new(), format!("the rebuild stopped unexpectedly: {join_error}"))));

        let attempt = match built {
            Ok(compiled) => {
                let compiled = Arc::new(compiled);
                // what it does to real traffic, before it goes live
                let recorded = self.engine.sessions().recorded().await.unwrap_or_else(|error| {
                    tracing::warn!(error = %error, "the recorded turns could not be read: the reload is not replayed");
                    Vec::new()
                });
                let changes = crate::replay::replay(compiled.clone(), &recorded).await;
                let over_limit = self.max_intent_changes.filter(|limit| changes.intents_changed > *limit);
                let mut attempt = Attempt {
                    at: utc_timestamp(),
                    trigger: trigger.to_owned(),
                    ok: true,
                    version: None,
                    problems: vec![],
                    report: None,
                    changes: Some(changes.clone()),
                    dry_run: options.dry_run,
                };
                match over_limit {
                    _ if options.dry_run => {
                        tracing::info!(trigger, changes = %changes.summary(), "configuration tried, not installed (dry run)");
                    }
                    Some(limit) if !options.force => {
                        let refused = format!(
                            "not installed: {}; RELOAD_MAX_INTENT_CHANGES allows {limit} (reload with force to install anyway)",
                            changes.summary()
                        );
                        tracing::warn!(trigger, "{refused}");
                        attempt.ok = false;
                        attempt.report = Some(refused);
                    }
                    _ => {
                        let version = self.engine.install(compiled);
                        tracing::info!(trigger, version, changes = %changes.summary(), "configuration reloaded");
                        attempt.version = Some(version);
                    }
                }
                attempt
            }
            Err((problems, report)) => {
                tracing::error!(
                    trigger,
                    problems = problems.len(),
                    "configuration not reloaded; the running one stays\n{report}"
                );
                Attempt {
                    at: utc_timestamp(),
                    trigger: trigger.to_owned(),
                    ok: false,
                    version: None,
                    problems,
                    report: Some(report),
                    changes: None,
                    dry_run: options.dry_run,
                }
            }
        };
        if attempt.dry_run {
            // a try changes neither the running version nor the reload history
            self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).last_dry_run = Some(attempt.clone());
            return attempt;
        }
        let outcome = if attempt.ok { "installed" } else { "rejected" };
        metrics::counter!("config_reloads_total", "outcome" => outcome).increment(1);
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(version) = attempt.version {
            state.version = version;
            state.loaded_at = attempt.at.clone();
            state.reloads_succeeded += 1;
        } else {
            state.reloads_failed += 1;
        }
        state.last_attempt = Some(attempt.clone());
        attempt
    }

    /// Reloads on SIGHUP until the process ends (Unix only).
    pub fn spawn_sighup(self: &Arc<Self>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        {
            let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let reloader = self.clone();
            Ok(tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    reloader.reload("sighup").await;
                }
            }))
        }
        #[cfg(not(unix))]
        {
            Ok(tokio::spawn(async {}))
        }
    }

    /// Watches the configuration folders and reloads after each burst of changes. The returned
    /// watcher stops watching when dropped.
    pub fn spawn_watcher(self: &Arc<Self>) -> notify::Result<Option<notify::RecommendedWatcher>> {
        let Some(root) = self.root.clone() else { return Ok(None) };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // reading a file is an event too: ignoring access keeps a reload from triggering
            // the next one
            if let Ok(event) = event {
                if !matches!(event.kind, EventKind::Access(_)) && event.paths.iter().any(|p| is_config_path(p)) {
                    let _ = tx.send(());
                }
            }
        })?;
        for folder in CONFIG_FOLDERS {
            let path = root.join(folder);
            if path.is_dir() {
                watcher.watch(&path, RecursiveMode::Recursive)?;
            }
        }
        let udc_config = root.join(UDC_CONFIG_FILE);
        if udc_config.is_file() {
            watcher.watch(&udc_config, RecursiveMode::NonRecursive)?;
        }
        let reloader = self.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // let the burst settle, then drain what arrived meanwhile: one reload per save
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                reloader.reload("watcher").await;
            }
        });
        Ok(Some(watcher))
    }
}

/// Editors write swap and backup files next to the real ones; only configuration files count.
fn is_config_path(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let hidden_or_backup = name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp");
    !hidden_or_backup
        && (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".j2") || name.ends_with(".json"))
}
