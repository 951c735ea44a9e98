//! The configuration a running engine works with, reloaded live (issue 13):
//! an edit of `orch.toml` or of the workflow file (`WORKFLOW.md`), seen by
//! polling their contents every second or at once on SIGHUP, applies to new
//! work without a restart; an edit that does not load keeps the last good
//! configuration and says why: in the log, in `/queue` (`config`), in
//! `orch status` (from `<data_dir>/serve.config.json`) and on the dashboard.
//!
//! What applies live is what a new run is made of; the rest was built into
//! the running engine (its store, listener, tracker and forge clients, loops)
//! and is named in `restart_needed` until orch restarts:
//!
//! | applies to new work                          | needs a restart        |
//! |----------------------------------------------|------------------------|
//! | `[agents.*]` (command, adapter, timeouts, sandbox, egress) | `data_dir`, `[server]`, `[store]` |
//! | `[agent_env]`                                | `[tracker]`, `[forge]`, `[[notify]]` |
//! | the workflow file's prompt and its mapped keys | `[queue]` leases, heartbeat, polling, max_attempts |
//! | `[queue.limits]`, `[queue.retry]`            | `[features]`, `[stop]`, `[review]`, `[merge]` |
//! | `[budget]`                                   | `[limits]`, `[cleanup]`, `[sandbox]`, `[logging]` |
//! | `[[repos]]` `verify`, `prompts_dir`           | `[[repos]]` added, removed or other keys |
//!
//! One owner: the engine's reload loop is the only writer; every reader takes
//! the current `Arc<Config>` per use, so one run sees one configuration.

use orch_config::Config;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Loads and checks the configuration afresh; its warnings as text.
pub type Loader = Box<dyn Fn() -> Result<(Config, Vec<String>), String> + Send + Sync>;
/// Told of each applied configuration.
type Subscriber = Box<dyn Fn(&Arc<Config>) + Send + Sync>;

/// The file `orch status` reads the reload state from.
pub const STATUS_FILE: &str = "serve.config.json";

/// How the live configuration stands, for `/queue`, `orch status` and the
/// dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReloadStatus {
    /// 1 at start; +1 for each applied reload.
    pub generation: u64,
    /// When the configuration in use was applied (ms since the epoch).
    pub applied_at: i64,
    /// The files watched: orch.toml and the workflow file, as found.
    pub files: Vec<String>,
    /// Why the newest edit was not applied; `None` when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_at: Option<i64>,
    /// Sections an applied edit changed that take effect only after a restart.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub restart_needed: Vec<String>,
    /// The warnings of the configuration in use.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
}

pub struct LiveConfig {
    current: RwLock<Arc<Config>>,
    status: RwLock<ReloadStatus>,
    loader: Option<Loader>,
    /// The watched files' contents when last looked at (`None`: absent).
    seen: Mutex<Vec<(PathBuf, Option<Vec<u8>>)>>,
    subscribers: Mutex<Vec<Subscriber>>,
    status_file: Option<PathBuf>,
}

impl LiveConfig {
    /// A configuration that never changes (tests, one-shot commands).
    pub fn fixed(cfg: Arc<Config>) -> Arc<LiveConfig> {
        Arc::new(LiveConfig::new(cfg, None, Vec::new(), None))
    }

    /// `cfg`, reloaded with `loader` when a watched file changes or on
    /// [`LiveConfig::reload`]. The state is written to `<data_dir>/serve.config.json`
    /// ([`LiveConfig::write_status`]).
    pub fn reloading(cfg: Arc<Config>, warnings: Vec<String>, loader: Loader) -> Arc<LiveConfig> {
        let status_file = Some(cfg.data_dir().join(STATUS_FILE));
        Arc::new(LiveConfig::new(cfg, Some(loader), warnings, status_file))
    }

    fn new(
        cfg: Arc<Config>,
        loader: Option<Loader>,
        warnings: Vec<String>,
        status_file: Option<PathBuf>,
    ) -> LiveConfig {
        let files = watched_files(&cfg);
        let seen = files.iter().map(|p| (p.clone(), read(p))).collect();
        LiveConfig {
            status: RwLock::new(ReloadStatus {
                generation: 1,
                applied_at: now_ms(),
                files: files.iter().map(|p| p.display().to_string()).collect(),
                warnings,
                ..ReloadStatus::default()
            }),
            current: RwLock::new(cfg),
            loader,
            seen: Mutex::new(seen),
            subscribers: Mutex::new(Vec::new()),
            status_file,
        }
    }

