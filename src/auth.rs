//! Verifying the mesh's bearer tokens (MESH.md §4).
//!
//! Registry tokens are RS256 with `iss`, `aud` and `sub`; the algorithm is pinned, so `none`,
//! HS256 "signed" with the public key, and every other algorithm are refused before any key is
//! tried. An optional second anchor accepts Orchestrator tokens (`droplet_id` claim, no iss/aud).
//! Without a Registry key the service runs open — allowed only outside production, and said
//! loudly at start-up and on `/health`.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The token of an `Authorization` header: `Bearer <token>`, the scheme in any case (RFC 7235),
/// or `None` for any other scheme or an empty token.
pub fn bearer_token(header: &str) -> Option<String> {
    let (scheme, token) = header.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Whether a secret given equals the one configured, in time that depends on neither (both are
/// hashed first, so not even the length shows).
pub fn same_secret(given: &str, configured: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(configured.as_bytes())).into()
}

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 60;

/// The longest a token may be meant to live unless `JWT_MAX_LIFETIME` says otherwise.
pub const DEFAULT_MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Who called, once the token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The droplet number when the subject names one (`"12"`, `"droplet-5"`, `"drop5.…"`).
    pub droplet: Option<i64>,
    /// The subject as written (Registry tokens) or the droplet id (Orchestrator tokens).
    pub subject: String,
    pub anchor: Anchor,
}

impl Caller {
    /// The subject, when a token proved it (never in development mode).
    pub fn verified_subject(&self) -> Option<&str> {
        (self.anchor != Anchor::Unverified).then_some(self.subject.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Registry,
    Orchestrator,
    /// No key configured: development mode, nothing was verified.
    Unverified,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{name} is not a usable RSA public key (PEM text, PEM with \\n escapes, or a path to a PEM file): {reason}"
    )]
    Unusable { name: &'static str, reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the bearer token is not valid: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct RegistryClaims {
    sub: String,
    #[serde(flatten)]
    times: Times,
}

#[derive(Deserialize)]
struct OrchestratorClaims {
    droplet_id: i64,
    #[serde(flatten)]
    times: Times,
}

/// The time claims jsonwebtoken does not judge: when the token says it was issued, and how long
/// it is meant to live.
#[derive(Deserialize)]
struct Times {
    exp: f64,
    iat: Option<f64>,
}

impl Times {
    fn check(&self, max_lifetime: std::time::Duration) -> Result<(), String> {
        let now = jsonwebtoken::get_current_timestamp() as f64;
        let leeway = LEEWAY_SECONDS as f64;
        if let Some(iat) = self.iat {
            if iat > now + leeway {
                return Err("it says it was issued in the future (iat)".to_owned());
            }
        }
        let from = self.iat.unwrap_or(now).min(now);
        if self.exp - from > max_lifetime.as_secs_f64() + leeway {
            return Err(format!(
                "it is meant to live longer than {} hours (JWT_MAX_LIFETIME)",
                max_lifetime.as_secs_f64() / 3600.0
            ));
        }
        Ok(())
    }
}

/// What `Authorization: Bearer …` is checked against.
pub enum Verifier {
    Keys {
        registry: DecodingKey,
        orchestrator: Option<DecodingKey>,
        issuer: String,
        audience: String,
        max_lifetime: std::time::Duration,
    },
    /// No Registry key: every request is let through as [`Anchor::Unverified`].
    Open,
}

impl Verifier {
    pub fn is_open(&self) -> bool {
        matches!(self, Verifier::Open)
    }

