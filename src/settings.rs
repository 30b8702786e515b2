//! Settings from environment variables, with the names of the seed's deployment so existing
//! `.env` files carry over. Every variable is optional; a bad value is a start-up error that
//! names the variable and what it should look like.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::mesh::MeshMode;
use crate::session::{MissedLimits, SessionLimits};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `HOST`, default 127.0.0.1.
    pub host: IpAddr,
    /// `PORT`, default 8012.
    pub port: u16,
    /// `SESSION_MAX_HISTORY` (10) and `SESSION_TIMEOUT_MINUTES` (30); `MISSED_MESSAGES_KEPT`
    /// (1000) and `MISSED_MESSAGES_DAYS` (30) bound the messages kept for stewards to review.
    pub sessions: SessionLimits,
    /// `LOG_LEVEL`, default `info` (any tracing filter, e.g. `debug,poem=info`).
    pub log_level: String,
    /// `LOG_FORMAT`: `json` (one object per line, with `trace_id`, `session`, `intent` on turn
    /// events) or `text`; unset: text on a terminal, JSON otherwise.
    pub log_format: Option<String>,
    /// `ADMIN_TOKEN`: bearer token for `/api/admin/*`; unset switches those endpoints off.
    pub admin_token: Option<String>,
    /// `RELOAD_MAX_INTENT_CHANGES`: a reload making more recorded messages pick another intent
    /// is refused unless forced; unset: no limit.
    pub reload_max_intent_changes: Option<usize>,
    /// `METRICS_TOKEN`: a static bearer token for `/metrics` (Prometheus cannot renew JWTs).
    pub metrics_token: Option<String>,
    /// `CONFIG_WATCH` (default true): reload when files in the configuration folder change.
    pub config_watch: bool,
    /// `REDIS_URL`: keep sessions in Redis so replicas share conversations; unset keeps them in
    /// this process's memory.
    pub redis_url: Option<String>,
    /// `REDIS_PREFIX` (default `chat-orchestrator:`): prefix of every key this service writes.
    pub redis_prefix: String,
    /// `RATE_LIMIT_CHAT` (100) and `RATE_LIMIT_WEBSOCKET` (200): turns per minute per client
    /// IP; 0 switches a limit off.
    pub rate_limit_chat: u32,
    pub rate_limit_websocket: u32,
    /// `RATE_LIMIT_PROCESS` (50): envelopes per minute per client IP on `/api/process`.
    pub rate_limit_process: u32,
    /// `MESH_RELAY_ALLOW`: addresses (`10.0.0.10`, `10.0.0.0/24`) whose `/message` envelopes are
    /// taken without a token once a Registry key is set. Droplet 10 relays with no Authorization
    /// header (MESH.md §3), so a mesh puts its Orchestrator's address here; empty by default, so
    /// a secured service takes only verified relays.
    pub mesh_relay_allow: Vec<ipnet::IpNet>,
    /// `HEADER_READ_TIMEOUT`, `BODY_READ_TIMEOUT`, `IDLE_TIMEOUT`, `WRITE_TIMEOUT` (seconds) and `MAX_CONNECTIONS` (default: what
    /// the open-files limit allows, less room for everything else).
    pub connections: crate::connections::ConnectionLimits,
    /// `REGISTRY_PUBLIC_KEY`: PEM text, PEM with `\n` escapes, or a path. Without it the mesh
    /// endpoints are open (refused in production).
    pub registry_public_key: Option<String>,
    /// `ORCHESTRATOR_PUBLIC_KEY`: optional second anchor for Orchestrator-signed tokens.
    pub orchestrator_public_key: Option<String>,
    /// `JWT_ISSUER` (registry.fullpotential.ai) and `JWT_AUDIENCE` (fullpotential.droplets).
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// `JWT_MAX_LIFETIME` (`24h`, `90m`, `3600s` or seconds): tokens meant to live longer, from
    /// `iat` (or now) to `exp`, are refused.
    pub jwt_max_lifetime: Duration,
    /// `ENVIRONMENT`: `development` (default), `staging` or `production`.
    pub environment: String,
    /// `DEPLOYED_BY`, shown by `/version`.
    pub deployed_by: String,
    /// `ORCHESTRATOR_URL`: droplet 10's base URL. Unset: droplet answers come from the bundled
    /// sample data (the embedded default).
    pub orchestrator_url: Option<String>,
    /// `REGISTRY_URL`: where to register and heartbeat (Registry v2); unset: not registered.
    pub registry_url: Option<String>,
    /// `DROPLET_SECRET`: the key the Registry steward issued, sent as `X-Registry-Key`.
    pub droplet_secret: Option<String>,
    /// Credentials for droplet 10, first that is set wins: `ORCHESTRATOR_TOKEN` (a static
    /// token), `ORCHESTRATOR_PRIVATE_KEY` (mint our own, RS256), `ORCHESTRATOR_SECRET` (fetch
    /// from its `/auth/token`).
    pub orchestrator_token: Option<String>,
    pub orchestrator_private_key: Option<String>,
    pub orchestrator_secret: Option<String>,
    /// `MESH_REPLY_TIMEOUT_MS` (8000): how long a query waits for the relayed answer.
    pub mesh_reply_timeout: Duration,
    /// `MESH_MODE`: how calls to droplets other than droplet 10 travel: `orchestrator_send`
    /// (default: relayed by droplet 10), `proxy` (an Orchestrator that proxies synchronously, at
    /// `PROXY_URL`, default `{ORCHESTRATOR_URL}/orchestrator/tasks`) or `direct` (the droplet's
    /// own API). Droplet 10's own questions always go natively.
    pub mesh_mode: MeshMode,
    pub proxy_url: Option<String>,
    /// `MESH_TARGET_MODES`, e.g. `14=direct,2=proxy`: exceptions to `MESH_MODE` per droplet.
    pub mesh_target_modes: HashMap<i64, MeshMode>,
    /// `DIRECT_URLS`, e.g. `14=http://10.0.0.14:8000`: base URLs for the direct mode; others
    /// are looked up in droplet 10's directory.
    pub direct_urls: HashMap<i64, String>,
    /// `ORCHESTRATOR_TIMEOUT` (5 s; `/send` always gets at least 12 s) and `REGISTRY_TIMEOUT`
    /// (5 s): HTTP timeouts of calls to droplet 10 and to the Registry.
    pub orchestrator_timeout: Duration,
    pub registry_timeout: Duration,
    /// The language model, if any: `LLM_PROVIDER` (`auto`: Gemini when `GEMINI_API_KEY` is
    /// set, else an OpenAI-compatible endpoint when `OPENAI_BASE_URL` is set, else none).
    pub llm: Option<LlmSettings>,
    /// `LLM_MIN_CONFIDENCE` (0.6): below it the model's choice of intent is not used.
    pub llm_min_confidence: f64,
    /// `LLM_MAX_RETRIES` (2): retries after a 429/503, within the timeout.
    pub llm_max_retries: u32,
    /// `PROGRESS_AFTER_MS` (1000): how long a query waits for its droplets before a listening
    /// client gets the step's `progress:` line.
    pub progress_after: Duration,
}

