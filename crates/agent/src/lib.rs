//! Agent runs: the monitor that owns an agent's process tree, the launcher and
//! stop logic (`process`), and the parsers of agent output (`adapters`).

pub mod adapters;
pub mod process;
pub mod prompts;
