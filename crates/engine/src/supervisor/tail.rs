//! Following a run's output log: new complete lines since the last read.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LogTail {
    pub fn new(path: PathBuf) -> Self {
        LogTail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Complete lines written since the last call. With `flush`, a last line
    /// without a newline is returned too (the writer is gone).
    pub fn read_lines(&mut self, flush: bool) -> Vec<String> {
        let mut buf = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.path)
            && f.seek(SeekFrom::Start(self.offset)).is_ok()
            && let Ok(n) = f.read_to_end(&mut buf)
        {
            self.offset += n as u64;
        }
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        if flush && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
        lines
    }
}
