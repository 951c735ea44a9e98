//! `orch`: the command-line face of the orchestrator. Parses, calls one
//! function, renders; the work happens in the library crates.

mod args;
mod commands;
mod engine_link;
mod error;
mod examples;
mod http;
mod mcp;
mod output;
mod progress;
mod render;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `orch monitor` owns one agent's process tree (see orch_agent::process). It
    // runs before clap and tokio: it blocks signals and waits on them, and a
    // signal mask is per thread, so no runtime threads may exist in it.
    let mut argv = std::env::args_os();
    if argv.nth(1).is_some_and(|a| a == "monitor") {
        return match orch_agent::process::MonitorArgs::parse(argv) {
            Ok(args) => ExitCode::from(orch_agent::process::run_monitor(args).clamp(0, 255) as u8),
            Err(e) => {
                orch_core::note!("orch monitor: {e}");
                ExitCode::from(2)
            }
        };
    }
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            orch_core::note!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            orch_core::note!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
