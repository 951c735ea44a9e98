//! Prepares a claimed job's run (the supervisor's [`RunPreparer`]): the task's
//! worktree, the rendered prompt and the command line.
//!
//! - analyst, developer, reviewer: the configured agent with the stage's prompt;
//! - merger: merges the base into the branch, then runs the repo's `verify`;
//! - deployer: the repo's `deploy.prepare` (phase A) or `deploy.run` (phase B).

use super::view::{Rounds, job_spec};
use crate::supervisor::{PreparedRun, RunPreparer};
use orch_agent::adapters::AdapterKind;
use orch_agent::process::Timeouts;
use orch_agent::process::limits::ResourceLimits;
use orch_agent::process::sandbox::SandboxSpec;
use orch_agent::process::sandbox::egress::Allowlist;
use orch_agent::prompts::{
    DEFAULT_ARTEFACT_BUDGET, DEFAULT_DIFF_BUDGET, PromptContext, PromptSet, RunArgs,
    TemplateOrigin, collect_artefacts, invocation,
};
use orch_config::Config;
use orch_core::pipeline::DeployPhase;
use orch_core::{AgentKind, Job, Task};
use orch_git::{MergeResult, RepoStore};
use orch_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct PipelinePreparer {
    store: Arc<dyn Store>,
    /// Read once per run: a reload applies to the runs prepared after it.
    live: Arc<crate::live_config::LiveConfig>,
    repos: RepoStore,
    /// Where Claude Code and Codex runs find their `orch mcp` tools; `None`:
    /// no tools (no API serves them).
    agent_tools: Option<super::agent_tools::AgentToolsServer>,
}

impl PipelinePreparer {
    pub fn new(store: Arc<dyn Store>, cfg: Arc<Config>, repos: RepoStore) -> PipelinePreparer {
        PipelinePreparer {
            store,
            live: crate::live_config::LiveConfig::fixed(cfg),
            repos,
            agent_tools: None,
        }
    }

    /// Prepare runs with the engine's live configuration.
    pub fn with_live_config(mut self, live: Arc<crate::live_config::LiveConfig>) -> Self {
        self.live = live;
        self
    }

    fn cfg(&self) -> Arc<Config> {
        self.live.current()
    }

    /// Hand every Claude Code and Codex run the `orch mcp` server of
    /// `program`, talking to the API at `api_url`.
    pub fn with_agent_tools(mut self, program: std::path::PathBuf, api_url: String) -> Self {
        self.agent_tools = Some(super::agent_tools::AgentToolsServer { program, api_url });
        self
    }
}

fn adapter_of(a: orch_config::AdapterKind) -> AdapterKind {
    match a {
        orch_config::AdapterKind::Command => AdapterKind::Command,
        orch_config::AdapterKind::ClaudeCode => AdapterKind::ClaudeCode,
        orch_config::AdapterKind::Codex => AdapterKind::Codex,
    }
}

#[async_trait::async_trait]
impl RunPreparer for PipelinePreparer {
    async fn hand_over(&self, job: &Job) -> Result<(), String> {
        if !self.cfg().store_is_shared() {
            return Ok(());
        }
        let task = self
            .store
            .get_task(job.task_id)
            .await
            .map_err(|e| format!("reading task {}: {e}", job.task_id))?
            .ok_or_else(|| format!("task {} no longer exists", job.task_id))?;
        let cfg = self.cfg();
        let Some(repo) = cfg.repo(&task.repo) else {
            return Ok(());
        };
        super::hand_over::push_run_work(&self.repos, &task, job.agent, &repo.default_branch).await
    }

