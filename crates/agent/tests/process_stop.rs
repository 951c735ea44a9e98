//! STOP ends every process of a run — the agent, its children, and processes
//! that escaped into their own session — and never signals a reused pid.

mod process_support;

use orch_agent::process::{
    CgroupMode, Identity, Refusal, RunHandle, RunState, SignalTarget, StopPolicy, StopSignal,
    is_alive, read_exit, stop, wait_exit, wait_started,
};
use orch_core::RunId;
use process_support::*;
use std::time::Duration;

fn short(grace_ms: u64) -> StopPolicy {
    StopPolicy {
        grace_int: Duration::from_millis(grace_ms),
        grace_term: Duration::from_millis(grace_ms),
        kill_wait: Duration::from_secs(5),
    }
}

#[test]
fn stop_kills_the_agent_and_its_grandchildren() {
    let mut run = TestRun::launch(
        "sleep 1000 &\n\
         echo $! > bg.pid\n\
         sh -c 'sleep 1000 & echo $! > grand.pid; wait' &\n\
         echo ready\n\
         wait",
        CgroupMode::Off,
    );
    let info = wait_started(&run.handle, DEADLINE).expect("agent started");
    let agent = proc_id(info.agent_pid);
    run.track(agent);
    let bg = run.wait_pid_file("bg.pid");
    let grand = run.wait_pid_file("grand.pid");
    run.wait_output("ready");

    let report = stop(&run.handle, &short(2_000), "test").expect("stop");

    assert!(report.all_gone, "{report:#?}");
    assert!(report.refused.is_none());
    assert_eq!(
        report.signals.first().map(|s| (s.signal, s.target.clone())),
        Some((
            StopSignal::Int,
            SignalTarget::AgentGroup {
                pgid: info.agent_pid
            }
        )),
        "{report:#?}"
    );
    assert_gone(&[agent, bg, grand, run.handle.monitor()]);
    assert!(!is_alive(&run.handle));
    let exit = read_exit(run.run_dir()).expect("exit.json written");
    assert_eq!(exit.agent_pid, Some(info.agent_pid));
    assert!(
        exit.exit_code.is_some() || exit.signal.is_some(),
        "{exit:?}"
    );
}

#[test]
fn an_agent_ignoring_int_and_term_is_killed_at_the_grace() {
    let mut run = TestRun::launch(
        "trap '' INT TERM\n\
         sleep 1000 &\n\
         echo $! > bg.pid\n\
         echo ready\n\
         wait",
        CgroupMode::Off,
    );
    let info = wait_started(&run.handle, DEADLINE).expect("agent started");
    run.track(proc_id(info.agent_pid));
    let bg = run.wait_pid_file("bg.pid");
    run.wait_output("ready");

    let report = stop(&run.handle, &short(300), "test").expect("stop");

    assert!(report.all_gone, "{report:#?}");
    let sent: Vec<StopSignal> = report.signals.iter().map(|s| s.signal).collect();
    assert!(sent.contains(&StopSignal::Int), "{sent:?}");
    assert!(sent.contains(&StopSignal::Term), "{sent:?}");
    assert!(sent.contains(&StopSignal::Kill), "{sent:?}");
    // Both graces were waited out before SIGKILL.
    let kill_at = report
        .signals
        .iter()
        .find(|s| s.signal == StopSignal::Kill)
        .expect("kill sent")
        .after;
    assert!(kill_at >= Duration::from_millis(600), "{kill_at:?}");
    assert_gone(&[proc_id_or_gone(info.agent_pid), bg]);
    let exit = read_exit(run.run_dir()).expect("exit.json written");
    assert_eq!(exit.signal, Some(9), "{exit:?}");
}

/// The agent may already be gone (and its pid unused) by the time we look.
fn proc_id_or_gone(pid: i32) -> orch_agent::process::ProcId {
    orch_agent::process::ProcId {
        pid,
        start_ticks: orch_agent::process::procfs::start_ticks(pid)
            .ok()
            .flatten()
            .unwrap_or(0),
    }
}

#[test]
fn a_stale_start_time_means_no_signal_is_sent() {
    let child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep");
    let mut child = ChildGuard(child);
    let pid = child.0.id() as i32;
    let real = proc_id(pid);
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = RunHandle {
        run_id: RunId::from("stale"),
        pid,
        pgid: pid,
        proc_start_ticks: real.start_ticks + 1,
        run_dir: dir.path().to_owned(),
    };

    assert!(!is_alive(&handle));
    let report = stop(&handle, &short(100), "test").expect("stop");

    assert_eq!(
        report.refused,
        Some(Refusal::PidReused {
            pid,
            recorded_ticks: real.start_ticks + 1,
            current_ticks: real.start_ticks,
        })
    );
    assert!(report.signals.is_empty());
    assert!(!report.all_gone);
    assert_eq!(real.identity(), Identity::Alive);
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "the process must still run"
    );
    assert!(!dir.path().join("stop.json").exists());
}

