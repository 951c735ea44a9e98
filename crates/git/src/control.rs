//! The control dir: a git "common dir" that orch alone writes, through which every
//! git call orch makes on a repository sees that repository.
//!
//! An agent works in a worktree of the repo's mirror, so plain git lets it write
//! the mirror's shared config (`git config filter.x.clean …`, a `pushurl` of
//! `ext::…`, `url.*.insteadOf`, `credential.helper`, `http.*.proxy`, …), its
//! `info/attributes` and its hooks. Any git call that reads that config can be made
//! to run the agent's programs or to send orch's pushes somewhere else. Checking
//! the config before each call would race with the agents of other tasks writing
//! it, so orch's calls never read it:
//!
//! - `repos_dir/.control/<repo>.git/` has its own `config` (written here, from
//!   orch's configuration only) and an empty `info/`, and symbolic links to the
//!   mirror's `objects`, `refs`, `packed-refs`, `logs` and `worktrees`, the parts
//!   that hold data rather than behaviour;
//! - every call runs with `GIT_COMMON_DIR` set to it, and with `GIT_DIR` (and, in
//!   a worktree, `GIT_WORK_TREE`) set explicitly by orch, so neither the mirror's
//!   config nor the worktree's own `.git` file (which the agent can rewrite) is
//!   ever consulted.
//!
//! git writes through the links into the mirror: loose refs and objects land in
//! the linked directories, and `packed-refs` is rewritten at the link's target
//! because git takes its lock on the target of a symbolic link.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::error::{GitError, Result};
use crate::runner::{Git, GitOutput};

/// The parts of a common dir that hold data and are shared with the mirror. All
/// other entries (`config`, `info`, `hooks`, `remotes`, `branches`, …) stay
/// orch's own.
const LINKED: [&str; 5] = ["objects", "refs", "packed-refs", "logs", "worktrees"];

/// Directories of the mirror that must exist for their links to be usable.
const MIRROR_DIRS: [&str; 3] = ["objects", "refs", "worktrees"];

/// The control dir of a mirror at `repos_dir/<repo>.git`.
pub(crate) fn control_path(mirror: &Path) -> PathBuf {
    let name = mirror.file_name().unwrap_or_else(|| OsStr::new("repo.git"));
    mirror
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(".control")
        .join(name)
}

/// The control dir's config: everything git needs to read the repository, the
/// remote orch was configured with, and nothing that runs code. `url` is `None`
/// until `ensure_mirror` names the remote; transport calls then fail plainly.
pub(crate) fn control_config(url: Option<&str>) -> String {
    let mut s = String::from(
        "# Written by orch; rewritten on every start. See docs/security.md.\n\
         [core]\n\
         \trepositoryformatversion = 0\n\
         \tbare = true\n\
         \tlogAllRefUpdates = true\n\
         \thooksPath = /dev/null\n\
         \tfsmonitor = false\n\
         [gc]\n\
         \tauto = 0\n\
         [maintenance]\n\
         \tauto = false\n\
         [rerere]\n\
         \tenabled = false\n",
    );
    if let Some(url) = url {
        s.push_str("[remote \"origin\"]\n\turl = ");
        s.push_str(&quote_value(url));
        s.push('\n');
        for spec in crate::mirror::FETCH_REFSPECS {
            s.push_str("\tfetch = ");
            s.push_str(spec);
            s.push('\n');
        }
    }
    s
}

