//! The states of each Plane project, cached: webhooks and the API speak state
//! uuids, orch's config speaks names. An unknown id or name refreshes the
//! project's list (a state added or renamed in Plane); the same miss refreshes
//! again only after `min_refresh`, so a storm of odd deliveries cannot burn
//! the call budget.

use super::client::{PlaneClient, PlaneState};
use crate::http::ApiError;
use orch_config::{same_state, state_key};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

struct Entry {
    states: Vec<PlaneState>,
    /// Ids and names that were still unknown after a refresh, and when: the
    /// same miss does not refresh again within `min_refresh`.
    misses: HashMap<String, Instant>,
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
        self.find(client, project, id, |s| s.id == id)
            .await
            .map(|s| s.map(|s| s.name))
    }

    /// The id of the state named `name` in `project`, by the one rule for
    /// state names (`orch_config::same_state`: trimmed, case-insensitive).
    pub async fn id_of(
        &self,
        client: &PlaneClient,
        project: &str,
        name: &str,
    ) -> Result<Option<String>, ApiError> {
        let want = state_key(name);
        self.find(client, project, &format!("name:{want}"), |s| {
            same_state(&s.name, name)
        })
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
                misses: HashMap::new(),
            },
        );
        Ok(states)
    }

    async fn find(
        &self,
        client: &PlaneClient,
        project: &str,
        miss_key: &str,
        pred: impl Fn(&PlaneState) -> bool,
    ) -> Result<Option<PlaneState>, ApiError> {
        // Held across the fetch, so concurrent misses make one call, not many.
        let mut map = self.projects.lock().await;
        if let Some(e) = map.get(project) {
            if let Some(s) = e.states.iter().find(|s| pred(s)) {
                return Ok(Some(s.clone()));
            }
            if e.misses
                .get(miss_key)
                .is_some_and(|t| t.elapsed() < self.min_refresh)
            {
                return Ok(None);
            }
        }
        let states = client.list_states(project).await?;
        let found = states.iter().find(|s| pred(s)).cloned();
        let mut misses = map.remove(project).map(|e| e.misses).unwrap_or_default();
        if found.is_none() {
            misses.insert(miss_key.to_owned(), Instant::now());
        }
        map.insert(project.to_owned(), Entry { states, misses });
        Ok(found)
    }
}
