//! The reference payloads parse to the events orch acts on, and their
//! signatures (webhook-signatures.txt) verify; any change breaks them.

use orch_integrations::signature::{self, SignatureError};
use orch_integrations::webhook::{CheckReported, StateRef, WebhookEvent, gitea, github, plane};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// (file, secret, signature) from webhook-signatures.txt.
fn vectors() -> Vec<(String, String, String)> {
    let text = String::from_utf8(fixture("webhook-signatures.txt")).unwrap();
    let mut out = Vec::new();
    let (mut file, mut secret) = (None::<String>, None::<String>);
    for line in text.lines() {
        let t = line.trim();
        if t.ends_with(".json") {
            file = Some(t.to_owned());
        } else if let Some(s) = t.strip_prefix("secret   = ") {
            secret = Some(s.to_owned());
        } else if let Some((_, sig)) = t.split_once("-Signature = ") {
            out.push((
                file.clone().unwrap(),
                secret.clone().unwrap(),
                sig.to_owned(),
            ));
        }
    }
    out
}

fn path_of(file: &str) -> String {
    if file.starts_with("plane") {
        format!("plane/{file}")
    } else {
        format!("gitea/{file}")
    }
}

#[test]
fn every_reference_signature_verifies_and_a_one_byte_change_does_not() {
    let v = vectors();
    assert_eq!(v.len(), 6, "all six vectors are read");
    for (file, secret, sig) in v {
        let body = fixture(&path_of(&file));
        assert_eq!(signature::sign(secret.as_bytes(), &body), sig, "{file}");
        signature::verify(secret.as_bytes(), &body, Some(&sig), "X-Sig", None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        // GitHub-style header of the same digest.
        signature::verify(
            secret.as_bytes(),
            &body,
            Some(&format!("sha256={sig}")),
            "X",
            Some("sha256="),
        )
        .unwrap();
        let mut changed = body.clone();
        let mid = changed.len() / 2;
        changed[mid] ^= 1;
        assert_eq!(
            signature::verify(secret.as_bytes(), &changed, Some(&sig), "X-Sig", None),
            Err(SignatureError::Mismatch),
            "{file}"
        );
        assert_eq!(
            signature::verify(b"wrong secret", &body, Some(&sig), "X-Sig", None),
            Err(SignatureError::Mismatch)
        );
        // Re-serialising the body (what a careless receiver does) breaks it too.
        let reser =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).unwrap())
                .unwrap();
        assert!(signature::verify(secret.as_bytes(), &reser, Some(&sig), "X-Sig", None).is_err());
    }
}

fn item_state(ev: WebhookEvent) -> orch_integrations::webhook::ItemState {
    match ev {
        WebhookEvent::ItemState(s) => s,
        other => panic!("expected an item state, got {other:?}"),
    }
}

#[test]
fn plane_v1_state_changes_from_web_and_api_are_one_change() {
    let web = item_state(
        plane::parse(&fixture("plane/plane-issue-updated.json"), Some("issue")).unwrap(),
    );
    let api = item_state(
        plane::parse(
            &fixture("plane/plane-issue-updated-via-api.json"),
            Some("issue"),
        )
        .unwrap(),
    );
    assert_eq!(web.item, "775c5716-5302-4617-bb9f-2cd843911268");
    assert_eq!(web.project, "59e3be42-87ec-4950-99a3-ae639cf2b089");
    assert_eq!(
        web.state,
        StateRef::Id {
            id: "067b88e5-304b-4221-ba09-94340dcc36e5".into(),
            name: Some("Done".into())
        }
    );
    // `state` and `state_id` deliveries of one change de-duplicate.
    assert_eq!(web.change_key, api.change_key);
    assert_eq!(web, api);
}

