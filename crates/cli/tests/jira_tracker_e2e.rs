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

use common::tracker_world::{Listening, demo_toml, git_as_person, seed_demo};
use common::{count_events, show};
use orch_integrations::fakes::FakeJira;
use orch_integrations::signature::sign;
use std::path::Path;
use std::time::{Duration, Instant};

const EMAIL: &str = "orch-bot@example.com";
const TOKEN: &str = "jira_e2e_token";
const SECRET: &str = "jira_wh_e2e_secret";
const DEADLINE: Duration = Duration::from_secs(180);

struct World {
    tmp: tempfile::TempDir,
    jira: FakeJira,
    serve: Option<Listening>,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        seed_demo(tmp.path());
        let jira = FakeJira::start(EMAIL, TOKEN).await;
        // The project ENG has orch's states as statuses, and some of its
        // own; orch's Done is ENG's "Shipped".
        let mut statuses: Vec<String> = orch_config::TrackerStates::default()
            .entries()
            .iter()
            .map(|(_, n)| n.to_string())
            .filter(|n| n != "Done")
            .collect();
        statuses.extend(["Shipped".to_string(), "Backlog".to_string()]);
        jira.add_project(
            "ENG",
            &statuses.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let toml = format!(
            "{}[tracker]\nkind = \"jira\"\n[tracker.jira]\nbase_url = \"{}\"\nemail = \"{EMAIL}\"\n\
             [tracker.jira.projects.ENG]\nstatuses = {{ done = \"Shipped\" }}\n",
            demo_toml(),
            jira.uri(),
        );
        std::fs::write(tmp.path().join("orch.toml"), toml).unwrap();
        World {
            tmp,
            jira,
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
                ("ORCH_JIRA_API_TOKEN", TOKEN),
                ("ORCH_JIRA_WEBHOOK_SECRET", SECRET),
            ],
        ));
    }

    fn log(&self) -> String {
        self.serve.as_ref().map(Listening::log).unwrap_or_default()
    }

    /// Post a Jira webhook with this signature and delivery id; the status.
    fn deliver_with(&self, body: &[u8], signature: &str, delivery: &str) -> u16 {
        let headers = [
            ("X-Atlassian-Webhook-Identifier", delivery),
            ("X-Atlassian-Webhook-Flow", "Primary"),
            ("X-Hub-Signature", signature),
        ];
        self.serve
            .as_ref()
            .unwrap()
            .post("/webhooks/jira", &headers, body)
    }

    fn deliver(&self, body: &[u8], delivery: &str) -> u16 {
        let sig = format!("sha256={}", sign(SECRET.as_bytes(), body));
        self.deliver_with(body, &sig, delivery)
    }

    /// A person moves the issue on Jira's board; the webhook Jira sends.
    fn person_moves(&self, issue: &str, from: &str, to: &str) -> Vec<u8> {
        self.jira.person_moves(issue, to);
        serde_json::to_vec(&self.jira.issue_webhook(issue, Some(from))).unwrap()
    }

    async fn wait_status(&self, issue: &str, status: &str) {
        let end = Instant::now() + DEADLINE;
        while self.jira.status_of(issue) != status {
            assert!(
                Instant::now() < end,
                "issue {issue} never reached {status:?} (it is in {:?}); task: {:#?}\nlog:\n{}",
                self.jira.status_of(issue),
                show(self.dir(), issue).map(|v| v["events"].clone()),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_issue_runs_from_to_analyse_to_merged_and_done() {
    let mut w = World::new().await;
    w.jira.add_issue("ENG-7", "Add a greeting", "Backlog");
    w.start();

    let to_analyse = w.person_moves("ENG-7", "Backlog", "To Analyse");
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
    let transitions_taken = |w: &World| {
        w.jira
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
        w.jira.comments_of("ENG-7").is_empty(),
        "a refused delivery commented"
    );

    assert_eq!(w.deliver(&to_analyse, "d-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "d-1"), 200, "the replay is a no-op");
    w.wait_status("ENG-7", "Awaiting Approval").await;

    let approved = w.person_moves("ENG-7", "Awaiting Approval", "Approved");
    assert_eq!(w.deliver(&approved, "d-2"), 202);
    assert_eq!(
        w.deliver(&approved, "d-3"),
        200,
        "the same change redelivered is a no-op"
    );
    w.wait_status("ENG-7", "Shipped").await;

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
    // Every move orch made went through a transition.
    assert!(transitions_taken(&w) >= 4, "{:?}", w.jira.calls());
    let basic = format!(
        "Basic {}",
        orch_integrations::jira::client::base64(format!("{EMAIL}:{TOKEN}").as_bytes())
    );
    assert!(
        w.jira
            .m()
            .requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(basic.as_str())),
        "Basic auth on every call"
    );
    // orch's comments, in ADF, each marked as orch's.
    let comments = w.jira.comments_of("ENG-7");
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
    assert!(
        w.jira
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
