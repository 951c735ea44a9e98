//! End to end with Linear as the tracker: the `orch` binary (`orch serve`)
//! against the in-process fake Linear (teams with workflow states, issues
//! and comments, answering the GraphQL documents orch sends; built from
//! Linear's published schema), with the local forge (a bare repository the
//! merge lands in). A person's move of an issue arrives as Linear's `Issue`
//! webhook (`updatedFrom.stateId`), signed with `Linear-Signature` and
//! timestamped, on the real webhook route over loopback.
//!
//! An issue moved to To Analyse runs to Awaiting Approval; moved to
//! Approved it is developed, reviewed, merged and Done, each stage shown as
//! the issue's workflow state in Linear, with orch's comments. A delivery
//! with a bad signature is refused with 401 and changes nothing; a replay
//! is a no-op.

mod common;

use common::tracker_world::{Listening, demo_toml, git_as_person, seed_demo};
use common::{count_events, show};
use orch_integrations::fakes::FakeLinear;
use orch_integrations::signature::sign;
use std::path::Path;
use std::time::{Duration, Instant};

const KEY: &str = "lin_api_e2e_key";
const SECRET: &str = "lin_wh_e2e_secret";
const DEADLINE: Duration = Duration::from_secs(180);

struct World {
    tmp: tempfile::TempDir,
    linear: FakeLinear,
    serve: Option<Listening>,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        seed_demo(tmp.path());
        let linear = FakeLinear::start(KEY).await;
        // The team ENG has orch's states under their own names, and some of
        // its own; orch's Done is ENG's "Shipped".
        let mut states: Vec<String> = orch_config::TrackerStates::default()
            .entries()
            .iter()
            .map(|(_, n)| n.to_string())
            .filter(|n| n != "Done")
            .collect();
        states.extend(["Shipped".to_string(), "Backlog".to_string()]);
        linear.add_team(
            "ENG",
            &states.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let toml = format!(
            "{}[tracker]\nkind = \"linear\"\n[tracker.linear]\nbase_url = \"{}\"\n\
             [tracker.linear.teams.ENG]\nworkflow_states = {{ done = \"Shipped\" }}\n",
            demo_toml(),
            linear.uri(),
        );
        std::fs::write(tmp.path().join("orch.toml"), toml).unwrap();
        World {
            tmp,
            linear,
            serve: None,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn start(&mut self) {
        self.serve = Some(Listening::start(
            self.dir(),
            &[
                ("ORCH_LINEAR_API_KEY", KEY),
                ("ORCH_LINEAR_WEBHOOK_SECRET", SECRET),
            ],
        ));
    }

    fn log(&self) -> String {
        self.serve.as_ref().map(Listening::log).unwrap_or_default()
    }

    /// Post a Linear webhook with this signature and delivery id; the status.
    fn deliver_with(&self, body: &[u8], signature: &str, delivery: &str) -> u16 {
        let headers = [
            ("Linear-Event", "Issue"),
            ("Linear-Delivery", delivery),
            ("Linear-Signature", signature),
        ];
        self.serve
            .as_ref()
            .unwrap()
            .post("/webhooks/linear", &headers, body)
    }

    fn deliver(&self, body: &[u8], delivery: &str) -> u16 {
        self.deliver_with(body, &sign(SECRET.as_bytes(), body), delivery)
    }

    /// A person moves the issue in Linear; the webhook Linear sends for it.
    fn person_moves(&self, issue: &str, from: &str, to: &str) -> Vec<u8> {
        self.linear.person_moves(issue, to);
        serde_json::to_vec(&self.linear.issue_webhook(issue, Some(from))).unwrap()
    }

    async fn wait_state(&self, issue: &str, state: &str) {
        let end = Instant::now() + DEADLINE;
        while self.linear.state_of(issue) != state {
            assert!(
                Instant::now() < end,
                "issue {issue} never reached {state:?} (it is in {:?}); task: {:#?}\nlog:\n{}",
                self.linear.state_of(issue),
                show(self.dir(), issue).map(|v| v["events"].clone()),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linear_issue_runs_from_to_analyse_to_merged_and_done() {
    let mut w = World::new().await;
    w.linear.add_issue("ENG-7", "Add a greeting", "Backlog");
    w.start();

    let to_analyse = w.person_moves("ENG-7", "Backlog", "To Analyse");
    // Signed with another secret, or not signed: 401, and nothing happens
    // (no task, no call to Linear).
    let calls = w.linear.m().requests.len();
    let wrong = sign(b"not the secret", &to_analyse);
    assert_eq!(w.deliver_with(&to_analyse, &wrong, "d-bad"), 401);
    assert_eq!(w.deliver_with(&to_analyse, "", "d-bad2"), 401);
    assert!(
        show(w.dir(), "ENG-7").is_none(),
        "a refused delivery made a task"
    );
    assert_eq!(
        w.linear.m().requests.len(),
        calls,
        "a refused delivery called Linear"
    );

    assert_eq!(w.deliver(&to_analyse, "d-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "d-1"), 200, "the replay is a no-op");
    w.wait_state("ENG-7", "Awaiting Approval").await;

    let approved = w.person_moves("ENG-7", "Awaiting Approval", "Approved");
    assert_eq!(w.deliver(&approved, "d-2"), 202);
    assert_eq!(
        w.deliver(&approved, "d-3"),
        200,
        "the same change redelivered is a no-op"
    );
    w.wait_state("ENG-7", "Shipped").await;

    let end = Instant::now() + DEADLINE;
    let v = loop {
        if let Some(v) = show(w.dir(), "ENG-7")
            && v["task"]["stage"] == "done"
        {
            break v;
        }
        assert!(
            Instant::now() < end,
            "never done: {:#?}\n{}",
            show(w.dir(), "ENG-7"),
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count_events(&v, "merged"), 1, "merged exactly once");
    assert_eq!(count_events(&v, "cancelled"), 0);
    assert_eq!(count_events(&v, "started"), 1, "the replay started nothing");
    assert!(
        v["task"]["branch"]
            .as_str()
            .is_some_and(|b| b.starts_with("feature/ENG-7-")),
        "{:#?}",
        v["task"]
    );
    // The change is on main of the forge's repository.
    let bare = w.dir().join("remotes/demo.git");
    assert!(git_as_person(&bare, &["show", "main:work/ENG-7.md"]).contains("Tests: added"));
    // Every move orch made went through issueUpdate, every state a stage.
    let ops = w.linear.operations();
    assert!(
        ops.iter().filter(|o| *o == "OrchIssueUpdate").count() >= 4,
        "{ops:?}"
    );
    assert!(
        w.linear
            .m()
            .requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(KEY)),
        "the bare API key on every call"
    );
    // orch's comments, each marked as orch's.
    let comments = w.linear.comments_of("ENG-7");
    assert!(
        comments.iter().any(|c| c.contains("started the analysis")),
        "{comments:?}"
    );
    assert!(
        comments.iter().any(|c| c.contains("merged")),
        "{comments:?}"
    );
    assert!(
        comments.iter().all(|c| c.contains("<!-- orch")),
        "{comments:?}"
    );
}
