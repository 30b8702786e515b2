//! The two token families of MESH.md §4.
//!
//! - Droplet 10: a static token, one we mint ourselves with the private key paired with droplet
//!   10's public key, or one fetched from its `/auth/token`. Minted and fetched tokens are renewed
//!   an hour before they expire, or at once after a 401.
//! - The Registry: fetched from `/auth/token` with `X-Registry-Key` (`DROPLET_SECRET`), renewed
//!   five minutes before its `exp`, or at once after a 401. Used for the Registry's own routes
//!   and for calling droplets directly.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Renew this long before `exp`.
const RENEW_BEFORE: i64 = 3600;
/// Lifetime of a minted token.
const MINTED_LIFETIME: i64 = 24 * 3600;

pub enum OrchestratorCredentials {
    /// No token: droplet 10 routes that need one will answer 401.
    None,
    Static(String),
    /// Sign our own token: `{droplet_id, steward, permissions, iat, exp}`, RS256.
    Mint {
        key: Box<EncodingKey>,
        droplet_id: i64,
        steward: String,
        cached: Mutex<Option<(String, i64)>>,
    },
    /// `POST {orchestrator}/auth/token` with `{droplet_id, secret_key}`.
    Fetch {
        url: String,
        droplet_id: i64,
        secret: String,
        http: reqwest::Client,
        cached: Mutex<Option<(String, i64)>>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(pub String);

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl OrchestratorCredentials {
    /// Mint mode from a private key given as PEM text, `\n`-escaped PEM, or a file path.
    pub fn mint(private_key: &str, droplet_id: i64, steward: &str) -> Result<Self, CredentialError> {
        let value = private_key.trim();
        let pem = if value.contains("-----BEGIN") {
            value.replace("\\n", "\n")
        } else {
            std::fs::read_to_string(value)
                .map_err(|e| CredentialError(format!("ORCHESTRATOR_PRIVATE_KEY: cannot read {value}: {e}")))?
        };
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            CredentialError(format!("ORCHESTRATOR_PRIVATE_KEY is not an RSA private key in PEM form: {e}"))
        })?;
        Ok(OrchestratorCredentials::Mint {
            key: Box::new(key),
            droplet_id,
            steward: steward.to_owned(),
            cached: Mutex::new(None),
        })
    }

    /// Fetch mode; `timeout` is `ORCHESTRATOR_TIMEOUT`.
    pub fn fetch(orchestrator_url: &str, droplet_id: i64, secret: &str, timeout: Duration) -> Self {
        let http = crate::util::outgoing_http(Some(timeout));
        OrchestratorCredentials::Fetch {
            url: format!("{}/auth/token", orchestrator_url.trim_end_matches('/')),
            droplet_id,
            secret: secret.to_owned(),
            http,
            cached: Mutex::new(None),
        }
    }

    /// The token to send now; `renew` forces a new one (after a 401).
    pub async fn token(&self, renew: bool) -> Result<Option<String>, CredentialError> {
        match self {
            OrchestratorCredentials::None => Ok(None),
            OrchestratorCredentials::Static(token) => Ok(Some(token.clone())),
            OrchestratorCredentials::Mint { key, droplet_id, steward, cached } => {
                if let Some(token) = fresh(cached, renew) {
                    return Ok(Some(token));
                }
                let issued = now();
                let claims = json!({"droplet_id": droplet_id, "steward": steward, "permissions": ["read", "write"],
                                    "iat": issued, "exp": issued + MINTED_LIFETIME});
                let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
                    .map_err(|e| CredentialError(format!("cannot sign an Orchestrator token: {e}")))?;
                store(cached, &token, issued + MINTED_LIFETIME);
                Ok(Some(token))
            }
            OrchestratorCredentials::Fetch { url, droplet_id, secret, http, cached } => {
                if let Some(token) = fresh(cached, renew) {
                    return Ok(Some(token));
                }
                let response = http
                    .post(url.as_str())
                    .json(&json!({"droplet_id": droplet_id, "secret_key": secret}))
                    .send()
                    .await
                    .map_err(|e| CredentialError(format!("cannot reach {url}: {e}")))?;
                let status = response.status();
                let body: Value = crate::util::peer_json(response).await.unwrap_or(Value::Null);
                let token = body["access_token"]
                    .as_str()
                    .filter(|_| status.is_success())
                    .ok_or_else(|| CredentialError(format!("{url} gave no token (status {status})")))?;
                let expires_in = body["expires_in"].as_i64().unwrap_or(MINTED_LIFETIME);
                store(cached, token, now() + expires_in);
                Ok(Some(token.to_owned()))
            }
        }
    }
}

fn fresh(cached: &Mutex<Option<(String, i64)>>, renew: bool) -> Option<String> {
    let cached = cached.lock().unwrap_or_else(|p| p.into_inner());
    cached.as_ref().filter(|(_, exp)| !renew && exp - now() > RENEW_BEFORE).map(|(token, _)| token.clone())
}

fn store(cached: &Mutex<Option<(String, i64)>>, token: &str, exp: i64) {
    *cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.to_owned(), exp));
}

/// Renew a Registry token this long before its `exp` (MESH.md §5.4).
const REGISTRY_RENEW_BEFORE: i64 = 300;

/// Registry tokens: `POST {registry}/auth/token?droplet_id=N` with `X-Registry-Key`.
pub struct RegistryCredentials {
    http: reqwest::Client,
    base_url: String,
    droplet_id: i64,
    key: Option<String>,
    cached: Mutex<Option<String>>,
}

impl RegistryCredentials {
    /// `timeout` is `REGISTRY_TIMEOUT`.
    pub fn new(registry_url: &str, droplet_id: i64, key: Option<String>, timeout: Duration) -> Self {
        let http = crate::util::outgoing_http(Some(timeout));
        RegistryCredentials {
            http,
            base_url: registry_url.trim_end_matches('/').to_owned(),
            droplet_id,
            key,
            cached: Mutex::new(None),
        }
    }

    /// The Registry's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `DROPLET_SECRET`, which Registry routes want as `X-Registry-Key` besides the token.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The token to send now: the cached one unless it expires within five minutes or `renew`
    /// is set (after a 401).
    pub async fn token(&self, renew: bool) -> Result<String, CredentialError> {
        if !renew {
            if let Some(token) = self.cached.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                if seconds_left(&token).is_none_or(|left| left > REGISTRY_RENEW_BEFORE) {
                    return Ok(token);
                }
            }
        }
        let url = format!("{}/auth/token", self.base_url);
        let mut request = self.http.post(&url).query(&[("droplet_id", self.droplet_id.to_string())]);
        if let Some(key) = &self.key {
            request = request.header("X-Registry-Key", key);
        }
        let response = request.send().await.map_err(|e| CredentialError(format!("cannot reach {url}: {e}")))?;
        let status = response.status();
        let body: Value = crate::util::peer_json(response).await.unwrap_or(Value::Null);
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|_| status.is_success())
            .ok_or_else(|| CredentialError(format!("{url} gave no token (status {status})")))?;
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.to_owned());
        Ok(token.to_owned())
    }
}

/// Seconds until a JWT's `exp`, read without verifying (it is our own token, to refresh it).
fn seconds_left(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let exp = serde_json::from_slice::<Value>(&bytes).ok()?["exp"].as_i64()?;
    Some(exp - now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_expiry_is_read_without_verifying() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"exp": now() + 600}).to_string());
        let left = seconds_left(&format!("e30.{payload}.sig")).expect("exp");
        assert!((595..=600).contains(&left), "{left}");
        assert_eq!(seconds_left("garbage"), None);
    }
}
