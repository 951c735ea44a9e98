//! orch's engine: the imperative shell that carries out the core's decisions
//! against the store and the outside world. For now it owns the status
//! snapshot (`GET /queue`, `orch status`).

pub mod status;
