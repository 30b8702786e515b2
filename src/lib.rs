//! Chat Orchestrator (droplet 12): a declarative conversation engine.
//!
//! Stewards describe each intent as a YAML pipeline (`pipelines/`) and write its replies as
//! minijinja templates (`templates/`); the droplets of the mesh are data (`catalogue/`). This
//! crate checks and compiles that configuration and runs it behind a poem-openapi server.
//! ARCHITECTURE.md has the data flow and the invariants.
//!
//! # Layout
//!
//! - [`config`]: files → located YAML → JSON Schema → `*Spec` → [`config::CompiledConfig`],
//!   collecting every [`diagnostic::Diagnostic`] before failing.
//! - [`engine`]: one turn in, one reply out; pure (no HTTP, no files).
//! - [`intent`]: rule-based intent resolution that explains itself.
//! - [`pipeline`] and [`steps`]: the runtime pipeline and its step kinds (`extract`, `query`,
//!   `format`), one file each.
//! - [`slots`]: `key:value` parsing, coercion and validation of slot values.
//! - [`catalogue`]: the droplets; [`backend`]: how droplet calls are made (the bundled sample
//!   data by default).
//! - [`template`] and [`speech`]: the minijinja environment, and the voice channel's text rules.
//! - [`session`]: conversation state behind a store trait, in memory by default.
//! - [`api`] and [`server`]: the HTTP surface; [`settings`]: environment variables.

pub mod api;
pub mod auth;
pub mod backend;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod connections;
pub mod coverage;
pub mod credentials;
pub mod diagnostic;
pub mod dialogue;
pub mod droplet_ids;
pub mod engine;
pub mod envelope;
pub mod fixture;
pub mod identity;
pub mod intent;
pub mod lifecycle;
pub mod llm;
pub mod mesh;
pub mod metrics;
pub mod nlu;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod server;
pub mod session;
pub mod settings;
pub mod shapes;
pub mod slots;
pub mod speech;
pub mod stats;
pub mod steps;
pub mod template;
pub mod trace;
pub mod turn_events;
pub mod understand;
pub mod util;
pub mod utterances;