    async fn prepare(&self, task: &Task, job: &Job, run_dir: &Path) -> Result<PreparedRun, String> {
        let cfg = self.cfg();
        let repo = cfg.repo(&task.repo).ok_or_else(|| {
            format!(
                "repo {:?} is not in orch.toml; add a [[repos]] entry for it",
                task.repo
            )
        })?;
        // The mirror is synced when orch starts and whenever a worktree is
        // created; a later run in an existing worktree works on its own branch
        // and needs no fetch (it would cost tens of milliseconds before every
        // agent start). The merger does fetch: it merges the newest base.
        let have_mirror = self.repos.mirror_path(&task.repo).is_ok_and(|p| p.exists());
        if !have_mirror || job.agent == AgentKind::Merger {
            let remote = cfg.repo_remote(repo);
            self.repos
                .ensure_mirror(&task.repo, &remote)
                .await
                .map_err(|e| format!("mirroring {remote}: {e}"))?;
        }
        let wt = self
            .repos
            .create_or_reuse_worktree(&task.repo, &task.branch, &repo.default_branch)
            .await
            .map_err(|e| format!("worktree: {e}"))?;
        // What a killed git left here (a stale index.lock, a merge killed
        // midway) would fail this run's git steps, and the agent's. A git of
        // a killed orch still checking the worktree out is waited for; an
        // agent is never started into a checkout still being written.
        if let Some(who) = super::leftovers::repair_worktree(
            self.store.as_ref(),
            &self.repos,
            task,
            &wt,
            "orch",
            super::leftovers::BUSY_PATIENCE,
        )
        .await
        {
            return Err(format!(
                "worktree {}: another process still works in it ({who}); the run is tried again later",
                wt.path.display()
            ));
        }
        // Another node may have run the task's last step: start from the
        // branch as the remote has it (a fetch; not needed when the last
        // run that handed work over was this node's). The task's history,
        // which an agent's prompt counts its rounds from, is read at the
        // same time: on PostgreSQL each read is a round trip before the
        // agent starts.
        let (here, events) = tokio::join!(
            async {
                !cfg.store_is_shared()
                    || super::hand_over::last_work_was_here(self.store.as_ref(), task, job).await
            },
            async {
                match job.agent {
                    AgentKind::Merger | AgentKind::Deployer => Ok(Vec::new()),
                    _ => self.store.events(task.id).await,
                }
            }
        );
        if !here {
            super::hand_over::catch_up(&self.repos, task).await?;
        }
        let events = events.map_err(|e| format!("reading the task's history: {e}"))?;
        let agent_cfg = cfg.agent(job.agent);
        let timeouts = Timeouts {
            wall: Some(Duration::from_secs(agent_cfg.timeout_secs.max(1))),
            idle: Some(Duration::from_secs(agent_cfg.idle_timeout_secs.max(1))),
        };
        let spec = job_spec(job);
        let command_run = |argv: Vec<String>| -> Result<PreparedRun, String> {
            Ok(PreparedRun {
                cwd: wt.path.clone(),
                sandbox: self.sandbox_for(&cfg, job.agent, &wt, &argv, &BTreeMap::new())?,
                limits: self.resource_limits(),
                argv,
                env: BTreeMap::new(),
                adapter: AdapterKind::Command,
                timeouts,
                previous_total: None,
            })
        };
        match job.agent {
            AgentKind::Merger => {
                // Journaled, so a merge killed midway is undone before the next run.
                match self
                    .repos
                    .merge_base_journaled(&wt, &repo.default_branch)
                    .await
                    .map_err(|e| format!("merging {} into the branch: {e}", repo.default_branch))?
                {
                    MergeResult::Conflict { files } => {
                        return Err(format!(
                            "merging {} into {} conflicts in: {}; resolve it on the branch",
                            repo.default_branch,
                            task.branch,
                            files.join(", ")
                        ));
                    }
                    MergeResult::UpToDate | MergeResult::Merged { .. } => {}
                }
                let verify = if repo.verify.is_empty() {
                    vec!["true".to_owned()]
                } else {
                    repo.verify.clone()
                };
                command_run(verify)
            }
            AgentKind::Deployer => {
                let d = repo
                    .deploy
                    .as_ref()
                    .ok_or_else(|| format!("repo {} has no [repos.deploy]", task.repo))?;
                let phase = spec.and_then(|s| s.phase).unwrap_or(DeployPhase::Prepare);
                let argv = match phase {
                    DeployPhase::Prepare => {
                        d.prepare.clone().unwrap_or_else(|| vec!["true".into()])
                    }
                    DeployPhase::Run => d.run.clone(),
                };
                let argv = argv
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| {
                        if i == 0 && a.contains('/') && Path::new(&a).is_relative() {
                            // A script of the repo: relative to the worktree.
                            wt.path.join(&a).display().to_string()
                        } else {
                            a
                        }
                    })
                    .collect();
                command_run(argv)
            }
            kind => {
                let command = cfg.agent_command(kind).ok_or_else(|| {
                    format!("no command is configured for agents.{kind}; set [agents.{kind}] command in orch.toml")
                })?;
                let adapter = adapter_of(agent_cfg.adapter);
                let mut run = RunArgs::default();
                let mut previous_total = None;
                // A person's answer resumes the session that asked (R-8a): the
                // answer is the conversation's next message, nothing is lost.
                let prompt = match spec
                    .as_ref()
                    .and_then(|s| Some((s.resume_session.clone()?, s.gate_comment.clone()?)))
                {
                    Some((session, answer)) if adapter != AdapterKind::Command => {
                        if adapter == AdapterKind::Codex {
                            previous_total = self.thread_total(task, &session, run_dir).await;
                        }
                        run.resume_session = Some(session);
                        answer_prompt(&answer)
                    }
                    _ => self.prompt(&cfg, task, job, &wt, repo, &events).await?,
                };
                if let Some(tools) = &self.agent_tools {
                    run.extra = tools
                        .prepare(adapter, task, run_dir)
                        .map_err(|e| format!("preparing the agent's orch tools: {e}"))?;
                }
                let inv = invocation(adapter, &command, &prompt, run_dir, &run)
                    .map_err(|e| e.to_string())?;
                Ok(PreparedRun {
                    cwd: wt.path.clone(),
                    sandbox: self.sandbox_for(&cfg, kind, &wt, &inv.argv, &inv.env)?,
                    limits: self.resource_limits(),
                    argv: inv.argv,
                    env: inv.env,
                    adapter: adapter_of(agent_cfg.adapter),
                    timeouts,
                    previous_total,
                })
            }
        }
    }
}

