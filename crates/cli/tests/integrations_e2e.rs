//! End to end with Plane and Gitea: the `orch` binary (`orch serve`) against
//! the in-process fakes of both (wiremock over models built from the reference
//! payloads; Gitea's over a real bare repository). Webhooks are signed and
//! posted to the real routes over loopback.
//!
//! - a Plane item moved to To Analyse runs the pipeline to a merged Gitea pull
//!   request and Done on Plane, with comments, through 429 and 500 storms;
//! - STOP from Plane cancels a running task (TC-01 through the webhook route);
//! - webhooks lost on purpose are repaired by the reconciler;
//! - Plane state names that differ from the config in case ("Stop", "to
//!   analyse") work, a state that maps to nothing is shown on the task and
//!   counted, and names that collide under that rule fail `orch doctor`;
//! - tasks are keyed by Plane's `<PROJECT IDENTIFIER>-<sequence_id>`;
//! - the approval request links the analysis, pushed when analysis ends, on
//!   Gitea and the task page; a rejection made in Plane with a comment
//!   reaches the analyst's prompt.

mod common;

use common::ORCH;
use common::count_events as events;
use common::tracker_world::{Site, demo_toml, git_as_person as git, no_proxy};
use common::world::World;
use orch_integrations::fakes::{FakeGitea, FakePlane};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PLANE_KEY: &str = "plane_api_e2e";
const PLANE_SECRET: &str = "plane_wh_e2e_secret";
const GITEA_TOKEN: &str = "gitea-e2e-token";
const PROJECT: &str = "59e3be42-87ec-4950-99a3-ae639cf2b089";

/// Plane the tracker, Gitea the forge.
type Plane = World<FakePlane, FakeGitea>;

async fn world(agent_delay: u32) -> Plane {
    let mut states: Vec<String> = orch_config::TrackerStates::default()
        .entries()
        .iter()
        .map(|(_, n)| n.to_string())
        .collect();
    states.push("Backlog".into());
    world_with_states(agent_delay, &states).await
}

/// A world whose Plane project has these states; the example agents take
/// `agent_delay` seconds.
async fn world_with_states(agent_delay: u32, states: &[String]) -> Plane {
    // The repository behind the fake Gitea (a bare remote with main), and
    // the example agents.
    let site = Site::new();
    let plane = FakePlane::start("acme", PLANE_KEY).await;
    let refs: Vec<&str> = states.iter().map(String::as_str).collect();
    plane.add_project(PROJECT, &refs);
    plane.set_identifier(PROJECT, "DEMO");
    let gitea = FakeGitea::start("acme/demo", GITEA_TOKEN, &site.bare).await;
    let w = World::new(ORCH, site, plane, PLANE_SECRET).with_forge(gitea, "gitea-secret");
    let demo = demo_toml().replace(
        "ORCH_EXAMPLE_DELAY = \"0\"",
        &format!("ORCH_EXAMPLE_DELAY = \"{agent_delay}\""),
    );
    w.site.write_config(&format!(
        "{demo}[stop]\ngrace_int_secs = 2\ngrace_term_secs = 2\n\
         [tracker]\nkind = \"plane\"\n[tracker.plane]\nbase_url = \"{}\"\nworkspace = \"acme\"\nproject_ids = [\"{PROJECT}\"]\n\
         [forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
        w.tracker.uri(),
        w.forge.uri(),
    ));
    w
}

fn start(w: &mut Plane) {
    w.start(&[
        ("ORCH_PLANE_API_KEY", PLANE_KEY),
        ("ORCH_PLANE_WEBHOOK_SECRET", PLANE_SECRET),
        ("ORCH_GITEA_TOKEN", GITEA_TOKEN),
        ("ORCH_GITEA_WEBHOOK_SECRET", "gitea-secret"),
    ]);
}