/// A config value in double quotes, with `\` and `"` escaped (the URL was
/// validated to hold no control characters).
fn quote_value(v: &str) -> String {
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        if c == '\\' || c == '"' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// Make sure the control dir of `mirror` exists with its links, and, when `url`
/// is given, that its config names that remote. Without `url` an existing config
/// is kept (it names the remote from the last `ensure_mirror`).
pub(crate) fn ensure_control(mirror: &Path, url: Option<&str>) -> Result<PathBuf> {
    let control = control_path(mirror);
    let io = |what: &'static str, path: &Path, e: std::io::Error| GitError::io(what, path, e);
    for dir in MIRROR_DIRS {
        let p = mirror.join(dir);
        std::fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
    }
    let info = control.join("info");
    std::fs::create_dir_all(&info).map_err(|e| io("create", &info, e))?;
    for name in LINKED {
        let link = control.join(name);
        let target = mirror.join(name);
        match std::fs::read_link(&link) {
            Ok(t) if t == target => continue,
            Ok(_) => std::fs::remove_file(&link).map_err(|e| io("remove", &link, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Something that is not a link stands there: orch made none such.
            Err(_) => {
                return Err(GitError::ControlDir {
                    path: link,
                    why: "is not the symbolic link orch makes there",
                });
            }
        }
        std::os::unix::fs::symlink(&target, &link).map_err(|e| io("link", &link, e))?;
    }
    let config = control.join("config");
    let wanted = match url {
        Some(url) => Some(control_config(Some(url))),
        None if config.exists() => None,
        None => Some(control_config(None)),
    };
    if let Some(text) = wanted
        && std::fs::read_to_string(&config).ok().as_deref() != Some(text.as_str())
    {
        // Atomic, so a concurrent git call reads the old or the new config whole.
        let tmp = control.join("config.orch-tmp");
        std::fs::write(&tmp, text).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &config).map_err(|e| io("move into place", &config, e))?;
    }
    Ok(control)
}

/// The admin dir (`<mirror>/worktrees/<name>`) of the worktree at `path`, found
/// from the mirror's side: each admin dir's `gitdir` names its worktree's `.git`.
/// The worktree's own `.git` file is never read: an agent can rewrite it.
pub(crate) fn admin_dir(mirror: &Path, path: &Path) -> Result<PathBuf> {
    let root = mirror.join("worktrees");
    let wanted = path.join(".git");
    // git records the path as it resolved it (symbolic links followed).
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let wanted_real = canonical(&wanted);
    let entries = std::fs::read_dir(&root).map_err(|e| GitError::io("read", &root, e))?;
    for entry in entries.flatten() {
        let gitdir = entry.path().join("gitdir");
        if let Ok(text) = std::fs::read_to_string(&gitdir) {
            let named = Path::new(text.trim_end_matches('\n'));
            if named == wanted || canonical(named) == wanted_real {
                return Ok(entry.path());
            }
        }
    }
    Err(GitError::NotAWorktree {
        path: path.to_owned(),
    })
}

/// A git command's frame: the directory it runs in and the variables that name
/// the repository for it.
#[derive(Debug, Clone)]
pub(crate) struct Scoped<'a> {
    git: &'a Git,
    dir: PathBuf,
    env: Vec<(&'static str, OsString)>,
}

impl<'a> Scoped<'a> {
    /// Calls on the mirror itself (refs, objects, worktree bookkeeping, transport).
    pub(crate) fn mirror(git: &'a Git, mirror: &Path, control: &Path) -> Self {
        Scoped {
            git,
            dir: mirror.to_owned(),
            env: vec![
                ("GIT_DIR", mirror.as_os_str().to_owned()),
                ("GIT_COMMON_DIR", control.as_os_str().to_owned()),
            ],
        }
    }

    /// Calls in a task's worktree (status, add, commit, merge, diff).
    pub(crate) fn worktree(git: &'a Git, admin: &Path, control: &Path, path: &Path) -> Self {
        Scoped {
            git,
            dir: path.to_owned(),
            env: vec![
                ("GIT_DIR", admin.as_os_str().to_owned()),
                ("GIT_COMMON_DIR", control.as_os_str().to_owned()),
                ("GIT_WORK_TREE", path.as_os_str().to_owned()),
            ],
        }
    }

    /// The variable this frame sets, for a caller that needs its value.
    pub(crate) fn var(&self, key: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_os_str())
    }

    pub(crate) async fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_env(args, &[]).await
    }

    pub(crate) async fn run_env<I, S>(&self, args: I, env: &[(&str, &OsStr)]) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.output(&args, env).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.failure(&args, &out))
        }
    }

    pub(crate) async fn output(
        &self,
        args: &[OsString],
        env: &[(&str, &OsStr)],
    ) -> Result<GitOutput> {
        let mut all: Vec<(&str, &OsStr)> =
            self.env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        all.extend_from_slice(env);
        self.git.output(&self.dir, args, &all).await
    }

    pub(crate) fn failure(&self, args: &[OsString], out: &GitOutput) -> GitError {
        self.git.failure(&self.dir, args, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_dir_sits_beside_the_mirrors() {
        assert_eq!(
            control_path(Path::new("/srv/repos/demo.git")),
            PathBuf::from("/srv/repos/.control/demo.git")
        );
    }

    #[test]
    fn config_quotes_the_url_and_names_no_program() {
        let c = control_config(Some(r#"/srv/a "b"\c.git"#));
        assert!(c.contains(r#"url = "/srv/a \"b\"\\c.git""#), "{c}");
        assert!(!control_config(None).contains("[remote"));
        for key in ["filter", "credential", "sshCommand", "insteadOf", "pushurl"] {
            assert!(!c.contains(key), "{key} in {c}");
        }
    }
}
