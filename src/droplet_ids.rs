//! The droplets with fixed ids in every mesh (MESH.md), named once. Like `util`, it imports
//! nothing from the crate.

/// The Orchestrator: it relays turns for other droplets (MESH.md §7) and answers its own
/// questions natively rather than through a relay (MESH.md §6.4).
pub const ORCHESTRATOR: i64 = 10;