/// `GET path` with the API token; the answer's body.
fn get(w: &Plane, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", w.site.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer api-token\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "GET {path}: {out}");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The analyst's run of `item` once its process is recorded (pid and start
/// time): the task's id and the pid.
async fn analyst_started(w: &Plane, item: &str, what: &str) -> (String, i64) {
    let key = w.key(item);
    w.until(
        &key,
        || {
            let v = w.show(&key)?;
            let pid = v["runs"].as_array()?.first()?["pid"].as_i64()?;
            Some((v["task"]["id"].to_string(), pid))
        },
        || format!("{what} never started the analyst"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plane_item_runs_to_a_merged_gitea_pull_request_and_done_through_storms() {
    let mut w = world(0).await;
    start(&mut w);
    let item = w.tracker.add_item(PROJECT, "Add a greeting", "Backlog");
    assert_eq!(w.move_to(&item, "To Analyse"), 202);
    w.wait_for_state(&item, "Awaiting Approval").await;
    // A person approves; Plane then rate-limits orch for a while and Gitea has an outage.
    let approve = w.person_moves(&item, "Approved");
    assert_eq!(w.deliver_new(&approve), 202);
    assert_eq!(w.deliver_new(&approve), 200, "the replay is a no-op");
    w.tracker.fail_next(429, 5);
    // Gitea's outage: the status call, the merge gate's read of the base
    // branch (its protection's required checks) and the first try of the
    // merge itself fail, 4 attempts each; the gate looks again, the tick
    // retries the merge, which then lands. Opening the pull request when
    // development ends fails once too (noted; the next round's push opens it).
    w.forge.fail_on("/statuses/", 500, 4);
    w.forge.fail_on("/branches/main", 500, 4);
    w.forge.fail_on("/pulls", 500, 4);
    w.forge.fail_on("/merge", 500, 4);
    w.wait_for_state(&item, "Done").await;
    let key = w.key(&item);
    let v = w.wait_for_stage(&key, "done").await;
    assert_eq!(events(&v, "merged"), 1, "merged exactly once");
    assert_eq!(events(&v, "cancelled"), 0);
    // The merge went through a Gitea pull request of the task's branch.
    let prs = w.forge.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert!(
        prs[0].merged && prs[0].head.starts_with(&format!("feature/{key}-")),
        "the branch is named by Plane's key ({key}), not the item's uuid: {prs:?}"
    );
    assert_eq!(v["task"]["tracker_id"], item.as_str());
    let bare = w.dir().join("remotes/demo.git");
    let file = git(&bare, &["show", &format!("main:work/{key}.md")]);
    assert!(file.contains("Tests: added"), "{file}");
    // The storm ate the commit status (the first Gitea call of the merge):
    // noted on the task, and the merge went on regardless.
    let forge_errors: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "forge_error")
        .collect();
    assert!(
        forge_errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("commit status")),
        "{forge_errors:?}"
    );
    assert!(
        forge_errors.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("opening the pull request")),
        "{forge_errors:?}"
    );
    // The base's protection could not be read: the merge waited (never a
    // merge past an unknown requirement) and said why.
    let waited: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "ci_pending")
        .collect();
    assert!(
        waited.len() == 1
            && waited[0]["message"]
                .as_str()
                .unwrap()
                .contains("the protection of main could not be read"),
        "{waited:?}"
    );
    // The merge step's own failure (an outage: transient) is on the log
    // once as a failed attempt, and the step was tried again after a backoff.
    let failed: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "merge_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{:#}", v["events"]);
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("attempt 1 of 5; tried again in"),
        "{failed:?}"
    );
    // The branch is gone; main is not.
    assert!(git(&bare, &["branch", "--list", "feature/*"]).is_empty());
    // Comments on the item, each once.
    let comments = w.tracker.comments(&item);
    assert!(
        comments.iter().any(|c| c.contains("started the analysis")),
        "{comments:?}"
    );
    assert!(
        comments.iter().any(|c| c.contains("merged")),
        "{comments:?}"
    );
    // The storms happened and were waited out.
    let reqs = w.tracker.requests();
    assert!(reqs.len() > 10, "{}", reqs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc01_stop_from_plane_cancels_a_running_task_through_the_webhook_route() {
    // Agents take 30 s, so the STOP lands while the analyst runs.
    let mut w = world(30).await;
    start(&mut w);
    let item = w.tracker.add_item(PROJECT, "Long analysis", "Backlog");
    assert_eq!(w.move_to(&item, "To Analyse"), 202);
    // Wait until the analyst's process is recorded (pid and start time).
    let (task_id, pid) = analyst_started(&w, &item, "To Analyse").await;
    let started = Instant::now();
    assert_eq!(w.move_to(&item, "STOP"), 202);
    // After the cancel the item's key is tombstoned (TC-13): look up by task id.
    let v = w.wait_for_stage(&task_id, "cancelled").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancelled without waiting for the 30 s agent: {:?}",
        started.elapsed()
    );
    assert_eq!(events(&v, "merged"), 0);
    // The agent's process is gone (SIGINT to its group, then TERM, then KILL).
    let alive = |pid: i64| {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    let end = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(
            Instant::now() < end,
            "the analyst (pid {pid}) survived the STOP"
        );
        // A process ending: the kernel's news, no engine signal.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.wait_for_state(&item, "Cancelled").await;
    // A later STOP delivery for the same item is harmless.
    assert_eq!(w.move_to(&item, "Backlog"), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_webhooks_are_repaired_by_the_reconciler() {
    let mut w = world(0).await;
    start(&mut w);
    let item = w.tracker.add_item(PROJECT, "Nobody told orch", "Backlog");
    // Moved in Plane, but the delivery never arrives.
    let _lost = w.person_moves(&item, "To Analyse");
    w.wait_for_state(&item, "Awaiting Approval").await;
    let _lost = w.person_moves(&item, "Approved");
    w.wait_for_state(&item, "Done").await;
    let v = w.wait_for_stage(&w.key(&item), "done").await;
    assert_eq!(events(&v, "merged"), 1);
    assert!(
        w.log().contains("reconciled with the tracker"),
        "{}",
        w.log()
    );
    // Without a storm, the verified head gets orch's commit status on Gitea.
    let prs = w.forge.prs();
    let statuses = w.forge.m().statuses.clone();
    assert!(
        statuses.iter().any(|s| s.sha == prs[0].head_sha
            && s.state == "success"
            && s.context == "orch/verify"),
        "{statuses:?}"
    );
}

fn doctor(w: &Plane, with_key: bool) -> (i32, Vec<Value>) {
    let mut c = Command::new(ORCH);
    no_proxy(&mut c);
    c.args(["doctor", "--json"])
        .current_dir(w.dir())
        .env_remove("ORCH_CONFIG")
        .env("ORCH_PLANE_WEBHOOK_SECRET", PLANE_SECRET)
        .env("ORCH_GITEA_TOKEN", GITEA_TOKEN)
        .env("ORCH_GITEA_WEBHOOK_SECRET", "gitea-secret");
    if with_key {
        c.env("ORCH_PLANE_API_KEY", PLANE_KEY);
    } else {
        c.env_remove("ORCH_PLANE_API_KEY");
    }
    let out = c.output().unwrap();
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), checks)
}

fn failures(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["level"] == "fail")
        .map(|c| c["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_each_provider_and_says_what_to_fix() {
    let w = world(0).await;
    let (code, checks) = doctor(&w, true);
    assert_eq!((code, failures(&checks)), (0, vec![]), "{checks:#?}");
    assert!(
        checks.iter().any(|c| c["subject"] == "forge.gitea"
            && c["message"].as_str().unwrap().contains("acme/demo"))
    );
    // A state missing in the Plane project is named, with its key.
    w.tracker
        .model
        .lock()
        .unwrap()
        .states
        .get_mut(PROJECT)
        .unwrap()
        .retain(|s| s.1 != "Confirm Deploy");
    let (code, checks) = doctor(&w, true);
    assert_eq!(code, 1);
    let f = failures(&checks);
    assert!(
        f.len() == 1 && f[0].contains("\"Confirm Deploy\" (confirm_deploy)"),
        "{f:?}"
    );
    // No API key: the variable to set is named.
    let (code, checks) = doctor(&w, false);
    assert_eq!(code, 1);
    assert!(
        failures(&checks)
            .iter()
            .any(|m| m.contains("ORCH_PLANE_API_KEY is not set")),
        "{checks:#?}"
    );
}

/// A verify that fails at the merge gate: the task parks for a person and
/// Gitea shows a failed `orch/verify` status on the branch's pushed head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verify_parks_the_task_and_shows_on_gitea() {
    let mut w = world(0).await;
    let cfg_path = w.dir().join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replace(
        "verify = [\"sh\", \"scripts/verify.sh\"]",
        "verify = [\"sh\", \"-c\", \"echo 'verify: 2 tests failed'; exit 1\"]",
    );
    std::fs::write(&cfg_path, cfg).unwrap();
    start(&mut w);
    let item = w.tracker.add_item(PROJECT, "Break the build", "Backlog");
    assert_eq!(w.move_to(&item, "To Analyse"), 202);
    w.wait_for_state(&item, "Awaiting Approval").await;
    assert_eq!(w.move_to(&item, "Approved"), 202);
    let v = w.wait_for_stage(&w.key(&item), "needs_attention").await;
    assert_eq!(events(&v, "merged"), 0, "nothing merged");
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    // The task parks first; the push and the status follow the run report.
    let bare = w.dir().join("remotes/demo.git");
    let head = || git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    w.until(
        &w.key(&item),
        || {
            let head = head();
            w.forge
                .m()
                .statuses
                .iter()
                .any(|s| s.sha == head.trim() && s.state == "failure" && s.context == "orch/verify")
                .then_some(())
        },
        || {
            format!(
                "no failed orch/verify status on {}: {:?}",
                head().trim(),
                w.forge.m().statuses
            )
        },
    )
    .await;
    assert!(w.forge.prs().iter().all(|p| !p.merged));
}

/// Issue 15: a Plane project whose states read "Stop" and "to analyse"
/// (orch.toml: "STOP", "To Analyse") passes `orch doctor`, and then behaves
/// as it promises: "to analyse" starts the item, "Stop" stops the running
/// task. A move to a state that names no gate or stage is shown on the task
/// and counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plane_states_named_in_another_case_start_and_stop_and_an_unmapped_state_shows() {
    let mut states: Vec<String> = orch_config::TrackerStates::default()
        .entries()
        .iter()
        .map(|(_, n)| match *n {
            "STOP" => "Stop".to_string(),
            "To Analyse" => "to analyse".to_string(),
            n => n.to_string(),
        })
        .collect();
    states.extend(["Backlog".to_string(), "In Progress".to_string()]);
    // Agents take 30 s, so the STOP lands while the analyst runs.
    let mut w = world_with_states(30, &states).await;
    let (code, checks) = doctor(&w, true);
    assert_eq!((code, failures(&checks)), (0, vec![]), "{checks:#?}");
    start(&mut w);
    let item = w.tracker.add_item(PROJECT, "Long analysis", "Backlog");
    assert_eq!(w.move_to(&item, "to analyse"), 202);
    let key = w.key(&item);
    let (task_id, pid) = analyst_started(&w, &item, "\"to analyse\"").await;

    // A state orch has no gate or stage for: logged on the task, counted.
    assert_eq!(w.move_to(&item, "In Progress"), 202);
    let v = w
        .wait_for_task(&key, "an unmapped_state event", |v| {
            events(v, "unmapped_state") > 0
        })
        .await;
    let e = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "unmapped_state")
        .unwrap();
    assert!(
        e["message"].as_str().unwrap().contains("\"In Progress\""),
        "{e}"
    );
    assert_eq!(v["task"]["stage"], "analysis", "nothing moved");
    let metrics = get(&w, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.trim() == "orch_tracker_unmapped_states_total 1"),
        "{metrics}"
    );

    // STOP, as this project spells it.
    let started = Instant::now();
    assert_eq!(w.move_to(&item, "Stop"), 202);
    let v = w.wait_for_stage(&task_id, "cancelled").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancelled without waiting for the 30 s agent: {:?}",
        started.elapsed()
    );
    assert_eq!(events(&v, "merged"), 0);
    let alive = |pid: i64| {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    let end = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(
            Instant::now() < end,
            "the analyst (pid {pid}) survived the STOP"
        );
        // A process ending: the kernel's news, no engine signal.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.wait_for_state(&item, "Cancelled").await;
}

