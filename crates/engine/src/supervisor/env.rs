//! The agent's environment: only variables the configuration allows pass
//! through from the orchestrator, plus literal settings and orch's own context.
//! Everything else — the orchestrator's secrets above all — stays out.

use orch_core::{Job, RunId, Task};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct AgentEnv {
    /// Names of the orchestrator's variables passed through when set.
    pub allow: Vec<String>,
    /// Literal variables set for every agent.
    pub set: BTreeMap<String, String>,
}

/// The complete environment of one run.
pub fn agent_env(cfg: &AgentEnv, task: &Task, job: &Job, run: &RunId) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in &cfg.allow {
        if let Ok(v) = std::env::var(name) {
            env.insert(name.clone(), v);
        }
    }
    env.extend(cfg.set.clone());
    let wid = task.original_work_item_id();
    env.insert("ORCH_TASK_ID".into(), task.id.to_string());
    env.insert("ORCH_WORK_ITEM".into(), wid.to_owned());
    env.insert("ORCH_STAGE".into(), task.stage.to_string());
    env.insert("ORCH_AGENT".into(), job.agent.to_string());
    env.insert("ORCH_DOCS_DIR".into(), format!("docs/work-items/{wid}"));
    env.insert("ORCH_BRANCH".into(), task.branch.clone());
    env.insert("ORCH_RUN_ID".into(), run.to_string());
    env
}
