//! The shared test kit (`crates/testkit`, `orch_testkit`) under the name
//! the tests use, with the `orch` binary cargo built for them.
#![allow(dead_code, unused_imports)] // each test file uses its own subset

pub use orch_testkit::*;

/// The `orch` binary of this package: the one the kit runs
/// (`orch_testkit::binary`; `quickstart_hint.rs` checks).
pub const ORCH: &str = env!("CARGO_BIN_EXE_orch");
