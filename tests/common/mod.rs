//! Shared test harness: the shipped configuration and engines over it.
#![allow(dead_code)] // not every helper is used

pub mod keys;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_orchestrator::backend::{DropletBackend, DropletRequest, Outcome, SampleBackend};
use chat_orchestrator::config::{self, CompiledConfig, ConfigFiles};
use chat_orchestrator::engine::{Engine, Reply, Turn};
use chat_orchestrator::fixture::{Fault, FaultInjector};
use chat_orchestrator::session::{Channel, MemoryStore, SessionLimits};
use futures::future::BoxFuture;

/// The configuration in this repository, read from disk as the server reads it.
pub fn repo_files() -> ConfigFiles {
    ConfigFiles::from_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("repository configuration is readable")
}

/// The shipped configuration, compiled once for all the tests (it is immutable).
pub fn compiled() -> Arc<CompiledConfig> {
    static COMPILED: std::sync::OnceLock<Arc<CompiledConfig>> = std::sync::OnceLock::new();
    COMPILED
        .get_or_init(|| match config::load(&repo_files()) {
            Ok(compiled) => Arc::new(compiled),
            Err(error) => panic!("shipped configuration does not load:\n{}", error.render()),
        })
        .clone()
}

/// An engine and its session store, for tests that look at what was stored.
pub fn engine_and_store(
    config: Arc<CompiledConfig>,
    backend: Arc<dyn DropletBackend>,
    limits: SessionLimits,
) -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(limits));
    (Engine::new(config, backend, store.clone()), store)
}

pub fn engine_with(config: Arc<CompiledConfig>, faults: Vec<Fault>, limits: SessionLimits) -> Engine {
    engine_and_store(config, Arc::new(FaultInjector::new(faults)), limits).0
}

pub fn engine(faults: Vec<Fault>) -> Engine {
    engine_with(compiled(), faults, SessionLimits::default())
}

/// A droplet that is slow on one endpoint: it answers after `delay` (an hour: never, so the
/// engine's own timeout must end the call).
pub struct Slow {
    inner: SampleBackend,
    droplet: i64,
    endpoint: String,
    delay: Duration,
}

impl Slow {
    pub fn backend(droplet: i64, endpoint: &str, delay: Duration) -> Arc<dyn DropletBackend> {
        Arc::new(Slow { inner: SampleBackend, droplet, endpoint: endpoint.to_owned(), delay })
    }
}

/// A droplet that never answers one endpoint.
pub struct Hanging;

impl Hanging {
    pub fn backend(droplet: i64, endpoint: &str) -> Arc<dyn DropletBackend> {
        Slow::backend(droplet, endpoint, Duration::from_secs(3600))
    }
}

impl DropletBackend for Slow {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn call(&self, request: DropletRequest) -> BoxFuture<'_, Outcome> {
        if request.droplet_id == self.droplet && request.endpoint == self.endpoint {
            let delay = self.delay;
            let inner = self.inner.call(request);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                inner.await
            })
        } else {
            self.inner.call(request)
        }
    }
}

pub async fn say(engine: &Engine, session: &str, channel: Channel, text: &str) -> Reply {
    engine
        .handle(Turn {
            session_id: Some(session.to_owned()),
            channel,
            text: text.to_owned(),
            metadata: Default::default(),
            trace_id: "test-trace".to_owned(),
            preview_other_channel: false,
            owner: Default::default(),
            request_id: None,
            events: None,
        })
        .await
        .expect("the memory store never fails")
}

/// A server running in this process on 127.0.0.1, port 0, stopped when dropped.
pub struct Running {
    pub base: String,
    pub address: std::net::SocketAddr,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub async fn start(state: chat_orchestrator::api::AppState) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(chat_orchestrator::server::run(listener, state, async {
            let _ = stopped.await;
        }));
        Running {
            base: format!("http://{address}"),
            address,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A server over the shipped configuration with the bundled sample data.
    pub async fn default() -> Running {
        Running::start(chat_orchestrator::api::AppState::new(Arc::new(engine(vec![])), None, None)).await
    }

    /// Asks for a graceful shutdown without waiting for it.
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// `GET {base}{path}` and its JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.client.get(format!("{}{path}", self.base)).send().await.expect("request");
        response.json().await.expect("a JSON body")
    }

    /// `POST {base}{path}` with a JSON body, and the JSON answer, whatever the status.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let response = self.client.post(format!("{}{path}", self.base)).json(body).send().await.expect("request");
        response.json().await.expect("a JSON body")
    }

    /// Shuts down and waits until the server has stopped cleanly.
    pub async fn stop(mut self) {
        self.signal_shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the server stops in time")
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal_shutdown();
    }
}

/// The real binary serving on a free port; killed when dropped.
pub struct Process {
    pub child: std::process::Child,
    pub base: String,
    /// Every line the server logged so far.
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `chat-orchestrator serve` in the repository with these environment variables and
    /// waits for the address it logs.
    pub fn spawn(envs: &[(&str, &str)]) -> Process {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chat-orchestrator"));
        command
            .args(["serve"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("CONFIG_DIR")
            .env("PORT", "0")
            .env("NO_COLOR", "1")
            .env("LOG_LEVEL", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn the server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let address = loop {
            let line = lines.next().expect("the server logged its address").expect("line");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        };
        // keep draining the log so the server never blocks on a full pipe, and keep it
        let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Process { child, base: format!("http://{address}"), log }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves a fake peer (a poem endpoint) on 127.0.0.1, port 0, until the returned sender is
/// dropped. Returns its base URL.
pub async fn serve_fake(app: impl poem::Endpoint + 'static) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async move {
                    let _ = stopped.await;
                },
                Some(Duration::from_secs(1)),
            )
            .await
    });
    (base, stop)
}

/// A copy of the shipped configuration in a temporary folder, with `extra` folders (relative to
/// the repository) copied too, for tests that edit files.
pub fn config_copy_with(extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["pipelines", "templates", "catalogue"].iter().chain(extra) {
        copy_dir(&root.join(folder), &dir.path().join(folder));
    }
    std::fs::copy(root.join("udc_config.json"), dir.path().join("udc_config.json")).expect("copy");
    dir
}

pub fn config_copy() -> tempfile::TempDir {
    config_copy_with(&[])
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// An edit of a configuration copy that gives "bye" to `help` (a pattern, and a priority that
/// wins over `goodbye`'s): what a replay should report as a moved message.
pub fn give_bye_to_help(dir: &Path) {
    let help = dir.join("pipelines/help.yaml");
    let text = std::fs::read_to_string(&help)
        .expect("read")
        .replacen("match:\n  any:\n", "match:\n  any:\n    - '^bye$'\n", 1)
        .replacen("priority: 0", "priority: 100", 1);
    std::fs::write(&help, text).expect("write");
}

/// Snapshots named in full by their assertion, `<file>__<name>` (`conversations__chat@….snap`):
/// the names they had when each test file was a binary of its own, which `chat-orchestrator
/// test` reads. Without this insta would prefix the module path of the one test binary
/// (`integration__conversations__…`). Keep the guard for the assertions' scope.
pub fn snapshots_named_in_full() -> insta::internals::SettingsBindDropGuard {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.bind_to_scope()
}
