//! The per-run token of an agent's `orch mcp` tools (issue 16 point 5).
//!
//! The preparer mints it for an agent run and hands it to the run's MCP
//! server config only; orch keeps its SHA-256 in the run folder
//! (`agent-token.sha256`), and the supervisor holds that hash with the run
//! while it watches it. A request with the token is accepted only while the
//! run is watched: when the run ends its entry goes, and the token with it.
//! It grants nothing but the tools of its own run's task.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The hash's file in the run folder.
pub const TOKEN_HASH_FILE: &str = "agent-token.sha256";

/// A fresh token (64 hex characters) and its hash.
pub fn mint() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = hex(&bytes);
    let hash = hash(&token);
    (token, hash)
}

/// The hash kept for `token` (lowercase hex of its SHA-256).
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the hash to the run folder (owner-only).
pub fn write_hash(run_dir: &Path, hash: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(run_dir.join(TOKEN_HASH_FILE))?;
    f.write_all(hash.as_bytes())
}

/// The run's token hash, if it has one (a re-adopted run too).
pub fn read_hash(run_dir: &Path) -> Option<String> {
    let s = std::fs::read_to_string(run_dir.join(TOKEN_HASH_FILE)).ok()?;
    let s = s.trim();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_round_trips_through_the_run_folder_and_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let (token, h) = mint();
        assert_eq!(token.len(), 64);
        assert_ne!(token, h);
        assert_eq!(hash(&token), h);
        write_hash(dir.path(), &h).unwrap();
        assert_eq!(read_hash(dir.path()).as_deref(), Some(h.as_str()));
        let stored = std::fs::read_to_string(dir.path().join(TOKEN_HASH_FILE)).unwrap();
        assert!(!stored.contains(&token));
    }
}
