//! Each team's workflow states, cached: orch's config names states, the
//! API moves issues by state id, and webhooks name the state by id. A name
//! or id the cache lacks refreshes the team (a state added or renamed in
//! Linear), but not again within `min_refresh`: a storm of odd deliveries
//! cannot burn the rate budget.

use super::client::{LinearClient, LnState, LnTeam};
use crate::http::ApiError;
use orch_config::same_state;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub struct TeamStates {
    teams: Mutex<HashMap<String, (LnTeam, Instant)>>,
    min_refresh: Duration,
}

impl TeamStates {
    pub fn new(min_refresh: Duration) -> TeamStates {
        TeamStates {
            teams: Mutex::new(HashMap::new()),
            min_refresh,
        }
    }

    /// The team `key` (cached), read again when `stale` says the cached one
    /// lacks what is wanted; `None`: the key sees no such team.
    pub async fn team(
        &self,
        client: &LinearClient,
        key: &str,
        stale: impl Fn(&LnTeam) -> bool,
    ) -> Result<Option<LnTeam>, ApiError> {
        // Held across the fetch, so concurrent misses make one call.
        let mut map = self.teams.lock().await;
        if let Some((t, at)) = map.get(key)
            && (!stale(t) || at.elapsed() < self.min_refresh)
        {
            return Ok(Some(t.clone()));
        }
        let Some(team) = client.team(key).await? else {
            return Ok(None);
        };
        map.insert(key.to_owned(), (team.clone(), Instant::now()));
        Ok(Some(team))
    }

    /// The team's state named `name` (by `same_state`).
    pub async fn by_name(
        &self,
        client: &LinearClient,
        key: &str,
        name: &str,
    ) -> Result<Option<LnState>, ApiError> {
        let find = |t: &LnTeam| t.states.iter().find(|s| same_state(&s.name, name)).cloned();
        Ok(self
            .team(client, key, |t| find(t).is_none())
            .await?
            .and_then(|t| find(&t)))
    }

    /// The name of the team's state `id`.
    pub async fn name_of(
        &self,
        client: &LinearClient,
        key: &str,
        id: &str,
    ) -> Result<Option<String>, ApiError> {
        let find = |t: &LnTeam| t.states.iter().find(|s| s.id == id).map(|s| s.name.clone());
        Ok(self
            .team(client, key, |t| find(t).is_none())
            .await?
            .and_then(|t| find(&t)))
    }
}