/// Which language model to use and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmSettings {
    /// `GEMINI_API_KEY`, `GEMINI_MODEL` (gemini-2.5-flash), `GEMINI_BASE_URL` (the public
    /// endpoint), `GEMINI_TIMEOUT` (30 s).
    Gemini { api_key: String, model: String, base_url: String, timeout: Duration },
    /// `OPENAI_BASE_URL` (Ollama on 127.0.0.1:11434), `OPENAI_API_KEY` (optional),
    /// `OPENAI_MODEL` (llama3.1), `OPENAI_TIMEOUT` (30 s).
    OpenAi { base_url: String, api_key: Option<String>, model: String, timeout: Duration },
}

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is not valid: expected {expected}")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        fn parse<T: std::str::FromStr>(
            lookup: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            default: T,
            expected: &'static str,
        ) -> Result<T, SettingsError> {
            match lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(value) => value.parse().map_err(|_| SettingsError { name, value, expected }),
            }
        }
        let max_history: usize = parse(&lookup, "SESSION_MAX_HISTORY", 10, "a whole number of messages, at least 1")?;
        let timeout_minutes: u64 =
            parse(&lookup, "SESSION_TIMEOUT_MINUTES", 30, "a whole number of minutes, at least 1")?;
        if max_history == 0 {
            return Err(SettingsError {
                name: "SESSION_MAX_HISTORY",
                value: "0".into(),
                expected: "a whole number of messages, at least 1",
            });
        }
        if timeout_minutes == 0 {
            return Err(SettingsError {
                name: "SESSION_TIMEOUT_MINUTES",
                value: "0".into(),
                expected: "a whole number of minutes, at least 1",
            });
        }
        let missed_kept: usize =
            parse(&lookup, "MISSED_MESSAGES_KEPT", 1000, "a whole number of messages (0 keeps none)")?;
        let recorded_turns: usize = parse(
            &lookup,
            "RECORDED_TURNS",
            500,
            "a whole number of turns (0 keeps none, and reloads cannot say what they change)",
        )?;
        let max_sessions: usize =
            parse(&lookup, "MAX_SESSIONS", 100_000, "a whole number of conversations, at least 1")?;
        if max_sessions == 0 {
            return Err(SettingsError {
                name: "MAX_SESSIONS",
                value: "0".into(),
                expected: "a whole number of conversations, at least 1",
            });
        }
        let missed_days: u64 = parse(&lookup, "MISSED_MESSAGES_DAYS", 30, "a whole number of days, at least 1")?;
        if missed_days == 0 || missed_days > 3650 {
            return Err(SettingsError {
                name: "MISSED_MESSAGES_DAYS",
                value: missed_days.to_string(),
                expected: "a whole number of days, from 1 to 3650",
            });
        }
        Ok(Settings {
            host: parse(&lookup, "HOST", IpAddr::from([127, 0, 0, 1]), "an IP address such as 127.0.0.1 or 0.0.0.0")?,
            port: parse(&lookup, "PORT", 8012, "a port number from 0 to 65535")?,
            sessions: SessionLimits {
                max_history,
                idle_timeout: Duration::from_secs(timeout_minutes.checked_mul(60).ok_or(SettingsError {
                    name: "SESSION_TIMEOUT_MINUTES",
                    value: timeout_minutes.to_string(),
                    expected: "a whole number of minutes, at least 1",
                })?),
                missed: MissedLimits { kept: missed_kept, max_age: Duration::from_secs(missed_days * 24 * 3600) },
                recorded_turns,
                max_sessions,
            },
            log_format: match lookup("LOG_FORMAT").map(|v| v.trim().to_lowercase()).filter(|v| !v.is_empty()) {
                None => None,
                Some(format) if format == "json" || format == "text" => Some(format),
                Some(other) => {
                    return Err(SettingsError { name: "LOG_FORMAT", value: other, expected: "json or text" })
                }
            },
            log_level: lookup("LOG_LEVEL").filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "info".to_owned()),
            admin_token: lookup("ADMIN_TOKEN").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            reload_max_intent_changes: match lookup("RELOAD_MAX_INTENT_CHANGES").map(|v| v.trim().to_owned()) {
                None => None,
                Some(v) if v.is_empty() => None,
                Some(v) => Some(v.parse().map_err(|_| SettingsError {
                    name: "RELOAD_MAX_INTENT_CHANGES",
                    value: v,
                    expected: "a whole number of messages (0: any change needs force)",
                })?),
            },
            metrics_token: lookup("METRICS_TOKEN").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            config_watch: parse(&lookup, "CONFIG_WATCH", true, "true or false")?,
            rate_limit_chat: parse(&lookup, "RATE_LIMIT_CHAT", 100, "a number of turns per minute (0 for no limit)")?,
            rate_limit_process: parse(
                &lookup,
                "RATE_LIMIT_PROCESS",
                50,
                "a number of turns per minute (0 for no limit)",
            )?,
            connections: crate::connections::ConnectionLimits {
                header_read_timeout: seconds(&lookup, "HEADER_READ_TIMEOUT", 10)?,
                body_read_timeout: seconds(&lookup, "BODY_READ_TIMEOUT", 10)?,
                idle_timeout: seconds(&lookup, "IDLE_TIMEOUT", 60)?,
                write_timeout: seconds(&lookup, "WRITE_TIMEOUT", 30)?,
                max_connections: parse(
                    &lookup,
                    "MAX_CONNECTIONS",
                    crate::connections::default_max_connections(),
                    "a number of connections, at least 1",
                )
                .and_then(|n: usize| {
                    (n > 0).then_some(n).ok_or(SettingsError {
                        name: "MAX_CONNECTIONS",
                        value: "0".to_owned(),
                        expected: "a number of connections, at least 1",
                    })
                })?,
            },
            mesh_relay_allow: match lookup("MESH_RELAY_ALLOW") {
                None => Vec::new(),
                Some(list) => relay_allow_list(&list)?,
            },
            rate_limit_websocket: parse(
                &lookup,
                "RATE_LIMIT_WEBSOCKET",
                200,
                "a number of messages per minute (0 for no limit)",
            )?,
            registry_public_key: lookup("REGISTRY_PUBLIC_KEY").filter(|v| !v.trim().is_empty()),
            orchestrator_public_key: lookup("ORCHESTRATOR_PUBLIC_KEY").filter(|v| !v.trim().is_empty()),
            jwt_issuer: lookup("JWT_ISSUER")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "registry.fullpotential.ai".to_owned()),
            jwt_audience: lookup("JWT_AUDIENCE")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "fullpotential.droplets".to_owned()),
            jwt_max_lifetime: match lookup("JWT_MAX_LIFETIME").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                None => crate::auth::DEFAULT_MAX_LIFETIME,
                Some(value) => lifetime(&value).ok_or(SettingsError {
                    name: "JWT_MAX_LIFETIME",
                    value,
                    expected: "a lifetime such as 24h, 90m or 3600s (seconds when no unit is given)",
                })?,
            },
            environment: lookup("ENVIRONMENT")
                .map(|v| v.trim().to_lowercase())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "development".to_owned()),
            deployed_by: lookup("DEPLOYED_BY").filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "unknown".to_owned()),
            registry_url: lookup("REGISTRY_URL").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            droplet_secret: lookup("DROPLET_SECRET").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            orchestrator_url: lookup("ORCHESTRATOR_URL").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            orchestrator_token: lookup("ORCHESTRATOR_TOKEN").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            orchestrator_private_key: lookup("ORCHESTRATOR_PRIVATE_KEY").filter(|v| !v.trim().is_empty()),
            orchestrator_secret: lookup("ORCHESTRATOR_SECRET").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            mesh_mode: parse(&lookup, "MESH_MODE", MeshMode::OrchestratorSend, MeshMode::CHOICES)?,
            mesh_target_modes: per_droplet(
                &lookup,
                "MESH_TARGET_MODES",
                "droplet=mode pairs such as 14=direct,2=proxy (modes: orchestrator_send, proxy, direct)",
                |mode| mode.parse().ok(),
            )?,
            direct_urls: per_droplet(
                &lookup,
                "DIRECT_URLS",
                "droplet=URL pairs such as 14=http://10.0.0.14:8000",
                |url| {
                    (url.starts_with("http://") || url.starts_with("https://"))
                        .then(|| url.trim_end_matches('/').to_owned())
                },
            )?,
            orchestrator_timeout: seconds(
                &lookup,
                "ORCHESTRATOR_TIMEOUT",
                crate::mesh::DEFAULT_ORCHESTRATOR_TIMEOUT.as_secs(),
            )?,
            registry_timeout: seconds(&lookup, "REGISTRY_TIMEOUT", 5)?,
            llm: llm_settings(&lookup)?,
            llm_min_confidence: parse(&lookup, "LLM_MIN_CONFIDENCE", 0.6, "a number from 0 to 1, such as 0.6")
                .and_then(|c: f64| {
                    (0.0..=1.0).contains(&c).then_some(c).ok_or(SettingsError {
                        name: "LLM_MIN_CONFIDENCE",
                        value: c.to_string(),
                        expected: "a number from 0 to 1, such as 0.6",
                    })
                })?,
            llm_max_retries: parse(&lookup, "LLM_MAX_RETRIES", 2, "a whole number of retries, such as 2")?,
            progress_after: Duration::from_millis(parse(
                &lookup,
                "PROGRESS_AFTER_MS",
                1000,
                "a whole number of milliseconds, such as 1000",
            )?),
            proxy_url: lookup("PROXY_URL").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            mesh_reply_timeout: Duration::from_millis(parse(
                &lookup,
                "MESH_REPLY_TIMEOUT_MS",
                8000,
                "a number of milliseconds",
            )?),
            redis_url: lookup("REDIS_URL").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()),
            redis_prefix: lookup("REDIS_PREFIX")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "chat-orchestrator:".to_owned()),
        })
    }
}

