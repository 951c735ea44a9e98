//! End to end with GitLab as both tracker and forge: the `orch` binary
//! (`orch serve`) against the in-process fake GitLab (its issues, scoped
//! labels and notes, and its merge requests over a real bare repository,
//! built from GitLab's API description). A person's label on an issue
//! arrives as GitLab's "Issue Hook" (the stored payload's shape) with the
//! `X-Gitlab-Token` on the real webhook route over loopback.
//!
//! An issue labelled `orch::To Analyse` runs to Awaiting Approval; labelled
//! `orch::Approved` it runs to a merged merge request (merged at the
//! verified sha, with `orch/verify` set on it) and Done, each stage shown
//! as the issue's `orch::` label, with orch's notes. A delivery with a bad
//! token is refused with 401 and changes nothing; a replay is a no-op.

mod common;

use common::show;
use common::tracker_world::{Site, assert_orchs_comments};
use common::world::World;
use orch_integrations::fakes::FakeGitlab;

const TOKEN: &str = "glpat-e2e-token";
const SECRET: &str = "gitlab-e2e-hook-token";

async fn world() -> World<FakeGitlab> {
    let site = Site::new();
    let gitlab = FakeGitlab::start("acme/demo", TOKEN, &site.bare).await;
    let w = World::new(common::ORCH, site, gitlab, SECRET);
    // Tracker and forge are one GitLab account: one client, one budget.
    w.configure(&format!(
        "[tracker]\nkind = \"gitlab\"\n[tracker.gitlab]\nbase_url = \"{uri}\"\nprojects = [\"acme/demo\"]\n\
         [forge]\nkind = \"gitlab\"\n[forge.gitlab]\nbase_url = \"{uri}\"\n[forge.gitlab.repos]\ndemo = \"acme/demo\"\n",
        uri = w.tracker.uri(),
    ));
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_issue_runs_from_to_analyse_to_a_merged_merge_request_and_done() {
    let mut w = world().await;
    w.tracker.add_issue(7, "Add a greeting", &["bug"]);
    w.start(&[
        ("ORCH_GITLAB_TOKEN", TOKEN),
        ("ORCH_GITLAB_WEBHOOK_SECRET", SECRET),
    ]);

    let to_analyse = w.person_moves("7", "orch::To Analyse");
    // A wrong token, a prefix of it, none: 401, and nothing happens (no
    // task, no call to GitLab).
    let calls = w.tracker.m().requests.len();
    assert_eq!(w.deliver_with(&to_analyse, "wrong", "k-bad"), 401);
    assert_eq!(w.deliver_with(&to_analyse, &SECRET[..6], "k-bad2"), 401);
    assert!(
        show(w.dir(), "demo-7").is_none(),
        "a refused delivery made a task"
    );
    assert_eq!(
        w.tracker.m().requests.len(),
        calls,
        "a refused delivery called GitLab"
    );

    assert_eq!(w.deliver(&to_analyse, "k-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "k-1"), 200, "the replay is a no-op");
    w.wait_for_state("7", "orch::Awaiting Approval").await;
    let labels = w.tracker.labels_of(7);
    assert!(
        labels.contains(&"bug".to_string()) && !labels.contains(&"orch::To Analyse".to_string()),
        "the gate label was replaced by orch's, the person's kept: {labels:?}"
    );

    // The person swaps orch::Awaiting Approval for orch::Approved.
    let approved = w.person_moves("7", "orch::Approved");
    assert_eq!(w.deliver(&approved, "k-2"), 202);
    assert_eq!(w.deliver(&approved, "k-2"), 200, "the replay is a no-op");
    w.wait_for_state("7", "orch::Done").await;

    let v = w.wait_for_stage("demo-7", "done").await;
    w.site.assert_merged_once(&v, "demo-7");
    let (mrs, statuses, merge_sha) = {
        let m = w.tracker.m();
        let merge_sha = m
            .requests
            .iter()
            .find(|r| r.method == "PUT" && r.path.ends_with("/merge"))
            .and_then(|r| r.body.as_ref()?["sha"].as_str().map(str::to_owned));
        (m.mrs.clone(), m.statuses.clone(), merge_sha)
    };
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert!(
        mrs[0].state == "merged" && mrs[0].source.starts_with("feature/demo-7-"),
        "{mrs:?}"
    );
    // Merged at the verified head, which carries orch/verify = success.
    assert_eq!(merge_sha.as_deref(), Some(mrs[0].sha.as_str()));
    assert!(
        statuses
            .iter()
            .any(|(sha, st, name)| *sha == mrs[0].sha && st == "success" && name == "orch/verify"),
        "{statuses:?}"
    );
    // One state label at the end, the person's other label kept.
    let labels = w.tracker.labels_of(7);
    let states: Vec<&String> = labels.iter().filter(|l| l.starts_with("orch::")).collect();
    assert_eq!(states, ["orch::Done"], "{labels:?}");
    assert!(labels.contains(&"bug".to_string()));
    // orch's notes, each marked as orch's.
    assert_orchs_comments(&w.tracker.comments_of(7));
}