    /// The configuration in use now.
    pub fn current(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether this configuration reloads at all.
    pub fn reloads(&self) -> bool {
        self.loader.is_some()
    }

    /// Calls `f` with every configuration applied from now on.
    pub fn on_reload(&self, f: impl Fn(&Arc<Config>) + Send + Sync + 'static) {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(f));
    }

    /// Whether a watched file's contents changed since the last look (a
    /// file that appears or disappears counts). Reads small files; cheap
    /// enough to call every second.
    pub fn changed(&self) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        for (path, last) in seen.iter_mut() {
            let now = read(path);
            if now != *last {
                *last = now;
                changed = true;
            }
        }
        changed
    }

    /// Loads the configuration again and applies what can apply live.
    /// Returns the generation in use afterwards; an edit that does not load
    /// keeps the configuration in use and is the error.
    pub fn reload(&self) -> Result<u64, String> {
        let Some(loader) = &self.loader else {
            return Ok(self.status().generation);
        };
        let loaded = loader();
        let running = self.current();
        let (config, warnings) = match loaded {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(error = %e, "the edited configuration does not load; orch keeps working with the last good one");
                {
                    let mut st = self.status.write().unwrap_or_else(PoisonError::into_inner);
                    st.error = Some(e.clone());
                    st.error_at = Some(now_ms());
                }
                self.write_status();
                return Err(e);
            }
        };
        let (applied, restart_needed) = merge_live(&running, config);
        let applied = Arc::new(applied);
        // The files to watch follow the configuration (a new workflow path).
        let files = watched_files(&applied);
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) =
            files.iter().map(|p| (p.clone(), read(p))).collect();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = applied.clone();
        let generation = {
            let mut st = self.status.write().unwrap_or_else(PoisonError::into_inner);
            st.generation += 1;
            st.applied_at = now_ms();
            st.files = files.iter().map(|p| p.display().to_string()).collect();
            st.error = None;
            st.error_at = None;
            st.restart_needed = restart_needed.clone();
            st.warnings = warnings;
            st.generation
        };
        for f in self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            f(&applied);
        }
        if restart_needed.is_empty() {
            tracing::info!(generation, "configuration reloaded; new work uses it");
        } else {
            tracing::warn!(generation, restart_needed = ?restart_needed, "configuration reloaded; some changed sections take effect only after a restart");
        }
        self.write_status();
        Ok(generation)
    }

    /// Writes the state for `orch status` (the engine calls it once it
    /// owns the data folder; each reload writes it again).
    pub fn write_status(&self) {
        let Some(path) = &self.status_file else {
            return;
        };
        let Ok(json) = serde_json::to_vec_pretty(&self.status()) else {
            return;
        };
        // Written whole, then renamed: a reader never sees half a file.
        let tmp = path.with_extension("json.tmp");
        if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::warn!(error = %e, path = %path.display(), "writing the configuration's reload state failed");
        }
    }
}

