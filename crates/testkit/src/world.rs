//! One world for the binary-level tests against a fake tracker (and
//! perhaps a fake forge): the demo site (`Site`: the repository, its bare
//! remote, the example agents, orch.toml), the fakes, `orch serve` started
//! with the tracker's secrets, and the verbs the tests speak in — a person
//! moves an item (`move_to`), the tracker's delivery reaches orch's webhook
//! route (`deliver`), then wait for a stage (`wait_for_stage`), a state in
//! the tracker (`wait_for_state`) or a comment of orch's (`expect_comment`).
//! Every wait looks again only after the engine signalled a change
//! (`crate::wait`), never after a sleep.

use crate::tracker_world::{DEADLINE, Site, no_proxy};
use orch_integrations::fakes::{
    FakeGitea, FakeGithub, FakeGitlab, FakeJira, FakeLinear, FakePlane,
};
use orch_integrations::signature::sign;
use serde_json::Value;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fake tracker as a `World` drives it: what a person does in it, the
/// delivery it then sends orch, and what it shows.
pub trait FakeTracker {
    /// orch's webhook route for this tracker's deliveries.
    const ROUTE: &'static str;

    /// The headers of delivery `id`, proven by `proof` (its signature or
    /// token, as the tracker sends it).
    fn headers(id: &str, proof: &str) -> Vec<(&'static str, String)>;

    /// The proof a delivery of `body` carries from a tracker that holds the
    /// webhook secret `secret`: most sign it with HMAC-SHA256, in hex.
    fn proof(secret: &str, body: &[u8]) -> String {
        sign(secret.as_bytes(), body)
    }

    /// A person moves `item` to `state` in the tracker; the body of the
    /// delivery the tracker sends orch for it.
    fn person_moves(&self, item: &str, state: &str) -> Vec<u8>;

    /// What the tracker shows as `item`'s state now: its state, or its
    /// labels where the states are labels.
    fn state_of(&self, item: &str) -> Vec<String>;

    /// The bodies of the comments on `item`, oldest first.
    fn comments_of(&self, item: &str) -> Vec<String>;

    /// The key of `item`'s task in orch: the item itself, unless the
    /// tracker prefixes it.
    fn key(&self, item: &str) -> String {
        item.to_owned()
    }
}

fn number(item: &str) -> u64 {
    item.parse()
        .unwrap_or_else(|_| panic!("an issue number, not {item:?}"))
}

/// Gitea's issues, their states as labels (`issue_label` deliveries, signed
/// `X-Gitea-Signature`); tasks of the repository `demo`.
impl FakeTracker for FakeGitea {
    const ROUTE: &'static str = "/webhooks/gitea";

    fn headers(id: &str, proof: &str) -> Vec<(&'static str, String)> {
        vec![
            ("X-Gitea-Event", "issues".into()),
            ("X-Gitea-Event-Type", "issue_label".into()),
            ("X-Gitea-Delivery", id.into()),
            ("X-Gitea-Signature", proof.into()),
        ]
    }

    /// The person adds the label `state`.
    fn person_moves(&self, item: &str, state: &str) -> Vec<u8> {
        self.person_labels(number(item), state)
    }

    fn state_of(&self, item: &str) -> Vec<String> {
        self.labels_of(number(item))
    }

    fn comments_of(&self, item: &str) -> Vec<String> {
        FakeGitea::comments_of(self, number(item))
    }

    fn key(&self, item: &str) -> String {
        format!("demo-{item}")
    }
}

/// GitLab's issues, their states as scoped labels (the "Issue Hook",
/// proven by `X-Gitlab-Token`); tasks of the repository `demo`.
impl FakeTracker for FakeGitlab {
    const ROUTE: &'static str = "/webhooks/gitlab";

    fn headers(id: &str, proof: &str) -> Vec<(&'static str, String)> {
        vec![
            ("X-Gitlab-Event", "Issue Hook".into()),
            ("Idempotency-Key", id.into()),
            ("X-Gitlab-Token", proof.into()),
        ]
    }

    fn proof(secret: &str, _body: &[u8]) -> String {
        secret.to_owned()
    }