/// The prompt templates of a repo whose override folders are `dirs`: a
/// workflow file's body (`WORKFLOW.md`) is the developer's, unless the repo
/// overrides the developer's template itself (the more specific wins).
pub fn prompt_set(
    cfg: &Config,
    dirs: &[PathBuf],
) -> Result<PromptSet, orch_agent::prompts::PromptError> {
    let set = PromptSet::load(dirs)?;
    match cfg.workflow_prompt() {
        Some(w) if set.origin(AgentKind::Developer) == &TemplateOrigin::Builtin => {
            set.with_workflow(&w.path, &w.template)
        }
        _ => Ok(set),
    }
}

/// The message that resumes an agent's session with a person's answer.
fn answer_prompt(answer: &str) -> String {
    format!("A person answered your question:\n\n{answer}\n\nContinue the task with this answer.")
}

impl PipelinePreparer {
    /// The sandbox of a run of `kind` (`None` when its mode is off): the
    /// worktree's git view, the toolchain, the agent's program and the files
    /// its environment names in the run folder (the prompt), read-only.
    fn sandbox_for(
        &self,
        cfg: &Config,
        kind: AgentKind,
        wt: &orch_git::Worktree,
        argv: &[String],
        env: &BTreeMap<String, String>,
    ) -> Result<Option<SandboxSpec>, String> {
        if cfg.sandbox_mode(kind) == orch_config::SandboxMode::Off {
            return Ok(None);
        }
        let view = self
            .repos
            .agent_git_view(wt)
            .map_err(|e| format!("the sandbox's view of the repository: {e}"))?;
        let mut readonly = cfg.sandbox.toolchain_paths.clone();
        readonly.extend(view.readonly);
        readonly.extend(argv.first().and_then(|p| self.program_view(Path::new(p))));
        readonly.extend(
            env.get(orch_agent::prompts::PROMPT_FILE_ENV)
                .map(PathBuf::from),
        );
        Ok(Some(SandboxSpec {
            writable: view.writable,
            readonly,
            hidden: cfg.sandbox.hidden_paths.clone(),
            // The supervisor empties the HOME the agent's environment names.
            home: None,
            egress: Allowlist(cfg.agent(kind).egress_allow),
        }))
    }

