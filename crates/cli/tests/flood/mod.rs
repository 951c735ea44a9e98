//! A flooding agent for the output tests and the `output_flood` bench: a
//! Python script speaking Claude Code's stream-json that prints one huge line
//! and then many ordinary ones.
//!
//! `python3 flood.py BIG_MIB LINES MODE MARKER`:
//! - one `assistant` line whose text is BIG_MIB MiB of `x`;
//! - LINES `assistant` lines (three per API message id, as Claude does);
//! - MODE `exit`: a `result` line saying success, then exit 0;
//!   MODE `forever`: creates MARKER (the flood is under way) and keeps
//!   printing lines until it is stopped (at most `FOREVER_CAP` more bytes, then
//!   it waits, so a watcher that never stops it cannot fill the disk).
//!   MODE `@FILE` reads the mode from FILE when the agent starts.
#![allow(dead_code)] // the test and the bench each use their part

use std::path::{Path, PathBuf};

pub const FOREVER_CAP: u64 = 512 << 20;

pub const FLOOD_PY: &str = r#"import sys, time
big_mib, lines, mode, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if mode.startswith("@"):
    mode = open(mode[1:]).read().strip()
out = sys.stdout.buffer
out.write(b'{"type":"system","subtype":"init","session_id":"flood","model":"claude-sonnet-4-5"}\n')
out.write(b'{"type":"assistant","session_id":"flood","message":{"id":"msg_big","model":"claude-sonnet-4-5","role":"assistant","content":[{"type":"text","text":"')
chunk = b"x" * (1 << 20)
for _ in range(big_mib):
    out.write(chunk)
out.write(b'"}],"usage":{"input_tokens":1,"output_tokens":1}}}\n')
line = b'{"type":"assistant","session_id":"flood","message":{"id":"msg_%d","model":"claude-sonnet-4-5","role":"assistant","content":[{"type":"text","text":"line %d of the flood"}],"usage":{"input_tokens":10,"output_tokens":1}}}\n'
def batch(start, n):
    return b"".join(line % (i // 3, i) for i in range(start, start + n))
i = 0
while i < lines:
    n = min(10000, lines - i)
    out.write(batch(i, n))
    i += n
if mode == "exit":
    out.write(b'{"type":"result","subtype":"success","is_error":false,"result":"flood done","session_id":"flood","total_cost_usd":0.01,"usage":{"input_tokens":10,"output_tokens":5}}\n')
    out.flush()
    sys.exit(0)
out.flush()
open(marker, "w").close()
written = 0
while written < CAP:
    b = batch(i, 1000)
    out.write(b)
    out.flush()
    written += len(b)
    i += 1000
time.sleep(100000)
"#;

/// Writes the script into `dir` and returns its path.
pub fn install(dir: &Path) -> PathBuf {
    let path = dir.join("flood.py");
    let script = FLOOD_PY.replace("CAP", &FOREVER_CAP.to_string());
    std::fs::write(&path, script).unwrap();
    path
}

/// The orch.toml line that makes the analyst this flood (a Claude Code agent).
pub fn analyst(script: &Path, big_mib: u64, lines: u64, mode: &str, marker: &Path) -> String {
    format!(
        "adapter = \"claude_code\"\ncommand = [\"python3\", \"{}\", \"{big_mib}\", \"{lines}\", \"{mode}\", \"{}\"]",
        script.display(),
        marker.display()
    )
}