    /// The person swaps the issue's `orch::` labels for `state` (a label
    /// such as `orch::Approved`); the "Issue Hook" GitLab sends for it (the
    /// stored payload with this issue's labels).
    fn person_moves(&self, item: &str, state: &str) -> Vec<u8> {
        let iid = number(item);
        let old: Vec<String> = self
            .labels_of(iid)
            .into_iter()
            .filter(|l| l.starts_with("orch::"))
            .collect();
        let old: Vec<&str> = old.iter().map(String::as_str).collect();
        self.person_labels(iid, &[state], &old);
        let labels = self.labels_of(iid);
        let (path, updated) = {
            let m = self.m();
            let updated = orch_integrations::fakes::gitlab::fake_time(m.issues[&iid].updated);
            (m.path.clone(), updated)
        };
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../integrations/tests/fixtures/gitlab/issue-hook.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let ls: Vec<Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| serde_json::json!({"id": i + 1, "title": l, "type": "ProjectLabel"}))
            .collect();
        v["project"]["path_with_namespace"] = path.into();
        v["object_attributes"]["iid"] = iid.into();
        v["object_attributes"]["action"] = "update".into();
        v["object_attributes"]["updated_at"] = updated.into();
        v["labels"] = Value::Array(ls.clone());
        v["changes"]["labels"]["current"] = Value::Array(ls);
        serde_json::to_vec(&v).unwrap()
    }

    fn state_of(&self, item: &str) -> Vec<String> {
        self.labels_of(number(item))
    }

    fn comments_of(&self, item: &str) -> Vec<String> {
        FakeGitlab::comments_of(self, number(item))
    }

    fn key(&self, item: &str) -> String {
        format!("demo-{item}")
    }
}

/// Jira's issues and statuses (`jira:issue_updated`, signed
/// `X-Hub-Signature: sha256=…`); a task is keyed by its issue.
impl FakeTracker for FakeJira {
    const ROUTE: &'static str = "/webhooks/jira";

    fn headers(id: &str, proof: &str) -> Vec<(&'static str, String)> {
        vec![
            ("X-Atlassian-Webhook-Identifier", id.into()),
            ("X-Atlassian-Webhook-Flow", "Primary".into()),
            ("X-Hub-Signature", proof.into()),
        ]
    }

    fn proof(secret: &str, body: &[u8]) -> String {
        format!("sha256={}", sign(secret.as_bytes(), body))
    }

    /// The person moves the issue on the board; the webhook names the
    /// status it left.
    fn person_moves(&self, item: &str, state: &str) -> Vec<u8> {
        let from = self.status_of(item);
        FakeJira::person_moves(self, item, state);
        serde_json::to_vec(&self.issue_webhook(item, Some(&from))).unwrap()
    }

    fn state_of(&self, item: &str) -> Vec<String> {
        vec![self.status_of(item)]
    }

    fn comments_of(&self, item: &str) -> Vec<String> {
        FakeJira::comments_of(self, item)
    }
}

/// Linear's issues and workflow states (the `Issue` webhook, signed
/// `Linear-Signature`); a task is keyed by its issue.
impl FakeTracker for FakeLinear {
    const ROUTE: &'static str = "/webhooks/linear";

    fn headers(id: &str, proof: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Linear-Event", "Issue".into()),
            ("Linear-Delivery", id.into()),
            ("Linear-Signature", proof.into()),
        ]
    }

    /// The person moves the issue; the webhook names the state it left
    /// (`updatedFrom.stateId`).
    fn person_moves(&self, item: &str, state: &str) -> Vec<u8> {
        let from = FakeLinear::state_of(self, item);
        FakeLinear::person_moves(self, item, state);
        serde_json::to_vec(&self.issue_webhook(item, Some(&from))).unwrap()
    }

    fn state_of(&self, item: &str) -> Vec<String> {
        vec![FakeLinear::state_of(self, item)]
    }

    fn comments_of(&self, item: &str) -> Vec<String> {
        FakeLinear::comments_of(self, item)
    }
}

/// Plane's work items (the `issue` delivery, signed `X-Plane-Signature`);
/// a task is keyed `<PROJECT IDENTIFIER>-<sequence_id>`.
impl FakeTracker for FakePlane {
    const ROUTE: &'static str = "/webhooks/plane";

    fn headers(id: &str, proof: &str) -> Vec<(&'static str, String)> {
        vec![
            ("X-Plane-Event", "issue".into()),
            ("X-Plane-Delivery", id.into()),
            ("X-Plane-Signature", proof.into()),
        ]
    }

    fn person_moves(&self, item: &str, state: &str) -> Vec<u8> {
        self.move_item(item, state)
    }

    fn state_of(&self, item: &str) -> Vec<String> {
        vec![self.item_state(item)]
    }

    fn comments_of(&self, item: &str) -> Vec<String> {
        self.comments(item)
    }

    fn key(&self, item: &str) -> String {
        FakePlane::key(self, item)
    }
}

