//! `orch status`: the queue snapshot of R-36, as a table or JSON.

use crate::args::StatusArgs;
use crate::error::{CliError, CliResult};
use crate::output::out;
use crate::render::{ago, print_json};
use orch_config::Config;
use orch_engine::status::{QueueSnapshot, StatusPolicy, snapshot};
use std::io::{IsTerminal, Write};

pub async fn run(cfg: &Config, a: &StatusArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let Some(every) = a.watch else {
        let snap = with_config(snapshot(store.as_ref(), &StatusPolicy::of(cfg)).await, cfg);
        if a.json {
            print_json(&snap)?;
        } else {
            out!("{}", human(&snap));
        }
        return Ok(());
    };
    if !(every.is_finite() && every >= 0.1) {
        return Err(CliError::Usage(format!(
            "--watch {every}: give the interval in seconds, at least 0.1"
        )));
    }
    // On a terminal the board is redrawn in place; into a pipe or file each
    // snapshot is appended (JSON: one object per line), so nothing is garbled.
    let tty = std::io::stdout().is_terminal();
    loop {
        let snap = with_config(snapshot(store.as_ref(), &StatusPolicy::of(cfg)).await, cfg);
        let text = if a.json {
            format!("{}\n", serde_json::to_string(&snap).unwrap_or_default())
        } else {
            format!("{}\n", human(&snap))
        };
        let mut out = std::io::stdout().lock();
        let written = if tty {
            writeln!(out, "\x1b[H\x1b[2J{text}(every {every}s; Ctrl-C to stop)")
        } else {
            write!(out, "{text}")
        };
        if written.and_then(|_| out.flush()).is_err() {
            return Ok(()); // the reader went away (a closed pipe)
        }
        drop(out);
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs_f64(every)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The running `orch serve`'s configuration state, from the file it keeps
/// in the data folder; nothing when no engine runs there (a killed one may
/// have left the file).
fn with_config(mut snap: QueueSnapshot, cfg: &Config) -> QueueSnapshot {
    let dir = cfg.data_dir();
    if crate::engine_link::engine_runs_on(&dir).unwrap_or(false) {
        snap.config = orch_engine::live_config::read_status_file(&dir);
    }
    snap
}

/// The configuration lines of `orch status`: only what needs a person.
fn config_lines(c: &orch_engine::live_config::ReloadStatus) -> String {
    let mut out = String::new();
    if let Some(e) = &c.error {
        out += &format!(
            "config: the last edit was NOT applied; orch serve keeps generation {} (applied {}):\n  {}\n",
            c.generation,
            ago(orch_core::Timestamp(c.applied_at)),
            e.replace('\n', "\n  ")
        );
    }
    if !c.restart_needed.is_empty() {
        out += &format!(
            "config: changed sections that apply after a restart: {}\n",
            c.restart_needed.join(", ")
        );
    }
    out
}

fn human(s: &QueueSnapshot) -> String {
    let mut out = s.config.as_ref().map(config_lines).unwrap_or_default();
    let list = |m: Vec<(String, u64)>| {
        m.into_iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let degraded = |e: &Option<String>| {
        e.as_ref()
            .map(|e| format!("  (unavailable: {e})"))
            .unwrap_or_default()
    };
    out += &format!(
        "jobs:    {}{}\n",
        list(
            s.counts
                .jobs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        ),
        degraded(&s.counts.error)
    );
    let tasks: Vec<_> = s
        .counts
        .tasks
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    out += &format!(
        "tasks:   {}\n",
        if tasks.is_empty() {
            "none".into()
        } else {
            list(tasks)
        }
    );
    out += &format!(
        "serial gate ({}):{}",
        on(s.serial_gate.enabled),
        degraded(&s.serial_gate.error)
    );
    if s.serial_gate.leases.is_empty() {
        out += " no merge lease held\n";
    } else {
        out += "\n";
        for l in &s.serial_gate.leases {
            out += &format!(
                "  {} held by task {} ({}), epoch {}\n",
                l.repo, l.task_id, l.branch, l.epoch
            );
        }
    }
    out += &format!(
        "dependencies ({}):{}",
        on(s.task_deps.enabled),
        degraded(&s.task_deps.error)
    );
    if s.task_deps.waiting.is_empty() {
        out += " nothing waiting\n";
    } else {
        out += "\n";
        for w in &s.task_deps.waiting {
            let on: Vec<String> = w.waiting_on.iter().map(|t| t.to_string()).collect();
            out += &format!("  task {} waits for {}\n", w.task_id, on.join(", "));
        }
    }
    out += &format!("auto labels: {}\n", on(s.auto_labels.enabled));
    let t = &s.tracker_outbox;
    out += &format!(
        "tracker writes: {} waiting · {} retrying · {} given up{}{}\n",
        t.waiting,
        t.retrying,
        t.given_up,
        if t.given_up > 0 {
            " (`orch outbox list`, `orch outbox retry`)"
        } else {
            ""
        },
        degraded(&t.error)
    );
    let scope = if s.stop.repos.is_empty() {
        "all repos".to_owned()
    } else {
        s.stop.repos.join(", ")
    };
    out += &format!(
        "stop ({}, {}): {} cancelled{}\n",
        on(s.stop.enabled),
        scope,
        s.stop.cancelled_count,
        degraded(&s.stop.error)
    );
    out += &format!("recent events:{}\n", degraded(&s.recent.error));
    if s.recent.events.is_empty() {
        out += "  none\n";
    }
    for e in &s.recent.events {
        let stages = match (e.from_stage, e.to_stage) {
            (Some(a), Some(b)) => format!(" {a} → {b}"),
            (None, Some(b)) => format!(" → {b}"),
            _ => String::new(),
        };
        out += &format!(
            "  {:>8}  task {}  {}{}  by {}  {}\n",
            ago(e.at),
            e.task_id,
            e.kind,
            stages,
            e.actor,
            e.message
        );
    }
    out
}
