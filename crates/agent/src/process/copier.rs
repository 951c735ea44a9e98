//! Copying one of the agent's output pipes into its log file.
//!
//! Writes end on a newline, so a reader tailing the log (the live dashboard,
//! the adapters parsing stream-json) never sees half a line unless a single line
//! outgrows [`MAX_PARTIAL`]. The bytes are copied unchanged.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

/// A line longer than this is written in pieces rather than held in memory.
pub const MAX_PARTIAL: usize = 8 * 1024 * 1024;

/// What one copier did, reported when its pipe closes.
#[derive(Debug)]
pub struct CopyDone {
    pub name: &'static str,
    pub bytes: u64,
    /// The first write error; after it the pipe is still drained (so the agent
    /// never blocks on a full pipe) but the output is lost.
    pub error: Option<io::Error>,
}

/// Copies `src` to `dst` in whole lines until EOF, then fsyncs `dst`.
pub fn copy_lines(name: &'static str, mut src: impl Read, mut dst: impl Write) -> CopyDone {
    let mut done = CopyDone {
        name,
        bytes: 0,
        error: None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut write = |data: &[u8], done: &mut CopyDone| {
        if done.error.is_none() {
            match dst.write_all(data) {
                Ok(()) => done.bytes += data.len() as u64,
                Err(e) => done.error = Some(e),
            }
        }
    };
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                done.error.get_or_insert(e);
                break;
            }
        };
        let chunk = &buf[..n];
        match chunk.iter().rposition(|&b| b == b'\n') {
            Some(last_nl) if pending.is_empty() => {
                // The common case: no carried-over partial line, write straight
                // from the read buffer.
                write(&chunk[..=last_nl], &mut done);
                pending.extend_from_slice(&chunk[last_nl + 1..]);
            }
            Some(last_nl) => {
                pending.extend_from_slice(&chunk[..=last_nl]);
                write(&pending, &mut done);
                pending.clear();
                pending.extend_from_slice(&chunk[last_nl + 1..]);
            }
            None => {
                pending.extend_from_slice(chunk);
                if pending.len() >= MAX_PARTIAL {
                    write(&pending, &mut done);
                    pending.clear();
                }
            }
        }
    }
    if !pending.is_empty() {
        write(&pending, &mut done);
    }
    if let Err(e) = dst.flush() {
        done.error.get_or_insert(e);
    }
    done
}

/// Runs [`copy_lines`] on a thread that reports to `done` and fsyncs the log.
pub fn spawn(
    name: &'static str,
    src: impl Read + Send + 'static,
    dst: File,
    done: Sender<CopyDone>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("copy-{name}"))
        // The buffers live on the heap; the thread itself needs little stack.
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut report = copy_lines(name, src, &dst);
            if let Err(e) = dst.sync_all() {
                report.error.get_or_insert(e);
            }
            // The receiver may have stopped waiting (it gives up after a
            // deadline); the report is then of no interest.
            let _ = done.send(report);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its data in fixed-size reads, splitting lines on purpose.
    struct Chunked<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Records every write call, so the test can check each ends a line.
    #[derive(Default)]
    struct Writes(std::sync::Mutex<Vec<Vec<u8>>>);

    impl Write for &Writes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_write_ends_a_line_and_bytes_are_unchanged() {
        let data = b"{\"type\":\"a\"}\n{\"type\":\"bb\"}\nlast without newline";
        for step in 1..data.len() {
            let writes = Writes::default();
            let done = copy_lines("t", Chunked { data, step }, &writes);
            assert!(done.error.is_none());
            let w = writes.0.lock().expect("lock");
            let joined: Vec<u8> = w.concat();
            assert_eq!(joined, data.to_vec(), "step {step}");
            for (i, piece) in w.iter().enumerate() {
                if i + 1 < w.len() {
                    assert_eq!(piece.last(), Some(&b'\n'), "step {step} write {i}");
                }
            }
        }
    }
}
