//! orch's engine: the imperative shell that carries out the core's decisions
//! against the store and the machine.
//!
//! - `engine`: the loops `orch serve` runs, built once and started as one.
//! - `supervisor`: claims jobs, launches their agents under a monitor, watches
//!   them (heartbeat, timeouts, budget), records outcomes, re-adopts runs after
//!   a restart and reaps lost ones.
//! - `pipeline`: the stage machine's effects (gates, ticks, merge gate,
//!   deploy finalizer, STOP) and the preparer of agent runs.
//! - `ports`: the tracker and forge traits with the builtin tracker and the
//!   local forge.
//! - `tracker_outbox`: orch's writes to the tracker, durable and in order.
//! - `status`: the `/queue` snapshot.
//! - `metered`: the metrics recorded where things happen (runs, STOP, port errors).
//! - `passes`: the loops' "a pass is done" signal, for waiters (`GET /api/changes`).

pub mod engine;
pub mod live_config;
mod metered;
pub mod node;
pub mod notify;
pub mod passes;
pub mod pipeline;
pub mod ports;
pub mod status;
pub mod supervisor;
pub mod tracker_outbox;

pub use engine::{Engine, EngineParts};
