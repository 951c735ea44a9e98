//! End to end with Jira Cloud as the tracker: the `orch` binary (`orch
//! serve`) against the in-process fake Jira (projects whose workflow leads
//! into each status, issues with ADF comments, answering the REST API v3
//! calls orch makes; built from Atlassian's published OpenAPI description),
//! with the local forge (a bare repository the merge lands in). A person's
//! move of an issue arrives as Jira's `jira:issue_updated` webhook (a
//! `status` changelog item), signed with `X-Hub-Signature: sha256=…`, on the
//! real webhook route over loopback.
//!
//! An issue moved to To Analyse runs to Awaiting Approval; moved to
//! Approved it is developed, reviewed, merged and Done, each stage shown as
//! the issue's status in Jira (reached through the workflow's transitions),
//! with orch's comments in ADF. A delivery with a bad signature is refused
//! with 401 and changes nothing; a replay is a no-op.

mod common;

use common::show;
use common::tracker_world::{Site, assert_orchs_comments, team_states};
use common::world::World;
use orch_integrations::fakes::FakeJira;
use orch_integrations::signature::sign;

const EMAIL: &str = "orch-bot@example.com";
const TOKEN: &str = "jira_e2e_token";
const SECRET: &str = "jira_wh_e2e_secret";

async fn world() -> World<FakeJira> {
    let jira = FakeJira::start(EMAIL, TOKEN).await;
    // The project ENG has orch's states as statuses, and some of its
    // own; orch's Done is ENG's "Shipped".
    let statuses = team_states("Shipped");
    jira.add_project(
        "ENG",
        &statuses.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let w = World::new(common::ORCH, Site::new(), jira, SECRET);
    w.configure(&format!(
        "[tracker]\nkind = \"jira\"\n[tracker.jira]\nbase_url = \"{}\"\nemail = \"{EMAIL}\"\n\
         [tracker.jira.projects.ENG]\nstatuses = {{ done = \"Shipped\" }}\n",
        w.tracker.uri(),
    ));
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_issue_runs_from_to_analyse_to_merged_and_done() {
    let mut w = world().await;
    w.tracker.add_issue("ENG-7", "Add a greeting", "Backlog");
    w.start(&[
        ("ORCH_JIRA_API_TOKEN", TOKEN),
        ("ORCH_JIRA_WEBHOOK_SECRET", SECRET),
    ]);

    // From Backlog.
    let to_analyse = w.person_moves("ENG-7", "To Analyse");
    // Signed with another secret, not signed, or the bare digest: 401, and
    // nothing happens (no task, no call to Jira).
    let wrong = format!("sha256={}", sign(b"not the secret", &to_analyse));
    assert_eq!(w.deliver_with(&to_analyse, &wrong, "d-bad"), 401);
    assert_eq!(w.deliver_with(&to_analyse, "", "d-bad2"), 401);
    let bare = sign(SECRET.as_bytes(), &to_analyse);
    assert_eq!(w.deliver_with(&to_analyse, &bare, "d-bad3"), 401);
    assert!(
        show(w.dir(), "ENG-7").is_none(),
        "a refused delivery made a task"
    );
    let transitions_taken = |w: &World<FakeJira>| {
        w.tracker
            .calls()
            .iter()
            .filter(|c| *c == "POST /issue/ENG-7/transitions")
            .count()
    };
    assert_eq!(
        transitions_taken(&w),
        0,
        "a refused delivery moved the issue"
    );
    assert!(
        w.tracker.comments_of("ENG-7").is_empty(),
        "a refused delivery commented"
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
    // Every move orch made went through a transition.
    assert!(transitions_taken(&w) >= 4, "{:?}", w.tracker.calls());
    let basic = format!(
        "Basic {}",
        orch_integrations::jira::client::base64(format!("{EMAIL}:{TOKEN}").as_bytes())
    );
    assert!(
        w.tracker
            .m()
            .requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(basic.as_str())),
        "Basic auth on every call"
    );
    // orch's comments, in ADF, each marked as orch's.
    assert_orchs_comments(&w.tracker.comments_of("ENG-7"));
    assert!(
        w.tracker
            .m()
            .requests
            .iter()
            .filter(|r| r.seen.method == "POST" && r.seen.path.ends_with("/comment"))
            .all(|r| r
                .seen
                .body
                .as_ref()
                .is_some_and(|b| b["body"]["type"] == "doc")),
        "every comment is an ADF document"
    );
}
