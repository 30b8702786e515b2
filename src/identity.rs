//! This droplet's identity in the mesh, from `udc_config.json`: the single source for what the
//! UDC endpoints and registration announce.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub id: i64,
    pub name: String,
    pub steward: String,
    pub endpoint: String,
    pub udc_version: String,
    pub features: Vec<String>,
    pub supported_sources: Vec<String>,
    /// Droplet numbers this droplet needs; each is in the catalogue.
    pub required: Vec<i64>,
    /// Droplet numbers it uses when they are available; each is in the catalogue.
    pub optional: Vec<i64>,
}
