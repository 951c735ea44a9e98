//! `GET /api/tasks/{id}/logs`: the task's current run log as Server-Sent
//! Events. Existing lines first, then new ones as they are written (polled
//! every 200 ms), until the run has finished and the file is drained; then
//! `event: end`. A task without a run gets `event: end` at once.
//!
//! `?run=RUN_ID` asks for that run of the task instead of the current one.
//! A run another node ran is streamed from that node (`logs_remote.rs`).
//!
//! Every line's event id is `<run id>:<byte offset after the line>`. A client
//! that reconnects (EventSource does so by itself) sends it back as
//! `Last-Event-ID` and the stream resumes after that line instead of from the
//! top: nothing is lost and nothing repeats.

use crate::error::{ApiError, ApiResult, PathParams, QueryParams};
use crate::{AppState, logs_remote, tasks};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use orch_core::{Run, RunId};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const POLL: Duration = Duration::from_millis(200);
/// At most this much of the file is read per step, so a large log streams
/// out instead of being loaded whole.
const CHUNK: u64 = 64 * 1024;
/// A line longer than this is sent in pieces.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// This run of the task; absent: the current one.
    run: Option<String>,
}

pub async fn logs(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(p): QueryParams<LogParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let task = tasks::find(s.store(), &id).await?;
    let runs = s.store().runs_for_task(task.id).await?;
    let run = match p.run {
        Some(wanted) => Some(
            runs.into_iter()
                .find(|r| r.run_id.0 == wanted)
                .ok_or_else(|| ApiError::not_found(format!("task {id} has no run {wanted}")))?,
        ),
        None => current_run(runs),
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(run) = &run
        && let Some(holder) = logs_remote::holder(&s, run, &headers).await
    {
        let key = task.id.to_string();
        match logs_remote::stream_from(&s, (&holder.0, &holder.1), run, &key, last.as_deref()).await
        {
            Ok(resp) => return Ok(resp),
            // The same disk may still hold it (a node renamed on this machine).
            Err(why) if !log_here(run).await => {
                return Ok(logs_remote::unreachable_answer(run, &why));
            }
            Err(why) => tracing::info!(run = %run.run_id, error = %why.0, "reading the log here"),
        }
    }
    let mut tail = LogTail::new(s, run);
    if let Some(last) = &last {
        tail.resume(last);
    }
    let stream = futures_util::stream::unfold(tail, |mut t| async move {
        let ev = t.next().await?;
        Some((Ok::<Event, Infallible>(ev), t))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Whether this machine has the run's log file.
async fn log_here(run: &Run) -> bool {
    match &run.log_path {
        Some(p) => tokio::fs::try_exists(p).await.unwrap_or(false),
        None => false,
    }
}

/// The run a viewer wants: the latest started (the last attempt on a tie).
fn current_run(runs: Vec<Run>) -> Option<Run> {
    runs.into_iter()
        .max_by_key(|r| (r.started_at, r.attempt, r.finished_at.is_none()))
}

/// Follows one run's log file.
struct LogTail {
    s: AppState,
    run: Option<RunId>,
    path: Option<PathBuf>,
    offset: u64,
    /// Bytes of the file consumed so far (sent, or waiting in `partial`).
    pos: u64,
    /// Bytes after the last newline, waiting for the rest of their line.
    partial: Vec<u8>,
    pending: VecDeque<Event>,
    done: bool,
}

impl LogTail {
    fn new(s: AppState, run: Option<Run>) -> LogTail {
        let path = run
            .as_ref()
            .and_then(|r| r.log_path.clone())
            .map(PathBuf::from);
        LogTail {
            s,
            run: run.map(|r| r.run_id),
            path,
            offset: 0,
            pos: 0,
            partial: Vec::new(),
            pending: VecDeque::new(),
            done: false,
        }
    }

    /// Start after the line a previous stream of the same run sent last.
    /// An id of another run (a new attempt started) starts from the top.
    fn resume(&mut self, last_event_id: &str) {
        let Some((run, offset)) = last_event_id.rsplit_once(':') else {
            return;
        };
        if let (Some(current), Ok(offset)) = (&self.run, offset.parse::<u64>())
            && current.0 == run
        {
            self.offset = offset;
            self.pos = offset;
        }
    }

    /// The next event; `None` once `end` was sent (or the server is closing).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(ev);
            }
            if self.done || self.s.is_closing() {
                return None;
            }
            self.step().await;
        }
    }

    /// One poll: queue what the file has new; when it has nothing, end if
    /// the run has finished, else wait.
    async fn step(&mut self) {
        let Some(run_id) = self.run.clone() else {
            return self.end(None);
        };
        match self.read_more().await {
            Ok(0) => {}
            Ok(_) => return, // more may be there already: no wait
            Err(e) => return self.end(Some(format!("reading the log failed: {e}"))),
        }
        let run = match self.s.store().get_run(&run_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return self.end(Some(format!("run {run_id} no longer exists"))),
            Err(e) => return self.end(Some(format!("reading the run failed: {e}"))),
        };
        if self.path.is_none() {
            self.path = run.log_path.map(PathBuf::from);
        }
        if run.finished_at.is_none() {
            return self.sleep().await;
        }
        // The finish was read BEFORE this last read of the file, so every byte
        // written before the run finished is sent before `end`.
        match self.read_more().await {
            Ok(0) => {
                self.flush_partial();
                self.end(None);
            }
            Ok(_) => {}
            Err(e) => self.end(Some(format!("reading the log failed: {e}"))),
        }
    }

    /// Read what is new in the file (at most `CHUNK`) into events.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let bytes = read_from(path, self.offset).await?;
        self.offset += bytes.len() as u64;
        self.push_bytes(&bytes);
        Ok(bytes.len())
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            self.pos += piece.len() as u64;
            if let Some(line) = piece.strip_suffix(b"\n") {
                self.partial.extend_from_slice(line);
                self.flush_partial();
            } else {
                self.partial.extend_from_slice(piece);
                if self.partial.len() >= MAX_LINE {
                    self.flush_partial();
                }
            }
        }
    }

    fn flush_partial(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.partial);
        let line = String::from_utf8_lossy(&bytes);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        let mut ev = Event::default().data(line);
        if let Some(run) = &self.run {
            ev = ev.id(format!("{run}:{}", self.pos));
        }
        self.pending.push_back(ev);
    }

    fn end(&mut self, error: Option<String>) {
        if let Some(e) = error {
            tracing::warn!(error = %e, "log stream ended early");
            self.pending
                .push_back(Event::default().event("error").data(e));
        }
        self.pending
            .push_back(Event::default().event("end").data("end of log"));
        self.done = true;
    }

    async fn sleep(&self) {
        let mut closing = self.s.closing.clone();
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            // A dropped sender (no graceful shutdown wired) never closes.
            Ok(()) = closing.changed() => {}
        }
    }
}

/// Up to `CHUNK` bytes of the file from `offset`; a file not written yet is empty.
async fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset)).await?;
    let mut buf = Vec::new();
    f.take(CHUNK).read_to_end(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.log");
        assert!(read_from(&p, 0).await.unwrap().is_empty());
        std::fs::write(&p, b"one\ntwo\n").unwrap();
        assert_eq!(read_from(&p, 0).await.unwrap(), b"one\ntwo\n");
        assert_eq!(read_from(&p, 4).await.unwrap(), b"two\n");
        assert!(read_from(&p, 8).await.unwrap().is_empty());
        let big = vec![b'x'; CHUNK as usize + 10];
        std::fs::write(&p, &big).unwrap();
        assert_eq!(read_from(&p, 0).await.unwrap().len() as u64, CHUNK);
    }
}