#[test]
fn plane_v1_created_carries_its_state_and_other_fields_are_ignored() {
    let created =
        item_state(plane::parse(&fixture("plane/plane-issue-created.json"), None).unwrap());
    assert_eq!(
        created.state,
        StateRef::Id {
            id: "3f0e2b6a-5c55-4f0e-9d59-0d2a4b8f1a10".into(),
            name: Some("Todo".into())
        }
    );
    // A sort_order delivery of a kanban drag: not a state change.
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("plane/plane-issue-updated.json")).unwrap();
    v["activity"]["field"] = "sort_order".into();
    let ev = plane::parse(&serde_json::to_vec(&v).unwrap(), Some("issue")).unwrap();
    assert!(matches!(ev, WebhookEvent::Ignored { .. }), "{ev:?}");
    // Old servers: "update" and a delete with only an id.
    v["activity"]["field"] = "state".into();
    v["action"] = "update".into();
    assert!(matches!(
        plane::parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::ItemState(_)
    ));
    let del = br#"{"event":"issue","action":"deleted","webhook_id":"w","workspace_id":"x","data":{"id":"i"},"activity":{"field":null}}"#;
    assert!(matches!(
        plane::parse(del, None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    let project = br#"{"event":"project","action":"updated","data":{"id":"p"}}"#;
    assert!(matches!(
        plane::parse(project, None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    // A relevant event that lacks its ids is malformed, not ignored.
    let broken = br#"{"event":"issue","action":"created","data":{"state":{"id":"s"}}}"#;
    assert!(plane::parse(broken, None).is_err());
    assert!(plane::parse(b"{not json", None).is_err());
    assert!(plane::parse(b"[1,2]", None).is_err());
}

#[test]
fn plane_v2_uses_state_id_and_previous_attributes() {
    let body = br#"{"version":"v2","delivery_id":"d","event_id":"e","entity_id":"item-1","entity_type":"workitem","event":"workitem.updated","webhook_id":"w","workspace_id":"ws","data":{"id":"item-1","project_id":"proj-1","state_id":"st-9","updated_at":"2026-05-20T10:00:00Z"},"previous_attributes":{"state_id":"st-1"}}"#;
    let s = item_state(plane::parse(body, Some("workitem.updated")).unwrap());
    assert_eq!((s.item.as_str(), s.project.as_str()), ("item-1", "proj-1"));
    assert_eq!(
        s.state,
        StateRef::Id {
            id: "st-9".into(),
            name: None
        }
    );
    let other = br#"{"version":"v2","event":"workitem.updated","data":{"id":"item-1","project_id":"p","state_id":"s"},"previous_attributes":{"name":"old"}}"#;
    assert!(matches!(
        plane::parse(other, None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
}

/// Issue 15: one example of Plane's v2 docs has `event` as the Python enum
/// (`WebhookScope.ScopeChoices.WORK_ITEM_UPDATED`, fixtures/plane/README.md);
/// such a delivery is read, falling back to `X-Plane-Event` and
/// `entity_type` when the body's name cannot be read.
#[test]
fn plane_v2_event_as_an_enum_string_is_read() {
    let change = fixture("plane/plane-v2-enum-event-state-change.json");
    for header in [None, Some("workitem.updated"), Some("issue")] {
        let s = item_state(plane::parse(&change, header).unwrap());
        assert_eq!(
            (s.item.as_str(), s.project.as_str()),
            (
                "775c5716-5302-4617-bb9f-2cd843911268",
                "59e3be42-87ec-4950-99a3-ae639cf2b089"
            ),
            "{header:?}"
        );
        assert_eq!(
            s.state,
            StateRef::Id {
                id: "067b88e5-304b-4221-ba09-94340dcc36e5".into(),
                name: None
            }
        );
    }
    // The docs' own example changed only last_activity_at: a work item
    // update (not "not about work items"), which needs nothing.
    let docs = plane::parse(
        &fixture("plane/plane-v2-enum-event-docs.json"),
        Some("workitem.updated"),
    )
    .unwrap();
    assert!(
        matches!(&docs, WebhookEvent::Ignored { reason } if reason.contains("did not touch the state")),
        "{docs:?}"
    );

    let mut v: serde_json::Value = serde_json::from_slice(&change).unwrap();
    // An event name orch cannot read: the header decides...
    v["event"] = "something-else".into();
    let body = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        plane::parse(&body, Some("workitem.updated")).unwrap(),
        WebhookEvent::ItemState(_)
    ));
    assert!(matches!(
        plane::parse(&body, Some("workitem.comment.created")).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    // ... and without a readable header, the entity_type.
    let s = item_state(plane::parse(&body, None).unwrap());
    assert_eq!(s.item, "775c5716-5302-4617-bb9f-2cd843911268");
    v["entity_type"] = "cycle".into();
    assert!(matches!(
        plane::parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    // Other enum members are other events, not work item states.
    v["event"] = "WebhookScope.ScopeChoices.WORK_ITEM_COMMENT_CREATED".into();
    v["entity_type"] = "issue".into();
    assert!(matches!(
        plane::parse(&serde_json::to_vec(&v).unwrap(), Some("issue")).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    v["event"] = "WebhookScope.ScopeChoices.WORK_ITEM_CREATED".into();
    assert!(matches!(
        plane::parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::ItemState(_)
    ));
}

#[test]
fn gitea_merged_pull_request_uses_head_label() {
    let ev = gitea::parse(
        &fixture("gitea/gitea-pull-request-merged.json"),
        Some("pull_request"),
    )
    .unwrap();
    let WebhookEvent::PullRequestClosed(pr) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(pr.repo, "acme/app");
    assert_eq!(pr.number, 42);
    assert_eq!(pr.branch, "plane/PROJ-123-fix-login");
    assert_eq!(pr.base, "main");
    assert!(pr.merged);
    assert_eq!(
        pr.merge_commit_sha.as_deref(),
        Some("4d2c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a29180")
    );
    // After the branch's deletion `head.ref` is `refs/pull/42/head`; the label still names it.
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitea/gitea-pull-request-merged.json")).unwrap();
    v["pull_request"]["head"]["ref"] = "refs/pull/42/head".into();
    let WebhookEvent::PullRequestClosed(pr) =
        gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("pull_request")).unwrap()
    else {
        panic!()
    };
    assert_eq!(pr.branch, "plane/PROJ-123-fix-login");
    assert!(matches!(
        gitea::parse(&fixture("gitea/gitea-push.json"), Some("push")).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    // A commit status makes the merge gate look at the checks again.
    assert_eq!(
        gitea::parse(&fixture("gitea/gitea-status.json"), Some("status")).unwrap(),
        WebhookEvent::CheckReported(CheckReported {
            repo: "acme/app".into(),
            sha: "9c1f4e2a7b3d5e6f8091a2b3c4d5e6f708192a3b".into(),
            name: "ci / test (pull_request)".into(),
            state: "success".into(),
        })
    );
    v["action"] = "synchronized".into();
    assert!(matches!(
        gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("pull_request")).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
}

#[test]
fn github_pull_request_and_labels() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("gitea/gitea-pull-request-merged.json")).unwrap();
    v["pull_request"]["head"]["label"] = "acme:plane/PROJ-123-fix-login".into();
    let WebhookEvent::PullRequestClosed(pr) =
        github::parse(&serde_json::to_vec(&v).unwrap(), Some("pull_request")).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        pr.branch, "plane/PROJ-123-fix-login",
        "GitHub names the branch in head.ref"
    );
    let labeled = br#"{"action":"labeled","issue":{"number":7,"updated_at":"t"},"label":{"name":"Approved"},"repository":{"full_name":"acme/app"}}"#;
    let s = item_state(github::parse(labeled, Some("issues")).unwrap());
    assert_eq!((s.project.as_str(), s.item.as_str()), ("acme/app", "7"));
    assert_eq!(s.state, StateRef::Name("Approved".into()));
    assert!(matches!(
        github::parse(labeled, Some("ping")).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
}

/// Gitea's label event carries every label the issue has after the change;
/// other issue actions and labels on pull requests mean nothing to orch.
#[test]
fn gitea_issue_label_events_carry_the_whole_label_set() {
    let body = fixture("gitea/gitea-issue-label-updated.json");
    let ev = gitea::parse(&body, Some("issue_label")).unwrap();
    let WebhookEvent::ItemState(s) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!((s.project.as_str(), s.item.as_str()), ("acme/demo", "7"));
    assert_eq!(
        s.state,
        StateRef::Labels(
            ["bug", "Awaiting Approval", "Approved"]
                .map(String::from)
                .to_vec()
        )
    );
    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // Label order is not the change: the same set keys the same.
    v["issue"]["labels"].as_array_mut().unwrap().reverse();
    let WebhookEvent::ItemState(r) =
        gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("issue_label")).unwrap()
    else {
        panic!()
    };
    assert_eq!(r.change_key, s.change_key);
    // Opening an issue with its labels is a state too; `X-Gitea-Event: issues`.
    v["action"] = "opened".into();
    assert!(matches!(
        gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("issues")).unwrap(),
        WebhookEvent::ItemState(_)
    ));
    v["action"] = "edited".into();
    assert!(matches!(
        gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("issues")).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    v["action"] = "label_cleared".into();
    v["issue"]["labels"] = serde_json::json!([]);
    assert_eq!(
        match gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("issue_label")).unwrap() {
            WebhookEvent::ItemState(s) => s.state,
            e => panic!("{e:?}"),
        },
        StateRef::Labels(vec![])
    );
    v["issue"]["pull_request"] = serde_json::json!({"merged": false});
    assert!(matches!(
        gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("issue_label")).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    v["issue"] = serde_json::Value::Null;
    assert!(gitea::parse(&serde_json::to_vec(&v).unwrap(), Some("issue_label")).is_err());
}

/// GitHub's CI events, shaped as its webhook documentation describes them
/// (`check_run.head_sha`, `check_run.name`, `check_run.conclusion`; a
/// `status` event's `sha`, `context`, `state`): each is a check reported.
#[test]
fn github_ci_events_are_checks_reported() {
    let run = br#"{"action":"completed","check_run":{"id":4,"head_sha":"abc123","name":"test","status":"completed","conclusion":"failure"},"repository":{"full_name":"acme/app"}}"#;
    assert_eq!(
        github::parse(run, Some("check_run")).unwrap(),
        WebhookEvent::CheckReported(CheckReported {
            repo: "acme/app".into(),
            sha: "abc123".into(),
            name: "test".into(),
            state: "failure".into(),
        })
    );
    let status = br#"{"sha":"abc123","context":"ci/build","state":"pending","repository":{"full_name":"acme/app"}}"#;
    assert!(matches!(
        github::parse(status, Some("status")).unwrap(),
        WebhookEvent::CheckReported(ref c) if c.name == "ci/build" && c.state == "pending"
    ));
    // A check run without its commit is malformed, not ignored.
    let broken = br#"{"action":"completed","check_run":{"name":"test"},"repository":{"full_name":"acme/app"}}"#;
    assert!(github::parse(broken, Some("check_run")).is_err());
}

/// Reviews of a pull request (Gitea's `pull_request_review_*` event types,
/// GitHub's `pull_request_review` and `pull_request_review_comment`) are
/// reviews reported; the same review delivered twice has the same key.
#[test]
fn reviews_of_a_pull_request_are_reported() {
    let gitea = br#"{"action":"reviewed","number":3,"pull_request":{"number":3,"head":{"sha":"abc"}},"repository":{"full_name":"acme/app"},"review":{"type":"pull_request_review_rejected","content":"fix it"}}"#;
    let WebhookEvent::ReviewReported(r) =
        gitea::parse(gitea, Some("pull_request_review_rejected")).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (r.repo.as_str(), r.number, r.state.as_str()),
        ("acme/app", 3, "rejected")
    );
    let again = gitea::parse(gitea, Some("pull_request_review_rejected")).unwrap();
    assert!(matches!(again, WebhookEvent::ReviewReported(ref a) if a.review_key == r.review_key));
    let github = br#"{"action":"submitted","review":{"id":80,"state":"changes_requested","body":"no"},"pull_request":{"number":7,"head":{"ref":"feature/x"}},"repository":{"full_name":"acme/app"}}"#;
    assert!(matches!(
        github::parse(github, Some("pull_request_review")).unwrap(),
        WebhookEvent::ReviewReported(ref r) if r.number == 7 && r.state == "changes_requested"
    ));
    let broken =
        br#"{"action":"submitted","review":{"id":80},"repository":{"full_name":"acme/app"}}"#;
    assert!(github::parse(broken, Some("pull_request_review")).is_err());
}
