//! orch's engine: the imperative shell that carries out the core's decisions
//! against the store and the machine.
//!
//! - `supervisor`: claims jobs, launches their agents under a monitor, watches
//!   them (heartbeat, timeouts, budget), records outcomes, re-adopts runs after
//!   a restart and reaps lost ones.
//! - `status`: the `/queue` snapshot.

pub mod status;
pub mod supervisor;
