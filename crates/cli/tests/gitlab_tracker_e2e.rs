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
use orch_integrations::fakes::FakeGitlab;
use serde_json::Value;
use std::path::{Path, PathBuf};

const TOKEN: &str = "glpat-e2e-token";
const SECRET: &str = "gitlab-e2e-hook-token";

struct World {
    site: Site,
    gitlab: FakeGitlab,
}

impl World {
    async fn new() -> World {
        let site = Site::new();
        let gitlab = FakeGitlab::start("acme/demo", TOKEN, &site.bare).await;
        // Tracker and forge are one GitLab account: one client, one budget.
        site.configure(&format!(
            "[tracker]\nkind = \"gitlab\"\n[tracker.gitlab]\nbase_url = \"{uri}\"\nprojects = [\"acme/demo\"]\n\
             [forge]\nkind = \"gitlab\"\n[forge.gitlab]\nbase_url = \"{uri}\"\n[forge.gitlab.repos]\ndemo = \"acme/demo\"\n",
            uri = gitlab.uri(),
        ));
        World { site, gitlab }
    }

    fn dir(&self) -> &Path {
        self.site.dir()
    }

    fn start(&mut self) {
        self.site.start(&[
            ("ORCH_GITLAB_TOKEN", TOKEN),
            ("ORCH_GITLAB_WEBHOOK_SECRET", SECRET),
        ]);
    }

    /// Post an "Issue Hook" with this token and idempotency key; the status.
    fn deliver_with(&self, body: &[u8], token: &str, key: &str) -> u16 {
        let headers = [
            ("X-Gitlab-Event", "Issue Hook"),
            ("Idempotency-Key", key),
            ("X-Gitlab-Token", token),
        ];
        self.site.post("/webhooks/gitlab", &headers, body)
    }

    fn deliver(&self, body: &[u8], key: &str) -> u16 {
        self.deliver_with(body, SECRET, key)
    }

    /// A person changes the issue's labels in GitLab; the "Issue Hook"
    /// GitLab sends for it (the stored payload with this issue's labels).
    fn person_labels(&self, iid: u64, add: &[&str], remove: &[&str]) -> Vec<u8> {
        self.gitlab.person_labels(iid, add, remove);
        let labels = self.gitlab.labels_of(iid);
        let updated =
            orch_integrations::fakes::gitlab::fake_time(self.gitlab.m().issues[&iid].updated);
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../integrations/tests/fixtures/gitlab/issue-hook.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let ls: Vec<Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| serde_json::json!({"id": i + 1, "title": l, "type": "ProjectLabel"}))
            .collect();
        v["project"]["path_with_namespace"] = "acme/demo".into();
        v["object_attributes"]["iid"] = iid.into();
        v["object_attributes"]["action"] = "update".into();
        v["object_attributes"]["updated_at"] = updated.into();
        v["labels"] = Value::Array(ls.clone());
        v["changes"]["labels"]["current"] = Value::Array(ls);
        serde_json::to_vec(&v).unwrap()
    }

    async fn wait_label(&self, issue: u64, label: &str) {
        let what = format!("got the label {label:?}");
        self.site
            .wait_for(
                &format!("demo-{issue}"),
                &what,
                || self.gitlab.labels_of(issue),
                |ls| ls.iter().any(|l| l == label),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_issue_runs_from_to_analyse_to_a_merged_merge_request_and_done() {
    let mut w = World::new().await;
    w.gitlab.add_issue(7, "Add a greeting", &["bug"]);
    w.start();

    let to_analyse = w.person_labels(7, &["orch::To Analyse"], &[]);
    // A wrong token, a prefix of it, none: 401, and nothing happens (no
    // task, no call to GitLab).
    let calls = w.gitlab.m().requests.len();
    assert_eq!(w.deliver_with(&to_analyse, "wrong", "k-bad"), 401);
    assert_eq!(w.deliver_with(&to_analyse, &SECRET[..6], "k-bad2"), 401);
    assert!(
        show(w.dir(), "demo-7").is_none(),
        "a refused delivery made a task"
    );
    assert_eq!(
        w.gitlab.m().requests.len(),
        calls,
        "a refused delivery called GitLab"
    );

    assert_eq!(w.deliver(&to_analyse, "k-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "k-1"), 200, "the replay is a no-op");
    w.wait_label(7, "orch::Awaiting Approval").await;
    let labels = w.gitlab.labels_of(7);
    assert!(
        labels.contains(&"bug".to_string()) && !labels.contains(&"orch::To Analyse".to_string()),
        "the gate label was replaced by orch's, the person's kept: {labels:?}"
    );

    let approved = w.person_labels(7, &["orch::Approved"], &["orch::Awaiting Approval"]);
    assert_eq!(w.deliver(&approved, "k-2"), 202);
    assert_eq!(w.deliver(&approved, "k-2"), 200, "the replay is a no-op");
    w.wait_label(7, "orch::Done").await;

    let v = w.site.wait_done("demo-7").await;
    w.site.assert_merged_once(&v, "demo-7");
    let (mrs, statuses, merge_sha) = {
        let m = w.gitlab.m();
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
    let labels = w.gitlab.labels_of(7);
    let states: Vec<&String> = labels.iter().filter(|l| l.starts_with("orch::")).collect();
    assert_eq!(states, ["orch::Done"], "{labels:?}");
    assert!(labels.contains(&"bug".to_string()));
    // orch's notes, each marked as orch's.
    assert_orchs_comments(&w.gitlab.comments_of(7));
}
