//! A run's life as the monitor records it: adoption after a restart, stdin,
//! output logs, start failures, and the wall and idle timeouts.

mod process_support;

use orch_agent::process::{
    CgroupMode, RunHandle, RunState, TimeoutKind, Timeouts, WatchResult, is_alive, read_exit,
    run_state, wait_exit, wait_started, watch,
};
use process_support::*;
use std::time::{Duration, Instant};

#[test]
fn a_restarted_orchestrator_adopts_the_run_and_reads_its_exit() {
    let run = TestRun::launch(
        "while [ ! -e go ]; do sleep 0.02; done\nexit 3",
        CgroupMode::Auto,
    );
    wait_started(&run.handle, DEADLINE).expect("agent started");
    // What the store keeps; everything in-process about the launch is dropped.
    let stored = (
        run.handle.run_id.clone(),
        run.handle.pid,
        run.handle.pgid,
        run.handle.proc_start_ticks,
        run.handle.run_dir.clone(),
    );
    let json = serde_json::to_string(&run.handle).expect("serialise");

    // A new orchestrator re-derives the identity from the stored fields.
    let adopted = RunHandle {
        run_id: stored.0,
        pid: stored.1,
        pgid: stored.2,
        proc_start_ticks: stored.3,
        run_dir: stored.4,
    };
    assert_eq!(
        serde_json::from_str::<RunHandle>(&json).expect("parse"),
        adopted
    );
    assert!(is_alive(&adopted));
    assert_eq!(run_state(&adopted), RunState::Running);
    assert_eq!(read_exit(&adopted.run_dir), None);

    std::fs::write(run.work().join("go"), "").expect("touch go");
    let RunState::Exited(exit) = wait_exit(&adopted, DEADLINE) else {
        panic!("run did not end");
    };
    assert_eq!(exit.exit_code, Some(3));
    assert_eq!(exit.signal, None);
    assert!(exit.finished_at >= exit.started_at);
    assert_eq!(read_exit(&adopted.run_dir), Some(exit));
    assert!(wait_for(DEADLINE, || !is_alive(&adopted)));
}

#[test]
fn stdin_is_dev_null() {
    let run = TestRun::launch(
        "cat\necho cat-done\nreadlink /proc/self/fd/0",
        CgroupMode::Off,
    );
    let RunState::Exited(exit) = wait_exit(&run.handle, DEADLINE) else {
        panic!("cat waited for input that never comes");
    };
    assert_eq!(exit.exit_code, Some(0));
    assert_eq!(run.output(), "cat-done\n/dev/null\n");
}

#[test]
fn stdout_and_stderr_go_to_their_logs_line_intact() {
    let run = TestRun::launch(
        "i=0\n\
         while [ $i -lt 2000 ]; do\n\
           echo \"{\\\"type\\\":\\\"line\\\",\\\"n\\\":$i,\\\"pad\\\":\\\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\\"}\"\n\
           if [ $((i % 100)) -eq 0 ]; then echo \"err $i\" >&2; fi\n\
           i=$((i+1))\n\
         done\n\
         printf 'no newline at the end'",
        CgroupMode::Off,
    );
    let RunState::Exited(exit) = wait_exit(&run.handle, DEADLINE) else {
        panic!("run did not end");
    };
    assert_eq!(exit.exit_code, Some(0));
    let out = run.output();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2001);
    for (i, line) in lines[..2000].iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON line");
        assert_eq!(v["n"], i);
    }
    assert_eq!(lines[2000], "no newline at the end");
    let err = std::fs::read_to_string(run.run_dir().join("stderr.log")).expect("stderr.log");
    assert_eq!(err.lines().count(), 20);
    assert!(err.lines().all(|l| l.starts_with("err ")));
}