    pub fn verify(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        let Verifier::Keys { registry, orchestrator, issuer, audience, max_lifetime } = self else {
            return Ok(Caller { droplet: None, subject: String::new(), anchor: Anchor::Unverified });
        };
        let token = token.filter(|t| !t.trim().is_empty()).ok_or(AuthError::Missing)?;
        // RFC 7515 §4.1.11: a `crit` parameter this service does not understand means refuse;
        // it understands none
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(describe(&e)))?;
        if header.crit.is_some() {
            return Err(AuthError::Invalid(
                "it marks header parameters as critical (`crit`), and this service understands none".to_owned(),
            ));
        }

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        let registry_error = match jsonwebtoken::decode::<RegistryClaims>(token, registry, &validation) {
            Ok(data) if !data.claims.sub.trim().is_empty() => {
                data.claims.times.check(*max_lifetime).map_err(AuthError::Invalid)?;
                let subject = data.claims.sub;
                return Ok(Caller { droplet: droplet_number(&subject), subject, anchor: Anchor::Registry });
            }
            Ok(_) => "the `sub` claim is empty".to_owned(),
            Err(error) => describe(&error),
        };
        if let Some(orchestrator) = orchestrator {
            let mut validation = Validation::new(Algorithm::RS256);
            validation.leeway = LEEWAY_SECONDS;
            validation.validate_nbf = true;
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp"]);
            if let Ok(data) = jsonwebtoken::decode::<OrchestratorClaims>(token, orchestrator, &validation) {
                data.claims.times.check(*max_lifetime).map_err(AuthError::Invalid)?;
                let id = data.claims.droplet_id;
                return Ok(Caller { droplet: Some(id), subject: id.to_string(), anchor: Anchor::Orchestrator });
            }
        }
        Err(AuthError::Invalid(registry_error))
    }
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidAlgorithm => "only RS256 tokens are accepted".to_owned(),
        ErrorKind::ExpiredSignature => "it has expired".to_owned(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "it was issued by someone else (iss)".to_owned(),
        ErrorKind::InvalidAudience => "it is meant for someone else (aud)".to_owned(),
        ErrorKind::InvalidSignature => "the signature does not match the Registry's key".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the `{claim}` claim is missing"),
        _ => "it cannot be read as a JWT".to_owned(),
    }
}

/// `"12"` → 12, `"droplet-5"` / `"droplet_5"` → 5, `"drop5.fullpotential.ai"` → 5.
pub fn droplet_number(subject: &str) -> Option<i64> {
    let s = subject.trim();
    let s = s.strip_prefix("droplet-").or_else(|| s.strip_prefix("droplet_")).unwrap_or(s);
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let host = s.strip_prefix("drop")?;
    let digits: String = host.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty() && host[digits.len()..].starts_with('.')).then(|| digits.parse().ok()).flatten()
}

/// Reads a public key given as PEM text, PEM with `\n` escapes (as env files carry it), or a
/// path to a PEM file.
pub fn load_public_key(name: &'static str, value: &str) -> Result<DecodingKey, KeyError> {
    let value = value.trim();
    let pem = if value.contains("-----BEGIN") {
        value.replace("\\n", "\n")
    } else {
        std::fs::read_to_string(Path::new(value))
            .map_err(|e| KeyError::Unusable { name, reason: format!("cannot read {value}: {e}") })?
    };
    DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| KeyError::Unusable { name, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_droplets_in_every_form_the_mesh_uses() {
        assert_eq!(droplet_number("12"), Some(12));
        assert_eq!(droplet_number("droplet-5"), Some(5));
        assert_eq!(droplet_number("droplet_5"), Some(5));
        assert_eq!(droplet_number("drop5.fullpotential.ai"), Some(5));
        assert_eq!(droplet_number("registry"), None);
        assert_eq!(droplet_number("dropbox"), None);
    }

    #[test]
    fn open_mode_lets_anyone_through_unverified() {
        let caller = Verifier::Open.verify(None).expect("open");
        assert_eq!(caller.anchor, Anchor::Unverified);
    }

    #[test]
    fn unusable_keys_say_what_was_expected() {
        let Err(error) = load_public_key("REGISTRY_PUBLIC_KEY", "/nonexistent/key.pem") else { panic!("no such file") };
        assert!(error.to_string().contains("REGISTRY_PUBLIC_KEY"), "{error}");
        assert!(load_public_key(
            "REGISTRY_PUBLIC_KEY",
            "-----BEGIN PUBLIC KEY-----\\ngarbage\\n-----END PUBLIC KEY-----"
        )
        .is_err());
    }
}
