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

use common::tracker_world::{Listening, demo_toml, git_as_person, seed_demo};
use common::{count_events, show};
use orch_integrations::fakes::FakeGitea;
use orch_integrations::signature::sign;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "gitea-e2e-token";
const SECRET: &str = "gitea-e2e-secret";
const DEADLINE: Duration = Duration::from_secs(180);

struct World {
    tmp: tempfile::TempDir,
    gitea: FakeGitea,
    serve: Option<Listening>,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let bare = seed_demo(&d);
        let gitea = FakeGitea::start("acme/demo", TOKEN, &bare).await;
        // Tracker and forge are one Gitea account: one client, one budget.
        let toml = format!(
            "{}[tracker]\nkind = \"gitea\"\n[tracker.gitea]\nbase_url = \"{uri}\"\nrepos = [\"acme/demo\"]\n\
             [forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{uri}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
            demo_toml(),
            uri = gitea.uri(),
        );
        std::fs::write(d.join("orch.toml"), toml).unwrap();
        World {
            tmp,
            gitea,
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
                ("ORCH_GITEA_TOKEN", TOKEN),
                ("ORCH_GITEA_WEBHOOK_SECRET", SECRET),
            ],
        ));
    }

    fn log(&self) -> String {
        self.serve.as_ref().map(Listening::log).unwrap_or_default()
    }

    /// Post a Gitea `issue_label` delivery with this signature; the status.
    fn deliver_signed(&self, body: &[u8], sig: &str, delivery: &str) -> u16 {
        let headers = [
            ("X-Gitea-Event", "issues"),
            ("X-Gitea-Event-Type", "issue_label"),
            ("X-Gitea-Delivery", delivery),
            ("X-Gitea-Signature", sig),
        ];
        self.serve
            .as_ref()
            .unwrap()
            .post("/webhooks/gitea", &headers, body)
    }

    fn deliver(&self, body: &[u8], delivery: &str) -> u16 {
        self.deliver_signed(body, &sign(SECRET.as_bytes(), body), delivery)
    }

    async fn wait_label(&self, issue: u64, label: &str) {
        let end = Instant::now() + DEADLINE;
        while !self.gitea.labels_of(issue).iter().any(|l| l == label) {
            assert!(
                Instant::now() < end,
                "issue {issue} never got the label {label:?} (it has {:?}); task: {:#?}\nlog:\n{}",
                self.gitea.labels_of(issue),
                show(self.dir(), &format!("demo-{issue}")).map(|v| v["events"].clone()),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    let end = Instant::now() + DEADLINE;
    let v = loop {
        if let Some(v) = show(w.dir(), "demo-7")
            && v["task"]["stage"] == "done"
        {
            break v;
        }
        assert!(
            Instant::now() < end,
            "never done: {:#?}\n{}",
            show(w.dir(), "demo-7"),
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count_events(&v, "merged"), 1, "merged exactly once");
    assert_eq!(count_events(&v, "cancelled"), 0);
    assert_eq!(count_events(&v, "started"), 1, "the replay started nothing");
    let prs = w.gitea.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert!(
        prs[0].merged && prs[0].head.starts_with("feature/demo-7-"),
        "{prs:?}"
    );
    let bare = w.dir().join("remotes/demo.git");
    assert!(git_as_person(&bare, &["show", "main:work/demo-7.md"]).contains("Tests: added"));
    // One state label at the end, the person's other label kept.
    let labels = w.gitea.labels_of(7);
    let states: Vec<&String> = labels
        .iter()
        .filter(|l| orch_config::TrackerStates::default().key_of(l).is_some())
        .collect();
    assert_eq!(states, ["Done"], "{labels:?}");
    assert!(labels.contains(&"bug".to_string()));
    // orch's comments, each marked as orch's.
    let comments = w.gitea.comments_of(7);
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