/// Issue 15: two keys of [tracker.states] whose names are one state under
/// the rule (trimmed, case-insensitive) make `orch doctor` fail, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_when_two_state_names_collide_under_the_one_rule() {
    let w = world(0).await;
    let (code, _) = doctor(&w, true);
    assert_eq!(code, 0);
    let cfg_path = w.dir().join("orch.toml");
    let mut cfg = std::fs::read_to_string(&cfg_path).unwrap();
    cfg.push_str("[tracker.states]\ncancelled = \" stop\"\n");
    std::fs::write(&cfg_path, cfg).unwrap();
    let out = no_proxy(&mut Command::new(ORCH))
        .args(["doctor", "--json"])
        .current_dir(w.dir())
        .env_remove("ORCH_CONFIG")
        .env("ORCH_PLANE_API_KEY", PLANE_KEY)
        .env("ORCH_PLANE_WEBHOOK_SECRET", PLANE_SECRET)
        .env("ORCH_GITEA_TOKEN", GITEA_TOKEN)
        .env("ORCH_GITEA_WEBHOOK_SECRET", "gitea-secret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "doctor passed: {stderr}");
    assert!(
        stderr.contains("tracker.states.cancelled")
            && stderr.contains("is also tracker.states.stop"),
        "{stderr}"
    );
}

