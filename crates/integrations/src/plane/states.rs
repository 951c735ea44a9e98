//! The states of each Plane project, cached: webhooks and the API speak state
//! uuids, orch's config speaks names. An unknown id or name refreshes the
//! project's list once (a state added or renamed in Plane), no more often than
//! `min_refresh`, so a storm of odd deliveries cannot burn the call budget.

use super::client::{PlaneClient, PlaneState};
use crate::http::ApiError;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

struct Entry {
    states: Vec<PlaneState>,
    fetched: Instant,
}

pub struct StateCache {
    projects: Mutex<HashMap<String, Entry>>,
    min_refresh: Duration,
}

impl StateCache {
    pub fn new(min_refresh: Duration) -> StateCache {
        StateCache {
            projects: Mutex::new(HashMap::new()),
            min_refresh,
        }
    }

    /// The name of state `id` in `project`; `None` if Plane does not know it.
    pub async fn name_of(
        &self,
        client: &PlaneClient,
        project: &str,
        id: &str,
    ) -> Result<Option<String>, ApiError> {
        self.find(client, project, |s| s.id == id)
            .await
            .map(|s| s.map(|s| s.name))
    }

    /// The id of the state named `name` (case-insensitive, trimmed: people
    /// type state names) in `project`.
    pub async fn id_of(
        &self,
        client: &PlaneClient,
        project: &str,
        name: &str,
    ) -> Result<Option<String>, ApiError> {
        let want = name.trim().to_lowercase();
        self.find(client, project, |s| s.name.trim().to_lowercase() == want)
            .await
            .map(|s| s.map(|s| s.id))
    }

    /// All states of a project (fetched if not cached).
    pub async fn states(
        &self,
        client: &PlaneClient,
        project: &str,
    ) -> Result<Vec<PlaneState>, ApiError> {
        let mut map = self.projects.lock().await;
        if let Some(e) = map.get(project) {
            return Ok(e.states.clone());
        }
        let states = client.list_states(project).await?;
        map.insert(
            project.to_owned(),
            Entry {
                states: states.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(states)
    }

    async fn find(
        &self,
        client: &PlaneClient,
        project: &str,
        pred: impl Fn(&PlaneState) -> bool,
    ) -> Result<Option<PlaneState>, ApiError> {
        // Held across the fetch, so concurrent misses make one call, not many.
        let mut map = self.projects.lock().await;
        if let Some(e) = map.get(project) {
            if let Some(s) = e.states.iter().find(|s| pred(s)) {
                return Ok(Some(s.clone()));
            }
            if e.fetched.elapsed() < self.min_refresh {
                return Ok(None);
            }
        }
        let states = client.list_states(project).await?;
        let found = states.iter().find(|s| pred(s)).cloned();
        map.insert(
            project.to_owned(),
            Entry {
                states,
                fetched: Instant::now(),
            },
        );
        Ok(found)
    }
}
