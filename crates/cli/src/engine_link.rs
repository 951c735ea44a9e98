//! The CLI's way to the engine that runs for its data folder.
//!
//! One engine runs per data folder (`orch serve` holds an exclusive lock on
//! `<data_dir>/serve.pid`). A change made with the CLI while it runs must be
//! made by that engine, not by a second pipeline in the CLI's process with
//! its own task owners and no way to reach the running agents: the
//! engine's supervisor owns them. So `orch serve` writes
//! `<data_dir>/serve.control` (its API address and a token made at start,
//! readable by its user only), and the CLI's mutating task commands send
//! their change to that API when the lock is held. Only when no engine runs
//! does the CLI carry the change out itself.
//!
//! The control token is a credential like the API token; whoever can read
//! the data folder can use it, as they can already use the CLI and the store
//! there (see `docs/security.md`).

use crate::error::{CliError, CliResult};
use orch_config::Config;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the running engine's API is, and the token it accepts from the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    /// `http://IP:PORT` as the engine listens.
    pub url: String,
    pub token: String,
    /// The engine's pid. A control file of an engine killed with SIGKILL
    /// stays behind (nothing removed it); it is the running engine's only
    /// when this pid is the one `serve.pid` names.
    pub pid: u32,
}

fn control_path(cfg: &Config) -> PathBuf {
    cfg.data_dir().join("serve.control")
}

/// Removes the control file when `orch serve` ends.
pub struct ControlFile(PathBuf);

impl Drop for ControlFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Control {
    /// A fresh token for this engine's lifetime, written with the address to
    /// `<data_dir>/serve.control` (mode 0600; written whole, then renamed).
    pub fn publish(cfg: &Config, url: &str) -> CliResult<(Control, ControlFile)> {
        let bytes: [u8; 32] = rand::random();
        let token = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let control = Control {
            url: url.to_owned(),
            token,
            pid: std::process::id(),
        };
        let path = control_path(cfg);
        let tmp = path.with_extension("control.tmp");
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec(&control).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            CliError::Runtime(anyhow::anyhow!("cannot write {}: {e}", path.display()))
        })?;
        Ok((control, ControlFile(path)))
    }
}

/// The engine that runs for this data folder, if one does: its lock on
/// `serve.pid` is held. `Ok(None)`: none runs (the CLI acts by itself).
pub fn running(cfg: &Config) -> CliResult<Option<Control>> {
    running_in(&cfg.data_dir(), STARTING_ENGINE_WAIT)
}

fn running_in(dir: &Path, wait: Duration) -> CliResult<Option<Control>> {
    let dir = dir.to_path_buf();
    let path = dir.join("serve.control");
    // An engine that is starting (mirroring repos, repairing) holds the lock
    // before it listens: wait for its address rather than fail the command.
    let deadline = std::time::Instant::now() + wait;
    let mut told = false;
    loop {
        if !engine_runs_on(&dir)? {
            return Ok(None);
        }
        // The file may be one a killed engine left: only the holder's own
        // counts (a new engine writes its file when it listens).
        match read_control(&dir, &path) {
            Ok(control) if holder_pid(&dir) == Some(control.pid) => return Ok(Some(control)),
            Ok(control) if std::time::Instant::now() >= deadline => {
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "an orch engine (pid {}) runs on {} but has not said where it listens within {}s ({} is of pid {}, which no longer runs there); is `orch serve` stuck?",
                    holder_pid(&dir).map_or("?".to_owned(), |p| p.to_string()),
                    dir.display(),
                    wait.as_secs(),
                    path.display(),
                    control.pid
                )));
            }
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            _ => {}
        }
        if !told {
            orch_core::note!(
                "waiting for the orch engine that is starting on {} …",
                dir.display()
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid `<dir>/serve.pid` names: the engine's that holds it (read while
/// it is held; empty for the moment between its lock and its write).
fn holder_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("serve.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How long a command waits for a starting engine to listen.
const STARTING_ENGINE_WAIT: Duration = Duration::from_secs(30);

/// Whether an `orch serve` holds the lock on `<dir>/serve.pid`.
pub fn engine_runs_on(dir: &Path) -> CliResult<bool> {
    let pid_file = dir.join("serve.pid");
    let file = match std::fs::OpenOptions::new().read(true).open(&pid_file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(CliError::Runtime(anyhow::anyhow!(
                "cannot open {}: {e}",
                pid_file.display()
            )));
        }
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        // Nobody holds it: no engine runs (the lock goes with `_free`).
        Ok(_free) => Ok(false),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, e)) => Err(CliError::Runtime(anyhow::anyhow!(
            "cannot tell whether an engine runs on {} (locking serve.pid: {e})",
            dir.display()
        ))),
    }
}

/// `<dir>/serve.pid` held exclusively, as a running engine holds it, by a
/// command that needs the store to itself (`orch db copy`): no engine runs
/// on the folder meanwhile, none can start (it says the lock's holder, this
/// process, runs there), and the CLI's task actions (start, approve, …),
/// which take the holder for an engine (`orch task add` included), are
/// refused instead of writing. Released when dropped.
pub struct FolderHold(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// Hold `<dir>/serve.pid` (`FolderHold`), made first with `create`;
/// `Ok(None)` when the folder does not exist, or the file does not and is
/// not to be made. An error when an engine, or another such command, holds it.
pub fn hold_folder(dir: &Path, create: bool) -> CliResult<Option<FolderHold>> {
    use std::io::{Seek, Write};
    let path = dir.join("serve.pid");
    if !dir.is_dir() || (!create && !path.exists()) {
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("cannot open {}: {e}", path.display())))?;
    let mut lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
    {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            return Err(CliError::Runtime(anyhow::anyhow!(
                "an orch engine runs on {} (it holds serve.pid; or another orch db copy does): stop orch serve first, copy, then start it with the new store.url",
                dir.display()
            )));
        }
        Err((_, e)) => {
            return Err(CliError::Runtime(anyhow::anyhow!(
                "cannot tell whether an engine runs on {} (locking serve.pid: {e})",
                dir.display()
            )));
        }
    };
    let written = lock
        .set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| writeln!(lock, "{}", std::process::id()));
    written
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
    Ok(Some(FolderHold(lock)))
}

