//! Following a run's output log: the lines written since the last read, in
//! bounded slices.
//!
//! What an agent prints is not under orch's control, so the reader bounds
//! both its memory and its work, whatever arrives:
//! - one call reads at most the caller's budget of bytes, `READ_CHUNK` at a
//!   time into one reused buffer, so a watcher can look at STOP, timeouts and
//!   its heartbeat between slices of a flood;
//! - every byte is scanned once for its newline; a line that lies within one
//!   chunk is handed out borrowed from the buffer, and only the part of a line
//!   that spans chunks is copied (once) into the carry buffer;
//! - a line longer than [`MAX_PARSE_LINE`] is truncated for parsing: its first
//!   `MAX_PARSE_LINE` bytes, then a marker ([`TRUNCATED_MARKER`]) saying how
//!   long it was; the rest is scanned for the newline and dropped. The log
//!   file itself keeps the whole line.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// The longest line handed to an adapter whole. Longer lines are cut to this
/// and marked: orch's memory stays bounded (a parsed line costs a few times
/// its size: the line, the JSON tree, the event's copy), while no line the
/// real CLIs end a run with comes near it. Claude's `result` and
/// `assistant` lines and Codex's `agent_message` carry at most one model
/// reply, and the models' output limits (64k–128k tokens) keep a reply
/// under ~700 KiB even JSON-escaped. Lines that do get cut are tool results
/// echoing whole files or logs, which orch only shows.
pub const MAX_PARSE_LINE: usize = 1024 * 1024;

/// What a truncated line ends with (after its first `MAX_PARSE_LINE` bytes).
pub const TRUNCATED_MARKER: &str = "…[orch: line truncated for parsing";

/// Bytes read from the file per `read` call: the buffer the reader keeps.
const READ_CHUNK: usize = 64 * 1024;

/// How one [`LogTail::read_slice`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slice {
    /// Bytes read from the file.
    pub bytes: usize,
    /// Lines handed out.
    pub lines: usize,
    /// The file had no more bytes when the slice ended: the caller has caught
    /// up and may wait for more.
    pub at_end: bool,
}

/// Counters of the reader's work, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Bytes read from the file (each scanned once for its newline).
    pub bytes_read: u64,
    /// Bytes copied into the reader's own buffers (parts of lines that span
    /// two reads, truncated lines and their markers).
    pub bytes_copied: u64,
    pub lines: u64,
    /// Lines longer than `MAX_PARSE_LINE`, handed out truncated.
    pub truncated: u64,
    /// The longest truncated line, in bytes.
    pub longest_truncated: u64,
}

pub struct LogTail {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    /// Read buffer, `READ_CHUNK` bytes while a flood is read, else empty.
    buf: Vec<u8>,
    /// The start of the unfinished line (at most `MAX_PARSE_LINE` bytes).
    carry: Vec<u8>,
    /// Bytes of the unfinished line beyond `MAX_PARSE_LINE`, seen and dropped.
    dropped: u64,
    stats: TailStats,
}

impl LogTail {
    pub fn new(path: PathBuf) -> Self {
        LogTail {
            path,
            file: None,
            offset: 0,
            buf: Vec::new(),
            carry: Vec::new(),
            dropped: 0,
            stats: TailStats::default(),
        }
    }

    pub fn stats(&self) -> TailStats {
        self.stats
    }