/// Reads the reload state a running `orch serve` wrote into `data_dir`.
pub fn read_status_file(data_dir: &Path) -> Option<ReloadStatus> {
    let text = std::fs::read(data_dir.join(STATUS_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

fn watched_files(cfg: &Config) -> Vec<PathBuf> {
    cfg.source_path()
        .map(Path::to_path_buf)
        .into_iter()
        .chain(cfg.workflow.clone())
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The configuration to use after an edit: `new`'s live sections on
/// `running`'s restart-only ones, and the names of the restart-only
/// sections the edit changed.
pub fn merge_live(running: &Config, new: Config) -> (Config, Vec<String>) {
    let mut restart = Vec::new();
    let mut note = |changed: bool, name: &str| {
        if changed {
            restart.push(name.to_owned());
        }
    };
    note(new.data_dir != running.data_dir, "data_dir");
    note(new.server != running.server, "server");
    note(new.store != running.store, "store");
    let queue_fixed = |c: &Config| {
        (
            c.queue.max_attempts,
            c.queue.lease_secs,
            c.queue.heartbeat_secs,
            c.queue.poll_ms,
        )
    };
    note(queue_fixed(&new) != queue_fixed(running), "queue");
    note(new.features != running.features, "features");
    note(new.stop != running.stop, "stop");
    note(new.tracker != running.tracker, "tracker");
    note(new.forge != running.forge, "forge");
    note(new.review != running.review, "review");
    note(new.merge != running.merge, "merge");
    note(new.limits != running.limits, "limits");
    note(new.cleanup != running.cleanup, "cleanup");
    note(new.sandbox != running.sandbox, "sandbox");
    note(new.logging != running.logging, "logging");
    note(new.notify != running.notify, "notify");

    let mut applied = running.clone();
    applied.agents = new.agents.clone();
    applied.agent_env = new.agent_env.clone();
    applied.budget = new.budget.clone();
    applied.queue.limits = new.queue.limits.clone();
    applied.queue.retry = new.queue.retry.clone();
    applied.set_workflow_from(&new);
    // Repos: the same list, alike but for `verify` and `prompts_dir`, takes
    // those live (the merger's run and the prompts read them per run); any
    // other change waits for a restart.
    let same_repos = new.repos.len() == running.repos.len()
        && new.repos.iter().zip(&running.repos).all(|(n, r)| {
            (
                &n.name,
                &n.remote,
                &n.default_branch,
                &n.protected_branches,
                &n.required_checks,
            ) == (
                &r.name,
                &r.remote,
                &r.default_branch,
                &r.protected_branches,
                &r.required_checks,
            )
        });
    if same_repos {
        for (a, n) in applied.repos.iter_mut().zip(&new.repos) {
            a.verify = n.verify.clone();
            a.prompts_dir = n.prompts_dir.clone();
        }
    } else {
        restart.push("repos".to_owned());
    }
    (applied, restart)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    #[test]
    fn live_sections_apply_and_the_rest_waits_for_a_restart() {
        let running = cfg(
            "[[repos]]\nname = \"demo\"\nremote = \"r.git\"\n[agents.developer]\ncommand = [\"a\"]\n",
        );
        let new = cfg(
            "[server]\nlisten = \"127.0.0.1:9\"\n[queue.limits]\nglobal = 2\n[[repos]]\nname = \"demo\"\nremote = \"r.git\"\nverify = [\"make\", \"check\"]\n[agents.developer]\ncommand = [\"b\"]\n",
        );
        let (applied, restart) = merge_live(&running, new);
        assert_eq!(restart, ["server"]);
        assert_eq!(applied.server, running.server, "the listener stays");
        assert_eq!(applied.queue.limits.global, Some(2));
        assert_eq!(applied.repos[0].verify, ["make", "check"]);
        assert_eq!(applied.agents.developer.unwrap().command.unwrap(), ["b"]);
    }

    #[test]
    fn another_repo_list_waits_for_a_restart() {
        let running = cfg("[[repos]]\nname = \"demo\"\nremote = \"r.git\"\nverify = [\"x\"]\n");
        let new = cfg("[[repos]]\nname = \"other\"\nremote = \"o.git\"\nverify = [\"y\"]\n");
        let (applied, restart) = merge_live(&running, new);
        assert_eq!(restart, ["repos"]);
        assert_eq!(applied.repos, running.repos);
    }

    #[test]
    fn a_failed_reload_keeps_the_last_good_configuration() {
        let first = Arc::new(cfg("[queue.limits]\nglobal = 1\n"));
        let answers = Mutex::new(vec![
            Ok((cfg("[queue.limits]\nglobal = 3\n"), vec![])),
            Err("orch.toml: queue.limits.global: expected an integer".to_owned()),
        ]);
        let live = Arc::new(LiveConfig::new(
            first,
            Some(Box::new(move || answers.lock().unwrap().remove(0))),
            vec![],
            None,
        ));
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        live.on_reload(move |c| t.lock().unwrap().push(c.queue.limits.global));
        assert_eq!(live.reload(), Ok(2));
        assert_eq!(live.current().queue.limits.global, Some(3));
        assert!(live.reload().unwrap_err().contains("expected an integer"));
        assert_eq!(
            live.current().queue.limits.global,
            Some(3),
            "the last good one"
        );
        let st = live.status();
        assert_eq!(st.generation, 2);
        assert!(st.error.as_deref().unwrap().contains("expected an integer"));
        assert_eq!(*told.lock().unwrap(), [Some(3)]);
    }
}
