//! End to end with Gitea/Forgejo as both tracker and forge: the `orch`
//! binary (`orch serve`) against the in-process fake Gitea (its issues,
//! labels and comments built from Gitea's swagger; its pull requests over a
//! real bare repository). A person's label on an issue arrives as Gitea's
//! signed `issue_label` delivery on the real webhook route over loopback.
//!
//! An issue labelled To Analyse runs to Awaiting Approval; labelled Approved
//! it runs to a merged pull request and Done, each stage shown as the
//! issue's state label, with orch's comments. A delivery with a bad
//! signature is refused with 401 and changes nothing; a replay is a no-op.

mod common;

use common::show;
use common::tracker_world::{Site, assert_orchs_comments};
use common::world::World;
use orch_integrations::fakes::FakeGitea;
use orch_integrations::signature::sign;

const TOKEN: &str = "gitea-e2e-token";
const SECRET: &str = "gitea-e2e-secret";

async fn world() -> World<FakeGitea> {
    let site = Site::new();
    let gitea = FakeGitea::start("acme/demo", TOKEN, &site.bare).await;
    let w = World::new(common::ORCH, site, gitea, SECRET);
    // Tracker and forge are one Gitea account: one client, one budget.
    w.configure(&format!(
        "[tracker]\nkind = \"gitea\"\n[tracker.gitea]\nbase_url = \"{uri}\"\nrepos = [\"acme/demo\"]\n\
         [forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{uri}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
        uri = w.tracker.uri(),
    ));
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitea_issue_runs_from_to_analyse_to_a_merged_pull_request_and_done() {
    let mut w = world().await;
    w.tracker.add_issue(7, "Add a greeting", &["bug"]);
    w.start(&[
        ("ORCH_GITEA_TOKEN", TOKEN),
        ("ORCH_GITEA_WEBHOOK_SECRET", SECRET),
    ]);

    let to_analyse = w.person_moves("7", "To Analyse");
    // A bad signature: 401, and nothing happens (no task, no call to Gitea).
    let calls = w.tracker.requests().len();
    assert_eq!(w.deliver_with(&to_analyse, &"0".repeat(64), "d-bad"), 401);
    let mut tampered = to_analyse.clone();
    tampered.extend_from_slice(b"\n");
    assert_eq!(
        w.deliver_with(&tampered, &sign(SECRET.as_bytes(), &to_analyse), "d-bad2"),
        401
    );
    assert!(
        show(w.dir(), "demo-7").is_none(),
        "a refused delivery made a task"
    );
    assert_eq!(
        w.tracker.requests().len(),
        calls,
        "a refused delivery called Gitea"
    );

    assert_eq!(w.deliver(&to_analyse, "d-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "d-1"), 200, "the replay is a no-op");
    w.wait_for_state("7", "Awaiting Approval").await;
    let labels = w.tracker.labels_of(7);
    assert!(
        labels.contains(&"bug".to_string()) && !labels.contains(&"To Analyse".to_string()),
        "the gate label was replaced by orch's, the person's kept: {labels:?}"
    );

    let approved = w.person_moves("7", "Approved");
    assert_eq!(w.deliver(&approved, "d-2"), 202);
    assert_eq!(w.deliver(&approved, "d-2"), 200, "the replay is a no-op");
    w.wait_for_state("7", "Done").await;

    let v = w.wait_for_stage("demo-7", "done").await;
    w.site.assert_merged_once(&v, "demo-7");
    let prs = w.tracker.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert!(
        prs[0].merged && prs[0].head.starts_with("feature/demo-7-"),
        "{prs:?}"
    );
    // One state label at the end, the person's other label kept.
    let labels = w.tracker.labels_of(7);
    let states: Vec<&String> = labels
        .iter()
        .filter(|l| orch_config::TrackerStates::default().key_of(l).is_some())
        .collect();
    assert_eq!(states, ["Done"], "{labels:?}");
    assert!(labels.contains(&"bug".to_string()));
    // orch's comments, each marked as orch's.
    assert_orchs_comments(&w.tracker.comments_of(7));
}