    /// Reads at most `budget` bytes (at least one) written since the last
    /// call and hands `line` every line they complete, without its `\n`. A
    /// file that does not exist yet is empty.
    pub fn read_slice(&mut self, budget: usize, mut line: impl FnMut(&str)) -> Slice {
        let mut slice = Slice::default();
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(mut f) => {
                    if f.seek(SeekFrom::Start(self.offset)).is_err() {
                        slice.at_end = true;
                        return slice;
                    }
                    self.file = Some(f);
                }
                Err(_) => {
                    slice.at_end = true;
                    return slice;
                }
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0; READ_CHUNK];
        }
        loop {
            let want = READ_CHUNK.min(budget.saturating_sub(slice.bytes).max(1));
            let Some(f) = self.file.as_mut() else { break };
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => {
                    slice.at_end = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Try again from the same offset next time.
                    tracing::warn!(path = %self.path.display(), error = %e, "reading the run's output failed");
                    self.file = None;
                    slice.at_end = true;
                    break;
                }
            };
            self.offset += n as u64;
            self.stats.bytes_read += n as u64;
            slice.bytes += n;
            slice.lines += self.split(n, &mut line);
            if slice.bytes >= budget {
                break;
            }
        }
        if slice.at_end {
            // Caught up: the caller waits now, so give the buffer back (a
            // hundred quiet agents need not hold 64 KiB each).
            self.buf = Vec::new();
        }
        slice
    }

    /// The writer is gone: hand out a last line that has no `\n`.
    pub fn flush(&mut self, mut line: impl FnMut(&str)) {
        if !self.carry.is_empty() || self.dropped > 0 {
            self.emit_carry(&mut line);
        }
    }

    /// Skips whatever is left in the file without reading it (and drops an
    /// unfinished line); returns how many bytes were skipped.
    pub fn skip_to_end(&mut self) -> u64 {
        let len = std::fs::metadata(&self.path).map_or(self.offset, |m| m.len());
        let skipped = len.saturating_sub(self.offset);
        self.offset = self.offset.max(len);
        self.file = None;
        self.carry.clear();
        self.dropped = 0;
        skipped
    }

    /// Hands out the lines that end in `buf[..n]` and keeps the rest.
    fn split(&mut self, n: usize, line: &mut impl FnMut(&str)) -> usize {
        let mut lines = 0;
        let mut start = 0;
        while let Some(rel) = find_newline(&self.buf[start..n]) {
            let end = start + rel;
            if self.carry.is_empty() && self.dropped == 0 {
                // The common case: the whole line is in the buffer (shorter
                // than the cap, as `READ_CHUNK` is). Lent out as it is: valid
                // UTF-8 is not copied.
                let text = String::from_utf8_lossy(&self.buf[start..end]);
                line(&text);
                self.stats.lines += 1;
            } else {
                self.keep(start, end);
                self.emit_carry(line);
            }
            lines += 1;
            start = end + 1;
        }
        self.keep(start, n);
        lines
    }

    /// Adds `buf[from..to]` to the unfinished line, up to the cap.
    fn keep(&mut self, from: usize, to: usize) {
        let room = MAX_PARSE_LINE.saturating_sub(self.carry.len());
        let take = room.min(to - from);
        self.carry.extend_from_slice(&self.buf[from..from + take]);
        self.stats.bytes_copied += take as u64;
        self.dropped += (to - from - take) as u64;
    }

    fn emit_carry(&mut self, line: &mut impl FnMut(&str)) {
        if self.dropped == 0 {
            let text = String::from_utf8_lossy(&self.carry);
            line(&text);
        } else {
            let total = self.carry.len() as u64 + self.dropped;
            let kept = utf8_prefix(&self.carry);
            let mut marked = String::from_utf8_lossy(&self.carry[..kept]).into_owned();
            marked.push_str(&format!(
                "{TRUNCATED_MARKER}: {total} bytes, the first {kept} parsed; the whole line is in the log file]"
            ));
            self.stats.bytes_copied += marked.len() as u64;
            self.stats.truncated += 1;
            self.stats.longest_truncated = self.stats.longest_truncated.max(total);
            tracing::warn!(
                path = %self.path.display(),
                bytes = total,
                parsed = kept,
                "an output line longer than {MAX_PARSE_LINE} bytes was truncated for parsing"
            );
            line(&marked);
        }
        self.stats.lines += 1;
        self.carry.clear();
        if self.carry.capacity() > READ_CHUNK {
            self.carry.shrink_to(READ_CHUNK);
        }
        self.dropped = 0;
    }
}

/// The length of the longest prefix of `b` that does not end inside a UTF-8
/// sequence (a cut line must not end in half a character).
fn utf8_prefix(b: &[u8]) -> usize {
    // The start of the last character: at most 3 continuation bytes back.
    let Some(lead) = (0..b.len()).rev().take(4).find(|&i| b[i] & 0xC0 != 0x80) else {
        return b.len();
    };
    let need = match b[lead] {
        x if x < 0x80 => 1,
        x if x >> 5 == 0b110 => 2,
        x if x >> 4 == 0b1110 => 3,
        x if x >> 3 == 0b11110 => 4,
        _ => 1, // not a lead byte: invalid anyway, leave it to the lossy decode
    };
    if b.len() - lead < need { lead } else { b.len() }
}

/// The index of the first `\n` in `hay`, eight bytes at a time (the classic
/// "has a zero byte" test on `word ^ 0x0a0a…`): the scan of a 50 MiB line
/// costs a few milliseconds.
fn find_newline(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) ^ NL;
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return w.iter().position(|&b| b == b'\n').map(|p| at + p);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| at + p)
}

#[cfg(test)]
mod tests;