fn llm_settings(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<LlmSettings>, SettingsError> {
    let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let provider = get("LLM_PROVIDER").map(|p| p.to_lowercase()).unwrap_or_else(|| "auto".to_owned());
    let gemini = || -> Result<LlmSettings, SettingsError> {
        let api_key = get("GEMINI_API_KEY").ok_or(SettingsError {
            name: "GEMINI_API_KEY",
            value: String::new(),
            expected: "the Gemini API key (LLM_PROVIDER=gemini needs it)",
        })?;
        Ok(LlmSettings::Gemini {
            api_key,
            model: get("GEMINI_MODEL").unwrap_or_else(|| crate::llm::gemini::DEFAULT_MODEL.to_owned()),
            base_url: get("GEMINI_BASE_URL").unwrap_or_else(|| crate::llm::gemini::DEFAULT_BASE_URL.to_owned()),
            timeout: seconds(lookup, "GEMINI_TIMEOUT", 30)?,
        })
    };
    let openai = || -> Result<LlmSettings, SettingsError> {
        Ok(LlmSettings::OpenAi {
            base_url: get("OPENAI_BASE_URL").unwrap_or_else(|| crate::llm::openai::DEFAULT_BASE_URL.to_owned()),
            api_key: get("OPENAI_API_KEY"),
            model: get("OPENAI_MODEL").unwrap_or_else(|| "llama3.1".to_owned()),
            timeout: seconds(lookup, "OPENAI_TIMEOUT", 30)?,
        })
    };
    match provider.as_str() {
        "auto" if get("GEMINI_API_KEY").is_some() => gemini().map(Some),
        "auto" if get("OPENAI_BASE_URL").is_some() => openai().map(Some),
        "auto" | "none" => Ok(None),
        "gemini" => gemini().map(Some),
        "openai" => openai().map(Some),
        _ => Err(SettingsError { name: "LLM_PROVIDER", value: provider, expected: "auto, gemini, openai or none" }),
    }
}

/// A timeout in seconds (fractions allowed, as the seed's `.env` files write them: `5.0`).
fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, SettingsError> {
    let expected = "a number of seconds greater than 0, such as 5 or 2.5";
    match lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(Duration::from_secs(default)),
        Some(value) => value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or(SettingsError { name, value, expected }),
    }
}

