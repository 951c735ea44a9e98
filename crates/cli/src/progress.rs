//! Progress for long commands (`orch quickstart`): timestamped lines, plus a
//! live spinner with the current state when stdout is a terminal. Into a pipe
//! or a file only the plain lines are written, so logs are never garbled by
//! redraws.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    started: Instant,
    spinner: Option<ProgressBar>,
}

impl Progress {
    pub fn new(started: Instant) -> Progress {
        let spinner = std::io::stdout().is_terminal().then(|| {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
                pb.set_style(style);
            }
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Progress { started, spinner }
    }

    /// A line that stays: printed above the spinner on a terminal.
    pub fn say(&self, msg: &str) {
        let line = format!("[{:>5.1}s] {msg}", self.started.elapsed().as_secs_f64());
        match &self.spinner {
            Some(pb) => pb.println(line),
            None => crate::output::progress(&line),
        }
    }

    /// What is going on now; shown only on a terminal.
    pub fn status(&self, msg: String) {
        if let Some(pb) = &self.spinner {
            pb.set_message(msg);
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.spinner {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
