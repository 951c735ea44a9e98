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

use common::show;
use common::tracker_world::{Site, assert_orchs_comments, team_states};
use orch_integrations::fakes::FakeLinear;
use orch_integrations::signature::sign;
use std::path::Path;

const KEY: &str = "lin_api_e2e_key";
const SECRET: &str = "lin_wh_e2e_secret";

struct World {
    site: Site,
    linear: FakeLinear,
}

impl World {
    async fn new() -> World {
        let site = Site::new();
        let linear = FakeLinear::start(KEY).await;
        // The team ENG has orch's states under their own names, and some of
        // its own; orch's Done is ENG's "Shipped".
        let states = team_states("Shipped");
        linear.add_team(
            "ENG",
            &states.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        site.configure(&format!(
            "[tracker]\nkind = \"linear\"\n[tracker.linear]\nbase_url = \"{}\"\n\
             [tracker.linear.teams.ENG]\nworkflow_states = {{ done = \"Shipped\" }}\n",
            linear.uri(),
        ));
        World { site, linear }
    }

    fn dir(&self) -> &Path {
        self.site.dir()
    }

    fn start(&mut self) {
        self.site.start(&[
            ("ORCH_LINEAR_API_KEY", KEY),
            ("ORCH_LINEAR_WEBHOOK_SECRET", SECRET),
        ]);
    }

    /// Post a Linear webhook with this signature and delivery id; the status.
    fn deliver_with(&self, body: &[u8], signature: &str, delivery: &str) -> u16 {
        let headers = [
            ("Linear-Event", "Issue"),
            ("Linear-Delivery", delivery),
            ("Linear-Signature", signature),
        ];
        self.site.post("/webhooks/linear", &headers, body)
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
        let what = format!("reached {state:?}");
        self.site
            .wait_for(
                issue,
                &what,
                || self.linear.state_of(issue),
                |now| now == state,
            )
            .await;
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

    let v = w.site.wait_done("ENG-7").await;
    w.site.assert_merged_once(&v, "ENG-7");
    assert!(
        v["task"]["branch"]
            .as_str()
            .is_some_and(|b| b.starts_with("feature/ENG-7-")),
        "{:#?}",
        v["task"]
    );
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
    assert_orchs_comments(&w.linear.comments_of("ENG-7"));
}