fn read_control(dir: &Path, path: &Path) -> CliResult<Control> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Runtime(anyhow::anyhow!(
            "an orch engine runs on {} but {} cannot be read ({e}); it is written when the engine starts listening: try again in a moment",
            dir.display(),
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Runtime(anyhow::anyhow!(
            "{} is not what orch serve writes ({e}); restart orch serve",
            path.display()
        ))
    })
}

/// The engine's answer to a change: its HTTP status and JSON body.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// The API's own words for a refusal (`{"error": …}`).
    pub fn error(&self) -> String {
        self.body["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| self.body.to_string())
    }

    /// The change was made (2xx).
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A refusal of the request itself (4xx) is the caller's to fix, like
    /// a usage error (a 404 names what was not found); a failure of the
    /// engine or of a provider behind it (5xx) is a runtime error, with
    /// what its kind means when the answer names one.
    pub fn into_error(self) -> CliError {
        match self.status {
            404 => CliError::Usage(format!(
                "{} (answered by the running orch serve)",
                self.error()
            )),
            s @ 400..=499 => CliError::Usage(format!(
                "the running orch serve refused it ({s}): {}",
                self.error()
            )),
            s => {
                let cause = format!("the running orch serve failed ({s}): {}", self.error());
                match self.body["kind"].as_str() {
                    Some(kind) => crate::error::port_failure(kind, &cause),
                    None => CliError::Runtime(anyhow::anyhow!(cause)),
                }
            }
        }
    }
}

/// `POST <url><path>` with the control token and a JSON body. The engine is
/// on this machine: never through a proxy.
pub async fn post(control: &Control, path: &str, body: &serde_json::Value) -> CliResult<Answer> {
    let client = reqwest::Client::builder()
        .no_proxy()
        // A STOP waits for the agents' graces; a gate for a merge step.
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("building the HTTP client: {e}")))?;
    let url = format!("{}{path}", control.url.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .bearer_auth(&control.token)
        .header("x-orch-client", "cli")
        .json(body)
        .send()
        .await
        .map_err(|e| {
            CliError::Runtime(anyhow::anyhow!(
                "the running orch engine did not answer at {url}: {e}; is `orch serve` stuck? Its address is in serve.control"
            ))
        })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok(Answer { status, body })
}

/// The engine's change counter (`GET /api/changes`), once it exceeds
/// `after` or after `wait` (the engine caps one wait at 30 s).
pub async fn changes(control: &Control, after: u64, wait: Duration) -> CliResult<u64> {
    let wait = wait.min(Duration::from_secs(30));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(wait + Duration::from_secs(10))
        .build()
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("building the HTTP client: {e}")))?;
    let url = format!(
        "{}/api/changes?after={after}&timeout_ms={}",
        control.url.trim_end_matches('/'),
        wait.as_millis()
    );
    let fail = |e: String| {
        CliError::Runtime(anyhow::anyhow!(
            "the running orch engine did not answer at {url}: {e}"
        ))
    };
    let resp = client
        .get(&url)
        .bearer_auth(&control.token)
        .header("x-orch-client", "cli")
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("status {}", resp.status())));
    }
    let body: serde_json::Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
    body["seq"]
        .as_u64()
        .ok_or_else(|| fail(format!("no seq in {body}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_control(dir: &Path, url: &str, pid: u32) {
        let control = Control {
            url: url.to_owned(),
            token: "t".to_owned(),
            pid,
        };
        let tmp = dir.join("serve.control.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&control).unwrap()).unwrap();
        std::fs::rename(tmp, dir.join("serve.control")).unwrap();
    }

    /// Found by the crash test: after a `kill -9` the dead engine's
    /// serve.control stayed while the new engine started, and `orch task
    /// add` sent its change to the dead engine's address.
    #[test]
    fn a_control_file_left_by_a_killed_engine_is_not_taken_for_the_new_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // The new engine holds serve.pid (a lock of this process's own open
        // file, which the check's separate open conflicts with) and names
        // its pid there; the dead one's control file is still there.
        let hold = hold_folder(&dir, true).unwrap().unwrap();
        let me = std::process::id();
        write_control(&dir, "http://127.0.0.1:1", me + 1);
        let err = running_in(&dir, Duration::from_millis(100))
            .expect_err("the dead engine's address is not the running one's");
        assert!(
            err.to_string().contains("has not said where it listens"),
            "{err}"
        );
        // The new engine listens and says where.
        write_control(&dir, "http://127.0.0.1:2", me);
        let found = running_in(&dir, Duration::ZERO)
            .unwrap()
            .expect("an engine runs");
        assert_eq!(found.url, "http://127.0.0.1:2");
        assert_eq!(found.pid, me);
        drop(hold);
        assert!(
            running_in(&dir, Duration::ZERO).unwrap().is_none(),
            "no engine holds it"
        );
    }
}