    /// `[limits] memory_mb`, `cpu_percent`, `pids`: the same for every run.
    fn resource_limits(&self) -> ResourceLimits {
        let cfg = self.cfg();
        let l = &cfg.limits;
        ResourceLimits {
            memory_mb: l.memory_mb,
            cpu_percent: l.cpu_percent,
            pids: l.pids,
        }
    }

    /// What of an agent's program a sandbox shows: its folder (a script's
    /// helpers sit beside it, as the example agents' `common.sh` does),
    /// unless that folder holds orch's data, the repos or is `/`; then the
    /// file alone. A program found through `PATH` lives in the toolchain.
    fn program_view(&self, program: &Path) -> Option<PathBuf> {
        if !program.is_absolute() {
            return None;
        }
        let dir = program.parent()?;
        let cfg = self.cfg();
        let holds = |p: PathBuf| std::path::absolute(p).is_ok_and(|p| p.starts_with(dir));
        let private = dir == Path::new("/")
            || holds(cfg.data_dir())
            || holds(cfg.repos_dir())
            || holds(cfg.runs_dir());
        Some(if private {
            program.to_path_buf()
        } else {
            dir.to_path_buf()
        })
    }

    /// The token total a Codex thread reached in its newest run: what the
    /// run resuming it must not be charged again (Codex reports the
    /// thread's running total).
    async fn thread_total(
        &self,
        task: &Task,
        session: &str,
        run_dir: &Path,
    ) -> Option<orch_agent::adapters::TokenUsage> {
        let runs = self.store.runs_for_task(task.id).await.ok()?;
        let last = runs
            .iter()
            .filter(|r| r.session_id.as_deref() == Some(session))
            .max_by_key(|r| r.started_at)?;
        let dir = run_dir.parent()?.join(last.run_id.as_str());
        crate::supervisor::recover::read_thread_total(&dir)
    }

    async fn prompt(
        &self,
        cfg: &Config,
        task: &Task,
        job: &Job,
        wt: &orch_git::Worktree,
        repo: &orch_config::RepoConfig,
        events: &[orch_core::TaskEvent],
    ) -> Result<String, String> {
        let mut dirs = Vec::new();
        if let Some(d) = cfg.repo_prompts_dir(repo) {
            dirs.push(d);
        }
        let set = prompt_set(cfg, &dirs).map_err(|e| e.to_string())?;
        let mut ctx =
            PromptContext::new(task, &repo.default_branch, job.agent).map_err(|e| e.to_string())?;
        ctx.attempt = job.attempts.max(1);
        ctx.max_review_rounds = cfg.review.max_review_rounds;
        let rounds = Rounds::of(events);
        ctx.review_round = rounds.review + 1;
        ctx.max_ci_rounds = cfg.review.max_ci_rounds;
        ctx.ci_round = rounds.ci.max(1);
        ctx.artefacts = collect_artefacts(
            &wt.path,
            task.original_work_item_id(),
            DEFAULT_ARTEFACT_BUDGET,
        );
        if let Some(spec) = job_spec(job) {
            ctx.gate_comment = spec.gate_comment;
            ctx.reviewer_comments = spec.reviewer_comments;
            ctx.ci_failures = spec.ci_failures;
        }
        if job.agent == AgentKind::Reviewer {
            let diff = self
                .repos
                .diff_against_base(wt, &repo.default_branch)
                .await
                .map_err(|e| format!("the diff for the reviewer: {e}"))?;
            ctx = ctx.with_diff(&diff, DEFAULT_DIFF_BUDGET);
        }
        set.render(job.agent, &ctx).map_err(|e| e.to_string())
    }
}
