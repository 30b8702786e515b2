//! The command line: one binary, one subcommand per file (`serve` is the default).
//!
//! Every subcommand that reads the configuration resolves it the same way as the server, so
//! `check`, `test`, `explain` and `chat` see exactly what `serve` would run.

mod against;
mod chat;
mod check;
mod explain;
mod openapi;
mod probe;
mod record;
mod serve;
mod test;
mod triage;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, CompiledConfig, ConfigFiles};

#[derive(Debug, Parser)]
#[command(
    name = "chat-orchestrator",
    version,
    about = "Chat Orchestrator (droplet 12): a declarative conversation engine"
)]
pub struct Cli {
    /// Folder holding pipelines/, templates/, catalogue/ and udc_config.json [default: CONFIG_DIR,
    /// else the current directory when it has pipelines/, else the copy built into the binary]
    #[arg(long, global = true, value_name = "DIR")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default). Settings come from environment variables.
    Serve,
    /// Check pipelines, templates, catalogue and udc_config.json; exit code 1 on any problem.
    Check {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run every pipeline's tests and the conversation fixtures; show each reply that changed.
    /// With --utterances FILE: how well a corpus of messages is understood instead.
    Test {
        /// Write the new transcripts (or utterance results) as the accepted snapshots (read the
        /// diffs first). With names (`--accept register_service droplet_status:voice`), only
        /// those conversation fixtures (a `:chat` or `:voice` suffix picks one channel).
        /// Pipeline `tests:` lines are never rewritten: edit them in the pipeline file.
        #[arg(long, num_args = 0.., value_name = "NAME")]
        accept: Option<Vec<String>>,
        /// An utterance corpus (YAML list of `say`, `intent` or `intents`, `slots`): print the
        /// accuracy, a per-intent table, and the messages understood differently since the last
        /// accepted run.
        #[arg(long, value_name = "FILE")]
        utterances: Option<PathBuf>,
        /// List what no test reaches: intents, steps, `when:` branches, templates and call
        /// outcomes (data, dispatched, failed), each with its file and line.
        #[arg(long, conflicts_with = "utterances")]
        coverage: bool,
        /// Instead of the tests: replay real traffic on this configuration and on another (a
        /// folder, or a git ref of this checkout such as HEAD or main), no droplet called, and
        /// say which messages pick another intent and which replies change.
        #[arg(long, value_name = "DIR|GIT_REF", conflicts_with_all = ["utterances", "coverage", "accept"])]
        against: Option<String>,
        /// With --against: the recorded turns of a running server (GET /api/admin/recorded,
        /// with ADMIN_TOKEN), e.g. http://127.0.0.1:8012
        #[arg(long, requires = "against", conflicts_with = "turns")]
        url: Option<String>,
        /// With --against: a saved GET /api/admin/recorded answer.
        #[arg(long, value_name = "FILE", requires = "against")]
        turns: Option<PathBuf>,
        /// The server's admin token, with --url [default: $ADMIN_TOKEN]
        #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Talk to the assistant in the terminal: the embedded engine, or a running server.
    Chat {
        /// Base URL of a running server, e.g. http://127.0.0.1:8012
        #[arg(long)]
        url: Option<String>,
        /// Start on the voice channel (plain speech replies).
        #[arg(long)]
        voice: bool,
    },
    /// Show how a message is taken, as a turn: which intent answers and why (or why the fallback
    /// does), how an answer to a waiting question was read, where each slot value came from, and
    /// the steps that run. Runs on the bundled sample data: nothing leaves this machine.
    Explain {
        /// The message, as a user would type it.
        message: String,
        /// An earlier message of the same conversation, said before it (repeat for several, in
        /// order): `explain --after "remove service 5" "yes no"`.
        #[arg(long = "after", value_name = "MESSAGE")]
        after: Vec<String>,
        /// Take the conversation on the voice channel.
        #[arg(long)]
        voice: bool,
    },
    /// Walk through the messages the assistant did not understand well and add a chosen one as
    /// an example of an intent (in its pipeline file, comments kept), checking after each.
    Triage {
        /// Base URL of a running server (its GET /api/admin/missed), e.g. http://127.0.0.1:8012
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        url: Option<String>,
        /// The server's admin token [default: $ADMIN_TOKEN]
        #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A saved GET /api/admin/missed answer instead of a server.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Turn a conversation a running server had into a conversation fixture that pins the
    /// droplet answers it got (tests/fixtures/conversations/NAME.yaml).
    Record {
        /// The conversation's session id.
        session: String,
        /// Base URL of the running server, e.g. http://127.0.0.1:8012
        #[arg(long)]
        url: String,
        /// The server's admin token [default: $ADMIN_TOKEN]
        #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The fixture's file name, without .yaml [default: recorded_SESSION]
        #[arg(long)]
        name: Option<String>,
    },
    /// What each droplet endpoint answers: its fields, their types, whether every answer has
    /// them (the table in STEWARDS.md, "What a query gives you").
    Answers,
    /// Print the OpenAPI document without starting the server.
    Openapi,
    /// Ask a running server's /health; exit 0 only when it is `active` (container health checks).
    Probe {
        /// The health URL [default: http://127.0.0.1:$PORT/health]
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_dir = cli.config.or_else(|| std::env::var_os("CONFIG_DIR").filter(|v| !v.is_empty()).map(PathBuf::from));
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(config_dir).await,
        Command::Check { format } => check::run(config_dir, format),
        Command::Test { accept, utterances: Some(file), .. } => {
            test::utterances(config_dir, &file, accept.is_some()).await
        }
        Command::Test { against: Some(against), url, turns, token, .. } => {
            let traffic = match (url, turns) {
                (_, Some(file)) => against::Traffic::File(file),
                (Some(url), None) => against::Traffic::Server { url, token: admin_token(token)? },
                (None, None) => {
                    anyhow::bail!("--against replays real traffic: give --url URL (a running server) or --turns FILE")
                }
            };
            against::run(config_dir, &against, traffic).await
        }
        Command::Test { accept, utterances: None, coverage, .. } => {
            test::run(config_dir, Accept::from(accept), coverage).await
        }
        Command::Chat { url, voice } => chat::run(config_dir, url, voice).await,
        Command::Explain { message, after, voice } => explain::run(config_dir, &after, &message, voice).await,
        Command::Answers => explain::answers(config_dir),
        Command::Record { session, url, token, name } => {
            let token = admin_token(token)?;
            record::run(config_dir, &session, &url, &token, name).await
        }
        Command::Triage { url, token, file } => {
            let source = match (url, file) {
                (_, Some(file)) => triage::Source::File(file),
                (Some(url), None) => triage::Source::Server { url, token: admin_token(token)? },
                (None, None) => anyhow::bail!("give --url URL (a running server) or --file FILE (a saved report)"),
            };
            triage::run(config_dir, source).await
        }
        Command::Openapi => openapi::run(),
        Command::Probe { url } => probe::run(url).await,
    }
}

/// Which changed conversation snapshots `test` writes as accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    None,
    All,
    /// Fixture names (`register_service`, `register_service.yaml`), or one channel of one
    /// (`register_service:voice`).
    Only(Vec<String>),
}

impl From<Option<Vec<String>>> for Accept {
    fn from(written: Option<Vec<String>>) -> Self {
        match written {
            None => Accept::None,
            Some(names) if names.is_empty() => Accept::All,
            Some(names) => Accept::Only(names),
        }
    }
}

impl Accept {
    /// Whether the snapshot of `fixture` (a file name) on `channel` is to be accepted.
    pub fn covers(&self, fixture: &str, channel: &str) -> bool {
        let stem = fixture.trim_end_matches(".yaml");
        match self {
            Accept::None => false,
            Accept::All => true,
            Accept::Only(names) => names.iter().any(|name| {
                let (name, only) = Accept::split(name);
                name == stem && only.is_none_or(|c| c == channel)
            }),
        }
    }

    /// `register_service.yaml:voice` → (`register_service`, Some(`voice`)).
    pub fn split(name: &str) -> (&str, Option<&str>) {
        let (name, channel) = match name.rsplit_once(':') {
            Some((name, channel)) => (name, Some(channel)),
            None => (name, None),
        };
        (name.trim_end_matches(".yaml"), channel)
    }
}

/// The admin token a subcommand talking to a running server needs.
fn admin_token(token: Option<String>) -> anyhow::Result<String> {
    token.ok_or_else(|| anyhow::anyhow!("--url needs the admin token: --token or ADMIN_TOKEN"))
}

/// `GET {url}{path}` of a running server's admin API: its JSON, or its error in one line.
async fn admin_get(url: &str, path: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let endpoint = format!("{}{path}", url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .get(&endpoint)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let body: serde_json::Value =
        response.json().await.with_context(|| format!("{endpoint} did not answer with JSON"))?;
    if !status.is_success() {
        let why = body.pointer("/error/message").and_then(serde_json::Value::as_str).unwrap_or("no reason given");
        anyhow::bail!("{endpoint} answered {status}: {why}");
    }
    Ok(body)
}

/// Where the configuration comes from, and its root folder when it is on disk.
pub fn config_files(config_dir: Option<&Path>) -> anyhow::Result<(ConfigFiles, Option<PathBuf>)> {
    Ok(match config_dir {
        Some(dir) => (ConfigFiles::from_dir(dir)?, Some(dir.to_path_buf())),
        None if Path::new("pipelines").is_dir() => (ConfigFiles::from_dir(Path::new("."))?, Some(PathBuf::from("."))),
        None => (ConfigFiles::embedded(), None),
    })
}

/// Loads the configuration, or prints every problem and says the command cannot go on.
pub fn load_or_report(files: &ConfigFiles) -> Option<CompiledConfig> {
    match config::load(files) {
        Ok(compiled) => Some(compiled),
        Err(error) => {
            eprintln!("{}", error.render());
            eprintln!(
                "the configuration in {} has problems; fix them first (`chat-orchestrator check` lists them)",
                files.origin
            );
            None
        }
    }
}