#[test]
fn a_command_that_cannot_start_is_recorded_not_lost() {
    let root = tempfile::tempdir().expect("tempdir");
    let handle = orch_agent::process::launch(orch_agent::process::LaunchSpec {
        run_id: "no-such-agent".into(),
        run_dir: root.path().join("run"),
        cwd: root.path().to_owned(),
        argv: vec!["/nonexistent/agent".into()],
        env: Default::default(),
        monitor: monitor_command(),
        cgroup: CgroupMode::Auto,
        sandbox: None,
        limits: Default::default(),
    })
    .expect("the monitor itself starts");
    let RunState::Exited(exit) = wait_exit(&handle, DEADLINE) else {
        panic!("run did not end");
    };
    assert!(exit.spawn_error.is_some(), "{exit:?}");
    assert_eq!(
        (exit.exit_code, exit.signal, exit.agent_pid),
        (None, None, None)
    );
    assert_eq!(wait_started(&handle, Duration::from_millis(10)), None);
}

#[test]
fn a_run_folder_is_used_once() {
    let run = TestRun::launch("exit 0", CgroupMode::Off);
    assert!(matches!(
        wait_exit(&run.handle, DEADLINE),
        RunState::Exited(_)
    ));
    let again = orch_agent::process::launch(orch_agent::process::LaunchSpec {
        run_id: "again".into(),
        run_dir: run.run_dir().to_owned(),
        cwd: run.work(),
        argv: vec!["/bin/true".into()],
        env: Default::default(),
        monitor: monitor_command(),
        cgroup: CgroupMode::Off,
        sandbox: None,
        limits: Default::default(),
    });
    assert!(matches!(
        again,
        Err(orch_agent::process::ProcessError::RunDirInUse(_))
    ));
}

#[test]
fn the_wall_timeout_fires_while_output_keeps_coming() {
    let run = TestRun::launch("while :; do echo tick; sleep 0.05; done", CgroupMode::Off);
    wait_started(&run.handle, DEADLINE).expect("agent started");
    let t0 = Instant::now();
    let limits = Timeouts {
        wall: Some(Duration::from_millis(500)),
        idle: Some(Duration::from_secs(30)),
    };
    assert_eq!(
        watch(&run.handle, &limits),
        WatchResult::TimedOut(TimeoutKind::Wall)
    );
    assert!(t0.elapsed() < DEADLINE);
    assert!(
        is_alive(&run.handle),
        "a timeout only reports; the caller stops"
    );
}

#[test]
fn the_idle_timeout_fires_when_output_stops() {
    let run = TestRun::launch("echo hello\nexec sleep 1000", CgroupMode::Off);
    wait_started(&run.handle, DEADLINE).expect("agent started");
    run.wait_output("hello");
    let t0 = Instant::now();
    let limits = Timeouts {
        wall: Some(Duration::from_secs(60)),
        idle: Some(Duration::from_millis(400)),
    };
    assert_eq!(
        watch(&run.handle, &limits),
        WatchResult::TimedOut(TimeoutKind::Idle)
    );
    assert!(t0.elapsed() < DEADLINE);
}

#[test]
fn watch_reports_a_normal_exit() {
    let run = TestRun::launch("echo done\nexit 0", CgroupMode::Off);
    let limits = Timeouts {
        wall: Some(Duration::from_secs(60)),
        idle: Some(Duration::from_secs(60)),
    };
    let WatchResult::Exited(exit) = watch(&run.handle, &limits) else {
        panic!("expected an exit");
    };
    assert_eq!(exit.exit_code, Some(0));
}

#[test]
fn a_monitor_killed_outright_reads_as_lost_and_takes_the_agent_with_it() {
    let run = TestRun::launch("echo ready\nexec sleep 1000", CgroupMode::Off);
    let info = wait_started(&run.handle, DEADLINE).expect("agent started");
    run.wait_output("ready");
    let agent = proc_id(info.agent_pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.handle.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill monitor");
    assert_eq!(wait_exit(&run.handle, DEADLINE), RunState::Lost);
    // The agent's parent-death signal ends it: nothing runs unwatched.
    assert!(
        wait_for(DEADLINE, || !agent.is_alive()),
        "agent outlived its monitor"
    );
}