fn escaped_descendants_are_killed(cgroup: CgroupMode) {
    let mut run = TestRun::launch(
        "setsid ./escape.sh escaped.pid &\n\
         ( setsid ./escape.sh orphan.pid & )\n\
         sleep 1000 &\n\
         echo ready\n\
         wait",
        cgroup,
    );
    let info = wait_started(&run.handle, DEADLINE).expect("agent started");
    run.track(proc_id(info.agent_pid));
    let escaped = run.wait_pid_file("escaped.pid");
    let orphan = run.wait_pid_file("orphan.pid");
    run.wait_output("ready");
    // They really left the run's session, and the orphan's parent exited.
    assert_ne!(stat_field(escaped.pid, 6), i64::from(run.handle.pid));
    assert_ne!(stat_field(orphan.pid, 6), i64::from(run.handle.pid));
    assert!(
        wait_for(DEADLINE, || stat_field(orphan.pid, 4)
            == i64::from(run.handle.pid)),
        "the orphan was re-parented to the monitor (subreaper)"
    );
    if cgroup == CgroupMode::Auto && cgroups_available() {
        assert!(info.cgroup.is_some(), "cgroup expected on this machine");
    }

    let report = stop(&run.handle, &short(2_000), "test").expect("stop");

    assert!(report.all_gone, "{report:#?}");
    assert!(
        report.pids.contains(&escaped.pid) || !escaped.is_alive(),
        "{report:#?}"
    );
    assert_gone(&[escaped, orphan, run.handle.monitor()]);
    assert_eq!(report.used_cgroup, info.cgroup.is_some());
    if let Some(cg) = &info.cgroup {
        assert!(!cg.exists(), "run cgroup removed");
    }
}

#[test]
fn stop_kills_descendants_that_escaped_into_their_own_session() {
    escaped_descendants_are_killed(CgroupMode::Off);
}

#[test]
fn stop_kills_escaped_descendants_through_the_cgroup_where_available() {
    escaped_descendants_are_killed(CgroupMode::Auto);
}

#[test]
fn the_monitor_ends_what_the_agent_left_behind_when_it_exits() {
    let mut run = TestRun::launch(
        "setsid ./escape.sh escaped.pid &\n\
         while [ ! -s escaped.pid ]; do sleep 0.01; done\n\
         exit 0",
        CgroupMode::Off,
    );
    let escaped = run.wait_pid_file("escaped.pid");
    let RunState::Exited(exit) = wait_exit(&run.handle, DEADLINE) else {
        panic!("run did not end");
    };
    assert_eq!(exit.exit_code, Some(0));
    assert!(exit.strays_killed >= 1, "{exit:?}");
    assert_gone(&[escaped]);
}

#[test]
fn the_monitor_forwards_sigterm_to_the_agent_and_records_it() {
    let run = TestRun::launch("echo ready\nexec sleep 1000", CgroupMode::Off);
    wait_started(&run.handle, DEADLINE).expect("agent started");
    run.wait_output("ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.handle.pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal monitor");
    let RunState::Exited(exit) = wait_exit(&run.handle, DEADLINE) else {
        panic!("run did not end");
    };
    assert_eq!(exit.signal, Some(15), "{exit:?}");
    assert_eq!(exit.forwarded_signals, vec![15]);
    assert!(
        wait_for(DEADLINE, || !is_alive(&run.handle)),
        "monitor exits after recording"
    );
}

#[test]
fn a_stop_right_after_launch_still_ends_everything() {
    let run = TestRun::launch("exec sleep 1000", CgroupMode::Off);
    let report = stop(&run.handle, &short(2_000), "test").expect("stop");
    assert!(report.all_gone, "{report:#?}");
    assert!(!is_alive(&run.handle));
    if let Some(info) = orch_agent::process::read_monitor_info(run.run_dir()) {
        assert_gone(&[proc_id_or_gone(info.agent_pid)]);
    }
}

#[test]
fn stopping_a_finished_run_is_a_no_op() {
    let run = TestRun::launch("exit 0", CgroupMode::Off);
    assert!(matches!(
        wait_exit(&run.handle, DEADLINE),
        RunState::Exited(_)
    ));
    assert!(wait_for(DEADLINE, || !is_alive(&run.handle)));
    let report = stop(&run.handle, &short(100), "test").expect("stop");
    assert!(report.all_gone && report.already_gone, "{report:#?}");
    assert!(report.signals.is_empty(), "{report:#?}");
    assert_eq!(report.exit.and_then(|e| e.exit_code), Some(0));
}

#[test]
fn an_agent_that_handles_sigint_gets_only_sigint() {
    let run = TestRun::launch(
        "trap 'echo got-int; exit 7' INT\n\
         echo ready\n\
         while :; do sleep 0.1; done",
        CgroupMode::Off,
    );
    wait_started(&run.handle, DEADLINE).expect("agent started");
    run.wait_output("ready");

    let report = stop(&run.handle, &short(5_000), "test").expect("stop");

    assert!(report.all_gone, "{report:#?}");
    let sent: Vec<StopSignal> = report.signals.iter().map(|s| s.signal).collect();
    assert_eq!(sent, vec![StopSignal::Int], "{report:#?}");
    assert!(report.elapsed < Duration::from_secs(5), "{report:#?}");
    let exit = report.exit.expect("exit.json written");
    assert_eq!(exit.exit_code, Some(7), "{exit:?}");
    assert!(run.output().contains("got-int"));
}
