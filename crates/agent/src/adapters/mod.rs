//! Parsers of agent output (Claude Code stream-json, Codex exec --json, plain command).
