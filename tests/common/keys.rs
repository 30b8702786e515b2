//! Test-only RSA keys (generated per run with openssl, never real keys) and tokens signed with them.

use std::path::Path;
use std::process::Command;

use chat_orchestrator::auth::{load_public_key, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const ISSUER: &str = "registry.fullpotential.ai";
pub const AUDIENCE: &str = "fullpotential.droplets";

/// A fresh RSA key pair (test-only, generated now): (private PEM, public PEM).
pub fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&private)
        .arg("2048")
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl genrsa");
    let ok = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl rsa -pubout");
    (std::fs::read_to_string(private).expect("read"), std::fs::read_to_string(public).expect("read"))
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

pub fn sign(private_pem: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("key"),
    )
    .expect("sign")
}

pub fn registry_claims() -> Value {
    claims_for("12")
}

/// Registry claims for a subject, valid for an hour.
pub fn claims_for(subject: &str) -> Value {
    json!({"iss": ISSUER, "sub": subject, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600, "role": "droplet", "scope": ["registry:heartbeat"]})
}

pub fn keys_verifier(public_pem: &str) -> Verifier {
    Verifier::Keys {
        registry: load_public_key("REGISTRY_PUBLIC_KEY", public_pem).expect("public key"),
        orchestrator: None,
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        max_lifetime: chat_orchestrator::auth::DEFAULT_MAX_LIFETIME,
    }
}
