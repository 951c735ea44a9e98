//! orch.toml + ORCH_ environment configuration.