/// A fake forge as a `World` drives it: the deliveries it sends orch, and
/// the CI finishing a check on it.
pub trait FakeForge {
    /// orch's webhook route for this forge's deliveries.
    const ROUTE: &'static str;

    /// The headers of delivery `id` of `event` (Gitea's event type, such as
    /// `status` or `pull_request_review_approved`; GitHub's event), proven
    /// by `proof`.
    fn headers(event: &str, id: &str, proof: &str) -> Vec<(&'static str, String)>;

    /// The proof a delivery of `body` carries from a forge that holds the
    /// webhook secret `secret`: most sign it with HMAC-SHA256, in hex.
    fn proof(secret: &str, body: &[u8]) -> String {
        sign(secret.as_bytes(), body)
    }

    /// The CI finishes the check `check` on `sha`: its conclusion `state`
    /// (`success`, `failure`, `error`) and its `output` are on the fake; the
    /// delivery the forge sends orch for it (event, id, body).
    fn finish_check(
        &self,
        sha: &str,
        check: &str,
        state: &str,
        output: &str,
    ) -> (&'static str, String, Vec<u8>);
}

/// Gitea's commit statuses and reviews (signed `X-Gitea-Signature`).
impl FakeForge for FakeGitea {
    const ROUTE: &'static str = "/webhooks/gitea";

    fn headers(event: &str, id: &str, proof: &str) -> Vec<(&'static str, String)> {
        // Gitea's event header names the review's verdict without `review_`
        // (`pull_request_approved`); its type names it with.
        vec![
            (
                "X-Gitea-Event",
                event.replace("pull_request_review_", "pull_request_"),
            ),
            ("X-Gitea-Event-Type", event.into()),
            ("X-Gitea-Delivery", id.into()),
            ("X-Gitea-Signature", proof.into()),
        ]
    }

    /// A commit status `check` on `sha`, and its `status` delivery (shaped
    /// as the reference payload).
    fn finish_check(
        &self,
        sha: &str,
        check: &str,
        state: &str,
        output: &str,
    ) -> (&'static str, String, Vec<u8>) {
        self.ci_status(sha, check, state, output);
        let body = serde_json::json!({
            "sha": sha, "context": check, "state": state, "description": output,
            "target_url": format!("{}/ci/run", self.uri()),
            "repository": {"full_name": "acme/demo"},
            "sender": {"login": "ci"},
        });
        (
            "status",
            format!("ci-{sha}-{state}"),
            body.to_string().into_bytes(),
        )
    }
}

/// GitHub's check runs and reviews (signed `X-Hub-Signature-256`).
impl FakeForge for FakeGithub {
    const ROUTE: &'static str = "/webhooks/github";

    fn headers(event: &str, id: &str, proof: &str) -> Vec<(&'static str, String)> {
        vec![
            ("X-GitHub-Event", event.into()),
            ("X-GitHub-Delivery", id.into()),
            ("X-Hub-Signature-256", proof.into()),
        ]
    }

    fn proof(secret: &str, body: &[u8]) -> String {
        format!("sha256={}", sign(secret.as_bytes(), body))
    }

    /// A completed check run `check` on `sha` (GitHub Actions), numbered
    /// after the fake's others, and its `check_run` delivery.
    fn finish_check(
        &self,
        sha: &str,
        check: &str,
        state: &str,
        output: &str,
    ) -> (&'static str, String, Vec<u8>) {
        let id = {
            let mut m = self.m();
            let id = m.check_runs.len() as u64 + 1;
            m.check_runs.push(serde_json::json!({
                "id": id, "head_sha": sha, "name": check, "status": "completed",
                "conclusion": state, "html_url": format!("{}/runs/{id}", self.uri()),
                "output": {"title": format!("{check}: {state}"), "summary": "1 test", "text": output},
            }));
            id
        };
        let body = serde_json::json!({
            "action": "completed",
            "check_run": {"id": id, "head_sha": sha, "name": check, "status": "completed", "conclusion": state},
            "repository": {"full_name": "acme/demo"},
            "sender": {"login": "github-actions[bot]"},
        });
        (
            "check_run",
            format!("run-{id}"),
            body.to_string().into_bytes(),
        )
    }
}

/// The world of one binary-level test: the demo site, its fake tracker `T`
/// (`()`: orch's builtin tracker, tasks added with `orch task add`) and its
/// fake forge `F` when the forge is another service (`()`: none, or the
/// tracker is the forge too).
pub struct World<T, F = ()> {
    /// The demo site: repository, bare remote, orch.toml, `orch serve`.
    pub site: Site,
    pub tracker: T,
    pub forge: F,
    /// The tracker's webhook secret: what its deliveries are signed with.
    secret: String,
    /// The forge's webhook secret.
    forge_secret: String,
    /// `orch serve`'s environment (also of the `orch` commands the world runs).
    env: Vec<(String, String)>,
    /// Deliveries sent without an id of the test's: the next one's number.
    sent: Cell<u64>,
}

impl World<()> {
    /// The world on `site` with orch's builtin tracker; `bin` is the `orch`
    /// binary (`env!("CARGO_BIN_EXE_orch")`).
    pub fn builtin(bin: &str, site: Site) -> World<()> {
        World::new(bin, site, (), "")
    }
}

impl<T> World<T> {
    /// The world on `site` with `tracker`, whose deliveries are signed with
    /// `secret`; `bin` is the `orch` binary (`env!("CARGO_BIN_EXE_orch")`).
    pub fn new(bin: &str, site: Site, tracker: T, secret: &str) -> World<T> {
        crate::use_binary(bin);
        World {
            site,
            tracker,
            forge: (),
            secret: secret.to_owned(),
            forge_secret: String::new(),
            env: Vec::new(),
            sent: Cell::new(0),
        }
    }

    /// This world with a fake forge of its own, whose deliveries are signed
    /// with `secret`.
    pub fn with_forge<F>(self, forge: F, secret: &str) -> World<T, F> {
        World {
            site: self.site,
            tracker: self.tracker,
            forge,
            secret: self.secret,
            forge_secret: secret.to_owned(),
            env: self.env,
            sent: self.sent,
        }
    }
}

impl<T, F> World<T, F> {
    pub fn dir(&self) -> &Path {
        self.site.dir()
    }

    /// Write orch.toml: the demo config and `integrations` (the test's
    /// `[tracker]` and `[forge]`).
    pub fn configure(&self, integrations: &str) {
        self.site.configure(integrations);
    }

    /// Start `orch serve` with these variables (the tracker's secrets).
    pub fn start(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.site.start(env);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.site.log()
    }

    /// A delivery id not used before in this world.
    fn new_delivery(&self) -> String {
        let n = self.sent.get() + 1;
        self.sent.set(n);
        format!("kit-delivery-{n}")
    }

    /// `orch task show TASK --json` (a task's id or key) in the world's
    /// environment, or `None` while there is no such task.
    pub fn show(&self, task: &str) -> Option<Value> {
        let out = no_proxy(&mut Command::new(crate::binary()))
            .args(["task", "show", task, "--json"])
            .current_dir(self.dir())
            .env_remove("ORCH_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run orch task show");
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Wait until `check` gives a value, each look after the engine
    /// signalled a change; at the deadline fail with `fail()`, task
    /// `task`'s events and the server's log.
    pub async fn until<R>(
        &self,
        task: &str,
        check: impl FnMut() -> Option<R>,
        fail: impl FnOnce() -> String,
    ) -> R {
        crate::wait::until_async(self.dir(), DEADLINE, check, || {
            format!(
                "{task}: {}; task: {:#?}\nlog:\n{}",
                fail(),
                self.show(task).map(|v| v["events"].clone()),
                self.log()
            )
        })
        .await
    }

    /// Task `task` (id or key) once `done` holds of its `show --json`.
    pub async fn wait_for_task(
        &self,
        task: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.until(
            task,
            || self.show(task).filter(|v| done(v)),
            || format!("{what} never happened"),
        )
        .await
    }

    /// Task `task` (id or key) once it is in `stage`.
    pub async fn wait_for_stage(&self, task: &str, stage: &str) -> Value {
        self.wait_for_task(task, &format!("stage {stage}"), |v| {
            v["task"]["stage"] == stage
        })
        .await
    }
}

impl<T: FakeTracker, F> World<T, F> {
    /// The key of `item`'s task.
    pub fn key(&self, item: &str) -> String {
        self.tracker.key(item)
    }

    /// POST `body` as the tracker's delivery `id` with this proof (a
    /// signature or token, right or wrong); the status.
    pub fn deliver_with(&self, body: &[u8], proof: &str, id: &str) -> u16 {
        post(&self.site, T::ROUTE, &T::headers(id, proof), body)
    }

    /// POST `body` as the tracker's delivery `id`, proven with the secret;
    /// the status.
    pub fn deliver(&self, body: &[u8], id: &str) -> u16 {
        self.deliver_with(body, &T::proof(&self.secret, body), id)
    }

    /// `deliver` under a delivery id not used before in this world.
    pub fn deliver_new(&self, body: &[u8]) -> u16 {
        self.deliver(body, &self.new_delivery())
    }

    /// A person moves `item` to `state` in the tracker; the delivery the
    /// tracker sends for it, not yet delivered.
    pub fn person_moves(&self, item: &str, state: &str) -> Vec<u8> {
        self.tracker.person_moves(item, state)
    }

    /// A person moves `item` to `state` and the tracker tells orch (a new
    /// delivery); the status of orch's answer.
    pub fn move_to(&self, item: &str, state: &str) -> u16 {
        let body = self.person_moves(item, state);
        self.deliver_new(&body)
    }

    /// Wait until the tracker shows `item` in `state` (orch's writes to the
    /// tracker are outbox entries the engine marks sent).
    pub async fn wait_for_state(&self, item: &str, state: &str) {
        self.until(
            &self.key(item),
            || {
                self.tracker
                    .state_of(item)
                    .iter()
                    .any(|s| s == state)
                    .then_some(())
            },
            || {
                format!(
                    "never reached {state:?} in the tracker (it shows {:?})",
                    self.tracker.state_of(item)
                )
            },
        )
        .await
    }

    /// Wait until the tracker holds a comment on `item` with `needle` in
    /// it; that comment.
    pub async fn expect_comment(&self, item: &str, needle: &str) -> String {
        self.until(
            &self.key(item),
            || {
                self.tracker
                    .comments_of(item)
                    .into_iter()
                    .find(|c| c.contains(needle))
            },
            || {
                format!(
                    "no comment with {needle:?} (the comments: {:?})",
                    self.tracker.comments_of(item)
                )
            },
        )
        .await
    }
}

impl<T, F: FakeForge> World<T, F> {
    /// POST `body` as the forge's delivery `id` of `event`, signed with its
    /// secret; the status.
    pub fn deliver_forge(&self, event: &str, id: &str, body: &[u8]) -> u16 {
        let proof = F::proof(&self.forge_secret, body);
        post(&self.site, F::ROUTE, &F::headers(event, id, &proof), body)
    }

    /// The CI finishes the check `check` on `sha` (`state`, `output`) and
    /// the forge tells orch; the status of orch's answer.
    pub fn finish_check(&self, sha: &str, check: &str, state: &str, output: &str) -> u16 {
        let (event, id, body) = self.forge.finish_check(sha, check, state, output);
        self.deliver_forge(event, &id, &body)
    }
}

fn post(site: &Site, route: &str, headers: &[(&'static str, String)], body: &[u8]) -> u16 {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    site.post(route, &headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(hs: &[(&'static str, String)], name: &str) -> String {
        hs.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {hs:?}"))
    }

    #[test]
    fn each_tracker_proves_its_deliveries_as_it_does() {
        let sig = sign(b"s", b"{}");
        assert_eq!(<FakeGitea as FakeTracker>::proof("s", b"{}"), sig);
        assert_eq!(<FakeLinear as FakeTracker>::proof("s", b"{}"), sig);
        assert_eq!(<FakePlane as FakeTracker>::proof("s", b"{}"), sig);
        assert_eq!(FakeJira::proof("s", b"{}"), format!("sha256={sig}"));
        assert_eq!(FakeGitlab::proof("s", b"{}"), "s", "the token itself");
        assert_eq!(
            <FakeGithub as FakeForge>::proof("s", b"{}"),
            format!("sha256={sig}")
        );
        let hs = <FakeGitea as FakeTracker>::headers("d-1", "p");
        assert_eq!(header(&hs, "X-Gitea-Event-Type"), "issue_label");
        assert_eq!(header(&hs, "X-Gitea-Signature"), "p");
        assert_eq!(
            header(&FakeJira::headers("d-1", "p"), "X-Hub-Signature"),
            "p"
        );
    }

    #[test]
    fn a_gitea_review_delivery_names_its_event_as_gitea_does() {
        let hs = <FakeGitea as FakeForge>::headers("pull_request_review_approved", "r", "p");
        assert_eq!(header(&hs, "X-Gitea-Event"), "pull_request_approved");
        assert_eq!(
            header(&hs, "X-Gitea-Event-Type"),
            "pull_request_review_approved"
        );
        let hs = <FakeGitea as FakeForge>::headers("status", "s", "p");
        assert_eq!(header(&hs, "X-Gitea-Event"), "status");
    }
}
