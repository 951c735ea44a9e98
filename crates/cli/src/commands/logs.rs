//! `orch task logs ID [-f]`: the output of a task's agent runs, read from the
//! run's log file (the path the store recorded), so it works beside a running
//! `orch serve` and without the HTTP API.
//!
//! Without `-f`: the latest run's log, then exit. With `-f`: that log and what
//! is appended to it, then each later run of the task as it starts (with a
//! header line), until the task reaches a terminal stage. A gate does not end
//! the follow: the next run starts after a person acts.

use crate::args::TaskLogsArgs;
use crate::error::{CliError, CliResult};
use orch_config::Config;
use orch_core::{Run, RunId};
use orch_store::Store;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(200);

pub async fn run(cfg: &Config, a: &TaskLogsArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let task = super::task::find(store.as_ref(), &a.task).await?;
    let mut shown: Vec<RunId> = Vec::new();
    let mut out = std::io::stdout().lock();
    loop {
        let runs = store.runs_for_task(task.id).await?;
        let next = if a.follow {
            // Runs not shown yet, oldest first; at the start only the latest.
            if shown.is_empty() {
                latest(&runs).into_iter().collect::<Vec<_>>()
            } else {
                let mut new: Vec<&Run> =
                    runs.iter().filter(|r| !shown.contains(&r.run_id)).collect();
                new.sort_by_key(|r| (r.started_at, r.attempt));
                new
            }
        } else {
            latest(&runs).into_iter().collect()
        };
        for r in next {
            if a.follow || !shown.is_empty() {
                let _ = writeln!(
                    out,
                    "--- run {} ({}, attempt {}) ---",
                    r.run_id, r.agent, r.attempt
                );
            }
            shown.push(r.run_id.clone());
            copy_run(store.as_ref(), r, a.follow, &mut out).await?;
        }
        if !a.follow {
            if shown.is_empty() {
                orch_core::note!("task {} has no runs yet", task.id);
            }
            return Ok(());
        }
        let now = store
            .get_task(task.id)
            .await?
            .map(|t| t.stage)
            .unwrap_or(task.stage);
        if now.is_terminal() {
            let _ = writeln!(out, "--- task {} is {now} ---", task.id);
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn latest(runs: &[Run]) -> Option<&Run> {
    runs.iter().max_by_key(|r| (r.started_at, r.attempt))
}

/// Print the run's log; when following, keep printing what is appended until
/// the run has finished and the file is drained.
async fn copy_run(store: &dyn Store, run: &Run, follow: bool, out: &mut impl Write) -> CliResult {
    let mut offset = 0u64;
    let mut path = run.log_path.clone();
    loop {
        if let Some(p) = &path {
            offset += copy_from(p, offset, out)?;
        }
        if !follow {
            return Ok(());
        }
        let now = store.get_run(&run.run_id).await?;
        let finished = now.as_ref().is_none_or(|r| r.finished_at.is_some());
        if path.is_none() {
            path = now.and_then(|r| r.log_path);
        }
        if finished {
            // The finish was read before this last read: nothing written before it is lost.
            if let Some(p) = &path {
                copy_from(p, offset, out)?;
            }
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Copy the file from `offset` to `out`; returns the bytes copied. A file not
/// written yet is empty.
fn copy_from(path: &str, offset: u64, out: &mut impl Write) -> CliResult<u64> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(CliError::Runtime(anyhow::anyhow!(
                "cannot read the log {path}: {e}"
            )));
        }
    };
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            out.write_all(&buf)?;
            out.flush()?;
            Ok(buf.len() as u64)
        })
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("reading the log {path}: {e}")))
}
