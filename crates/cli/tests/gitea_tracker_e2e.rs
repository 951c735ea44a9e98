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
use orch_integrations::fakes::FakeGitea;
use orch_integrations::signature::sign;
use std::path::Path;

const TOKEN: &str = "gitea-e2e-token";
const SECRET: &str = "gitea-e2e-secret";

struct World {
    site: Site,
    gitea: FakeGitea,
}

impl World {
    async fn new() -> World {
        let site = Site::new();
        let gitea = FakeGitea::start("acme/demo", TOKEN, &site.bare).await;
        // Tracker and forge are one Gitea account: one client, one budget.
        site.configure(&format!(
            "[tracker]\nkind = \"gitea\"\n[tracker.gitea]\nbase_url = \"{uri}\"\nrepos = [\"acme/demo\"]\n\
             [forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{uri}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
            uri = gitea.uri(),
        ));
        World { site, gitea }
    }

    fn dir(&self) -> &Path {
        self.site.dir()
    }

    fn start(&mut self) {
        self.site.start(&[
            ("ORCH_GITEA_TOKEN", TOKEN),
            ("ORCH_GITEA_WEBHOOK_SECRET", SECRET),
        ]);
    }

    /// Post a Gitea `issue_label` delivery with this signature; the status.
    fn deliver_signed(&self, body: &[u8], sig: &str, delivery: &str) -> u16 {
        let headers = [
            ("X-Gitea-Event", "issues"),
            ("X-Gitea-Event-Type", "issue_label"),
            ("X-Gitea-Delivery", delivery),
            ("X-Gitea-Signature", sig),
        ];
        self.site.post("/webhooks/gitea", &headers, body)
    }

    fn deliver(&self, body: &[u8], delivery: &str) -> u16 {
        self.deliver_signed(body, &sign(SECRET.as_bytes(), body), delivery)
    }

    async fn wait_label(&self, issue: u64, label: &str) {
        let what = format!("got the label {label:?}");
        self.site
            .wait_for(
                &format!("demo-{issue}"),
                &what,
                || self.gitea.labels_of(issue),
                |ls| ls.iter().any(|l| l == label),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitea_issue_runs_from_to_analyse_to_a_merged_pull_request_and_done() {
    let mut w = World::new().await;
    w.gitea.add_issue(7, "Add a greeting", &["bug"]);
    w.start();

    let to_analyse = w.gitea.person_labels(7, "To Analyse");
    // A bad signature: 401, and nothing happens (no task, no call to Gitea).
    let calls = w.gitea.requests().len();
    assert_eq!(w.deliver_signed(&to_analyse, &"0".repeat(64), "d-bad"), 401);
    let mut tampered = to_analyse.clone();
    tampered.extend_from_slice(b"\n");
    assert_eq!(
        w.deliver_signed(&tampered, &sign(SECRET.as_bytes(), &to_analyse), "d-bad2"),
        401
    );
    assert!(
        show(w.dir(), "demo-7").is_none(),
        "a refused delivery made a task"
    );
    assert_eq!(
        w.gitea.requests().len(),
        calls,
        "a refused delivery called Gitea"
    );

    assert_eq!(w.deliver(&to_analyse, "d-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "d-1"), 200, "the replay is a no-op");
    w.wait_label(7, "Awaiting Approval").await;
    let labels = w.gitea.labels_of(7);
    assert!(
        labels.contains(&"bug".to_string()) && !labels.contains(&"To Analyse".to_string()),
        "the gate label was replaced by orch's, the person's kept: {labels:?}"
    );

    let approved = w.gitea.person_labels(7, "Approved");
    assert_eq!(w.deliver(&approved, "d-2"), 202);
    assert_eq!(w.deliver(&approved, "d-2"), 200, "the replay is a no-op");
    w.wait_label(7, "Done").await;

    let v = w.site.wait_done("demo-7").await;
    w.site.assert_merged_once(&v, "demo-7");
    let prs = w.gitea.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert!(
        prs[0].merged && prs[0].head.starts_with("feature/demo-7-"),
        "{prs:?}"
    );
    // One state label at the end, the person's other label kept.
    let labels = w.gitea.labels_of(7);
    let states: Vec<&String> = labels
        .iter()
        .filter(|l| orch_config::TrackerStates::default().key_of(l).is_some())
        .collect();
    assert_eq!(states, ["Done"], "{labels:?}");
    assert!(labels.contains(&"bug".to_string()));
    // orch's comments, each marked as orch's.
    assert_orchs_comments(&w.gitea.comments_of(7));
}
