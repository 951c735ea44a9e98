//! `orch-monitor`: the run monitor as a standalone binary, for tests and for
//! running one agent by hand. The `orch monitor` subcommand calls the same
//! entry point.

use orch_agent::process::{MonitorArgs, run_monitor};

fn main() {
    let code = match MonitorArgs::parse(std::env::args_os().skip(1)) {
        Ok(args) => run_monitor(args),
        Err(e) => {
            eprintln!("orch-monitor: {e}");
            2
        }
    };
    std::process::exit(code);
}
