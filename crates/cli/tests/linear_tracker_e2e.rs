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
use common::world::World;
use orch_integrations::fakes::FakeLinear;
use orch_integrations::signature::sign;

const KEY: &str = "lin_api_e2e_key";
const SECRET: &str = "lin_wh_e2e_secret";

async fn world() -> World<FakeLinear> {
    let linear = FakeLinear::start(KEY).await;
    // The team ENG has orch's states under their own names, and some of
    // its own; orch's Done is ENG's "Shipped".
    let states = team_states("Shipped");
    linear.add_team(
        "ENG",
        &states.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let w = World::new(common::ORCH, Site::new(), linear, SECRET);
    w.configure(&format!(
        "[tracker]\nkind = \"linear\"\n[tracker.linear]\nbase_url = \"{}\"\n\
         [tracker.linear.teams.ENG]\nworkflow_states = {{ done = \"Shipped\" }}\n",
        w.tracker.uri(),
    ));
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linear_issue_runs_from_to_analyse_to_merged_and_done() {
    let mut w = world().await;
    w.tracker.add_issue("ENG-7", "Add a greeting", "Backlog");
    w.start(&[
        ("ORCH_LINEAR_API_KEY", KEY),
        ("ORCH_LINEAR_WEBHOOK_SECRET", SECRET),
    ]);

    // From Backlog.
    let to_analyse = w.person_moves("ENG-7", "To Analyse");
    // Signed with another secret, or not signed: 401, and nothing happens
    // (no task, no call to Linear).
    let calls = w.tracker.m().requests.len();
    let wrong = sign(b"not the secret", &to_analyse);
    assert_eq!(w.deliver_with(&to_analyse, &wrong, "d-bad"), 401);
    assert_eq!(w.deliver_with(&to_analyse, "", "d-bad2"), 401);
    assert!(
        show(w.dir(), "ENG-7").is_none(),
        "a refused delivery made a task"
    );
    assert_eq!(
        w.tracker.m().requests.len(),
        calls,
        "a refused delivery called Linear"
    );

    assert_eq!(w.deliver(&to_analyse, "d-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "d-1"), 200, "the replay is a no-op");
    w.wait_for_state("ENG-7", "Awaiting Approval").await;

    // From Awaiting Approval.
    let approved = w.person_moves("ENG-7", "Approved");
    assert_eq!(w.deliver(&approved, "d-2"), 202);
    assert_eq!(
        w.deliver(&approved, "d-3"),
        200,
        "the same change redelivered is a no-op"
    );
    w.wait_for_state("ENG-7", "Shipped").await;

    let v = w.wait_for_stage("ENG-7", "done").await;
    w.site.assert_merged_once(&v, "ENG-7");
    assert!(
        v["task"]["branch"]
            .as_str()
            .is_some_and(|b| b.starts_with("feature/ENG-7-")),
        "{:#?}",
        v["task"]
    );
    // Every move orch made went through issueUpdate, every state a stage.
    let ops = w.tracker.operations();
    assert!(
        ops.iter().filter(|o| *o == "OrchIssueUpdate").count() >= 4,
        "{ops:?}"
    );
    assert!(
        w.tracker
            .m()
            .requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(KEY)),
        "the bare API key on every call"
    );
    // orch's comments, each marked as orch's.
    assert_orchs_comments(&w.tracker.comments_of("ENG-7"));
}
