//! orch's functional core: the domain vocabulary and every decision that can be
//! made from data alone (stage transitions, gate checks, retry/backoff, what the
//! reaper does with an unknown outcome, when a STOP must be deferred).
//!
//! Nothing in this crate performs IO or is async; the store, engine and CLI call
//! these functions and carry out what they decide.

pub mod budget;
pub mod cancel;
pub mod ci;
pub mod decide;
pub mod disk;
pub mod event;
pub mod gates;
pub mod ids;
pub mod job;
pub mod keys;
pub mod people;
pub mod pipeline;
pub mod retry;
pub mod run;
pub mod run_end;
pub mod stage;
pub mod task;
pub mod time;
pub mod wildcard;

pub use event::EventKind;
pub use gates::{Block, ClaimCandidate, GateContext, Gates, Limits};
pub use ids::{JobId, RunId, TaskId, WorkerId};
pub use job::{AgentKind, Job, JobStatus, NewJob};
pub use retry::{FailureDecision, RetryPolicy};
pub use run::{Run, RunOutcome};
pub use stage::Stage;
pub use task::{EventInput, NewTask, Task, TaskEvent};
pub use time::Timestamp;

/// A string did not name a known domain value (a stage, agent kind, status, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct ParseError {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// `eprintln!` that never panics. A log or message that cannot be written
/// (stderr on a full disk, a closed pipe) must not stop orch: `eprintln!`
/// panics then (Symphony SPEC §17.6, "logging sink failures do not crash
/// orchestration"; `orch serve` with stderr on `/dev/full` died at its first
/// line).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}