/// `id=value` pairs separated by commas, e.g. `14=direct,2=proxy`.
fn per_droplet<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
    read: impl Fn(&str) -> Option<T>,
) -> Result<HashMap<i64, T>, SettingsError> {
    let Some(text) = lookup(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(HashMap::new());
    };
    let mut pairs = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed =
            pair.split_once('=').and_then(|(id, value)| Some((id.trim().parse::<i64>().ok()?, read(value.trim())?)));
        let Some((id, value)) = parsed else {
            return Err(SettingsError { name, value: text.clone(), expected });
        };
        pairs.insert(id, value);
    }
    Ok(pairs)
}

/// `MESH_RELAY_ALLOW`: comma-separated addresses and networks; a bare address is that one host.
fn relay_allow_list(list: &str) -> Result<Vec<ipnet::IpNet>, SettingsError> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry.parse::<ipnet::IpNet>().or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from)).map_err(|_| {
                SettingsError {
                    name: "MESH_RELAY_ALLOW",
                    value: entry.to_owned(),
                    expected: "addresses or networks separated by commas, such as 10.0.0.10 or 10.0.0.0/24",
                }
            })
        })
        .collect()
}

/// `24h`, `90m`, `3600s`, or a number of seconds; more than zero.
fn lifetime(value: &str) -> Option<Duration> {
    let (number, unit) = match value.char_indices().last()? {
        (at, 'h') => (&value[..at], 3600),
        (at, 'm') => (&value[..at], 60),
        (at, 's') => (&value[..at], 1),
        _ => (value, 1),
    };
    let count: u64 = number.trim().parse().ok().filter(|n| *n > 0)?;
    count.checked_mul(unit).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_seed() {
        let s = with(&[]).expect("defaults");
        assert_eq!((s.host.to_string(), s.port), ("127.0.0.1".to_owned(), 8012));
        assert_eq!(s.sessions.max_history, 10);
        assert_eq!(s.sessions.idle_timeout, Duration::from_secs(1800));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = with(&[("PORT", "eighty")]).expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "environment variable PORT=\"eighty\" is not valid: expected a port number from 0 to 65535"
        );
        assert!(with(&[("SESSION_MAX_HISTORY", "0")]).is_err());
    }

    #[test]
    fn the_language_model_is_chosen_by_what_is_set() {
        assert_eq!(with(&[]).expect("defaults").llm, None, "no key: rules only");
        let gemini = with(&[("GEMINI_API_KEY", "k"), ("GEMINI_TIMEOUT", "12")]).expect("valid").llm;
        assert_eq!(
            gemini,
            Some(LlmSettings::Gemini {
                api_key: "k".into(),
                model: "gemini-2.5-flash".into(),
                base_url: "https://generativelanguage.googleapis.com".into(),
                timeout: Duration::from_secs(12),
            })
        );
        let local = with(&[("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"), ("OPENAI_MODEL", "qwen")]).expect("valid");
        assert!(matches!(local.llm, Some(LlmSettings::OpenAi { ref model, .. }) if model == "qwen"));
        assert_eq!(with(&[("GEMINI_API_KEY", "k"), ("LLM_PROVIDER", "none")]).expect("valid").llm, None);
        assert_eq!(with(&[("LLM_PROVIDER", "gemini")]).expect_err("no key").name, "GEMINI_API_KEY");
        assert_eq!(with(&[("LLM_PROVIDER", "claude")]).expect_err("unknown").name, "LLM_PROVIDER");
        assert_eq!(with(&[("LLM_MIN_CONFIDENCE", "1.5")]).expect_err("range").name, "LLM_MIN_CONFIDENCE");
    }

    #[test]
    fn mesh_settings_are_typed_and_checked() {
        let s = with(&[
            ("MESH_MODE", "Proxy"),
            ("MESH_TARGET_MODES", "14=direct, 2=orchestrator_send"),
            ("DIRECT_URLS", "14=http://127.0.0.1:9014/"),
            ("ORCHESTRATOR_TIMEOUT", "2.5"),
        ])
        .expect("valid");
        assert_eq!(s.mesh_mode, MeshMode::Proxy);
        assert_eq!(s.mesh_target_modes.get(&14), Some(&MeshMode::Direct));
        assert_eq!(s.mesh_target_modes.get(&2), Some(&MeshMode::OrchestratorSend));
        assert_eq!(s.direct_urls.get(&14).map(String::as_str), Some("http://127.0.0.1:9014"));
        assert_eq!(s.orchestrator_timeout, Duration::from_millis(2500));
        assert_eq!(s.registry_timeout, Duration::from_secs(5));
        for (name, value) in [
            ("MESH_MODE", "carrier-pigeon"),
            ("MESH_TARGET_MODES", "14:direct"),
            ("MESH_TARGET_MODES", "fourteen=direct"),
            ("DIRECT_URLS", "14=ftp://x"),
            ("ORCHESTRATOR_TIMEOUT", "0"),
            ("REGISTRY_TIMEOUT", "soon"),
        ] {
            let err = with(&[(name, value)]).expect_err(value);
            assert_eq!(err.name, name, "{err}");
        }
    }

    #[test]
    fn security_settings_read_and_refuse_clearly() {
        let s = with(&[
            ("MESH_RELAY_ALLOW", "10.0.0.10, 192.168.0.0/24"),
            ("JWT_MAX_LIFETIME", "90m"),
            ("HEADER_READ_TIMEOUT", "5"),
            ("MAX_CONNECTIONS", "300"),
        ])
        .expect("valid");
        assert_eq!(s.mesh_relay_allow.len(), 2);
        assert_eq!(s.jwt_max_lifetime, Duration::from_secs(90 * 60));
        assert_eq!(s.connections.header_read_timeout, Duration::from_secs(5));
        assert_eq!(s.connections.max_connections, 300);
        assert_eq!(with(&[]).expect("defaults").jwt_max_lifetime, Duration::from_secs(24 * 3600));
        for (name, value) in [
            ("MESH_RELAY_ALLOW", "10.0.0.300"),
            ("JWT_MAX_LIFETIME", "forever"),
            ("JWT_MAX_LIFETIME", "0h"),
            ("MAX_CONNECTIONS", "0"),
            ("IDLE_TIMEOUT", "-1"),
        ] {
            let error = with(&[(name, value)]).err().unwrap_or_else(|| panic!("{name}={value} accepted"));
            assert_eq!(error.name, name);
        }
    }
}
