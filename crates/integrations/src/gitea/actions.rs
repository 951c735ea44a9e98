//! The log of a failed Gitea Actions job, for the developer's prompt
//! (issue 16 point 2: the tail of a failed check's log, fetched through the
//! forge's API where it offers one).
//!
//! Gitea Actions reports each job as a commit status whose link is the
//! job's page, `…/actions/runs/{run number}/jobs/{job index}`. The API names
//! runs and jobs by their ids instead, so the log is three calls away: the
//! runs of the commit (`GET …/actions/runs?head_sha=`) give the run's id
//! from its number, the run's jobs (`GET …/actions/runs/{id}/jobs`, in the
//! order of their index) the job's id, and `GET …/actions/jobs/{id}/logs`
//! the log. A status that is not an Actions job's (another CI), an older
//! Gitea without these endpoints, or Actions switched off leave the check
//! with its description alone.

use super::client::GiteaClient;
use crate::http::ApiError;
use reqwest::Method;
use serde::Deserialize;

/// `ActionWorkflowRun`, as orch reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionRun {
    pub id: u64,
    #[serde(default)]
    pub run_number: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct ActionRuns {
    #[serde(default)]
    workflow_runs: Vec<ActionRun>,
}

/// `ActionWorkflowJob`, as orch reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionJob {
    pub id: u64,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ActionJobs {
    #[serde(default)]
    jobs: Vec<ActionJob>,
}

/// The run number and job index of an Actions job's page link.
pub fn job_link(target_url: &str) -> Option<(u64, usize)> {
    let (_, rest) = target_url.rsplit_once("/actions/runs/")?;
    let (run, rest) = rest.split_once("/jobs/")?;
    let job = rest.split(['/', '?', '#']).next()?;
    Some((run.parse().ok()?, job.parse().ok()?))
}

impl GiteaClient {
    /// The log of the Actions job behind a commit status of `sha` whose
    /// link is `target_url`; `None` when the link is not an Actions job's or
    /// Gitea does not know the run or the job (or has no Actions API).
    pub async fn job_log(
        &self,
        full: &str,
        sha: &str,
        target_url: &str,
    ) -> Result<Option<String>, ApiError> {
        let Some((run_number, job_index)) = job_link(target_url) else {
            return Ok(None);
        };
        let runs = self
            .api
            .call(
                Method::GET,
                &format!("/repos/{full}/actions/runs"),
                &[("head_sha", sha.to_owned()), ("limit", "50".into())],
                None,
            )
            .await?;
        if runs.status == 404 {
            return Ok(None);
        }
        if !runs.ok() {
            return Err(runs.error());
        }
        let runs: ActionRuns = runs.json()?;
        let Some(run) = runs
            .workflow_runs
            .iter()
            .find(|r| r.run_number == run_number)
        else {
            return Ok(None);
        };
        let jobs: ActionJobs = self
            .api
            .get_json(
                &format!("/repos/{full}/actions/runs/{}/jobs", run.id),
                &[("limit", "50".into())],
            )
            .await?;
        let Some(job) = jobs.jobs.get(job_index) else {
            return Ok(None);
        };
        let log = self
            .api
            .call(
                Method::GET,
                &format!("/repos/{full}/actions/jobs/{}/logs", job.id),
                &[],
                None,
            )
            .await?;
        match log.status {
            404 => Ok(None),
            _ if log.ok() => Ok(Some(String::from_utf8_lossy(&log.body).into_owned())),
            _ => Err(log.error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::job_link;

    #[test]
    fn job_links_are_read_from_the_page_of_an_actions_job() {
        assert_eq!(
            job_link("https://git.example.org/acme/app/actions/runs/12/jobs/1"),
            Some((12, 1))
        );
        assert_eq!(
            job_link("http://127.0.0.1:3000/acme/app/actions/runs/7/jobs/0?attempt=2"),
            Some((7, 0))
        );
        assert_eq!(job_link("https://ci.example.org/builds/12"), None);
        assert_eq!(job_link("https://g/acme/app/actions/runs/x/jobs/1"), None);
        assert_eq!(job_link(""), None);
    }
}
