//! In-process fakes of Plane and Gitea for tests (feature `fakes`): wiremock
//! servers whose single responder reads and changes an in-memory model of the
//! provider, so the production clients run unchanged against them. Failure
//! injection (a 429 or 500 storm) is a field of the model.

pub mod gitea;
pub mod gitea_issues;
pub mod github;
pub mod gitlab;
pub mod jira;
mod jira_search;
pub mod linear;
pub mod plane;

pub use gitea::FakeGitea;
pub use github::FakeGithub;
pub use gitlab::FakeGitlab;
pub use jira::FakeJira;
pub use linear::FakeLinear;
pub use plane::FakePlane;

/// One request the fake received: for contract checks and call counts.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
}

pub(crate) fn seen(req: &wiremock::Request) -> Seen {
    Seen {
        method: req.method.to_string(),
        path: req.url.path().to_owned(),
        query: req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        body: serde_json::from_slice(&req.body).ok(),
    }
}

pub(crate) fn json(status: u16, v: serde_json::Value) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(status).set_body_json(v)
}

/// Now as the providers write it: RFC 3339 in UTC with microseconds
/// (`2026-05-20T10:01:11.123456Z`, Django's form) or whole seconds
/// (`2026-05-20T10:01:11Z`, GitHub's).
pub(crate) fn now_rfc3339(micros: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = if micros {
        now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
    } else {
        now.replace_nanosecond(0)
    }
    .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `git --git-dir <bare> args…`: the fakes of forges keep their branches
/// in a real bare repository orch pushes to. `None` when git fails.
pub(crate) fn git(bare: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit `branch` points at in the bare repository, if it exists.
pub(crate) fn branch_sha(bare: &std::path::Path, branch: &str) -> Option<String> {
    git(
        bare,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}^{{commit}}"),
        ],
    )
}