/// Issue 15, points 5 and 6, through the binary: when the analysis ends its
/// branch is on the forge and the approval request on Plane holds a summary
/// and links to the analysis on Gitea and to the task page; a person then
/// comments in Plane and moves the item to Rejected, and the analyst's next
/// prompt holds that comment (the example analyst quotes it in its analysis,
/// which is pushed again before the second request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plane_rejection_with_a_comment_reaches_the_analyst_and_approval_links_the_analysis() {
    let mut w = world(0).await;
    start(&mut w);
    let port = w.site.port();
    let item = w.tracker.add_item(PROJECT, "Add a greeting", "Backlog");
    assert_eq!(w.move_to(&item, "To Analyse"), 202);
    w.wait_for_state(&item, "Awaiting Approval").await;
    let key = w.key(&item);
    let v = w.show(&key).unwrap();
    let task_id = v["task"]["id"].as_i64().unwrap();
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    let bare = w.dir().join("remotes/demo.git");
    // Pushed when the analysis ended, before anyone approved.
    let analysis = git(
        &bare,
        &[
            "show",
            &format!("{branch}:docs/work-items/{key}/01-analysis.md"),
        ],
    );
    assert!(
        analysis.contains(&format!("# Analysis of {key}")),
        "{analysis}"
    );
    // The approval request.
    let request = w.expect_comment(&item, "is ready").await;
    assert!(
        request.contains(&format!(
            "Analysis: {}/acme/demo/src/branch/{branch}/docs/work-items/{key}",
            w.forge.uri()
        )),
        "links the analysis on Gitea: {request}"
    );
    assert!(
        request.contains(&format!("Task: http://127.0.0.1:{port}/#/task/{task_id}")),
        "links the task page: {request}"
    );
    assert!(
        request.contains("2 requirements, 2 test cases"),
        "a summary in the analyst's words: {request}"
    );

    // The person explains in a comment, then rejects in Plane.
    w.tracker.person_comments(
        &item,
        "<p>Also cover the <strong>rollback</strong> &amp; the migration of old rows.</p>",
    );
    assert_eq!(w.move_to(&item, "Rejected"), 202);
    let v = w
        .wait_for_task(&key, "the analysis ran again", |v| {
            events(v, "analysed") == 2
        })
        .await;
    let rejected: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{:#}", v["events"]);
    assert!(
        rejected[0]["message"]
            .as_str()
            .unwrap()
            .contains("Also cover the rollback & the migration of old rows."),
        "{rejected:?}"
    );
    // The analyst's prompt of the second round holds the comment.
    let prompts: Vec<String> = std::fs::read_dir(w.dir().join(".orch/runs"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("prompt.md")).ok())
        .filter(|p| p.contains("previous analysis was REJECTED"))
        .collect();
    assert_eq!(prompts.len(), 1, "one rejected round");
    assert!(
        prompts[0].contains("Also cover the rollback & the migration of old rows."),
        "{}",
        prompts[0]
    );
    // The revised analysis, quoting it, is on the forge again.
    let analysis = git(
        &bare,
        &[
            "show",
            &format!("{branch}:docs/work-items/{key}/01-analysis.md"),
        ],
    );
    assert!(
        analysis.contains("> Also cover the rollback & the migration of old rows."),
        "{analysis}"
    );
}
