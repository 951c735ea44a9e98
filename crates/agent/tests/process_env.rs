//! The agent sees exactly the environment it was given: nothing of the
//! orchestrator's own environment, secrets included, reaches it.
//!
//! Alone in its file because it changes the test process's environment.

mod process_support;

use orch_agent::process::{CgroupMode, RunState, wait_exit};
use process_support::*;
use std::collections::BTreeMap;

const SECRET_NAME: &str = "ORCH_TEST_SECRET_TOKEN";
const SECRET_VALUE: &str = "s3cr3t-value-that-must-not-leak";

#[test]
fn the_agent_never_sees_variables_outside_its_env_map() {
    // SAFETY: this is the only test in this binary and it sets the variable
    // before starting any thread or process, so nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var(SECRET_NAME, SECRET_VALUE) };

    let env = BTreeMap::from([("ORCH_GIVEN".to_owned(), "given value".to_owned())]);
    let run = TestRun::launch_with("env > env.txt", CgroupMode::Off, env, |_| {});
    let RunState::Exited(exit) = wait_exit(&run.handle, DEADLINE) else {
        panic!("run did not end");
    };
    assert_eq!(exit.exit_code, Some(0));

    let dumped = std::fs::read_to_string(run.work().join("env.txt")).expect("env dump");
    assert!(!dumped.contains(SECRET_NAME), "{dumped}");
    assert!(!dumped.contains(SECRET_VALUE), "{dumped}");
    assert!(
        dumped.lines().any(|l| l == "ORCH_GIVEN=given value"),
        "{dumped}"
    );
    assert!(
        dumped.lines().any(|l| l == "PATH=/usr/bin:/bin"),
        "{dumped}"
    );
    // Only what we gave, plus what the shell itself defines (PWD).
    for line in dumped.lines() {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            ["ORCH_GIVEN", "PATH", "PWD", "SHLVL", "OLDPWD", "_"].contains(&name),
            "unexpected variable {name} in {dumped}"
        );
    }
    // The env file carrying the values is gone once the monitor read it.
    assert!(!run.run_dir().join("agent.env").exists());
    // Nor does anything leak to the monitor's own command line or log.
    let log = std::fs::read_to_string(run.run_dir().join("monitor.log")).unwrap_or_default();
    assert!(!log.contains(SECRET_VALUE));
}
