//! What of the repository a sandboxed agent sees (issue 12): its worktree and
//! that worktree's admin dir read-write (index, HEAD of its branch), the
//! mirror's history read-only. Never the control dir, never another
//! worktree's admin dir.

use crate::control::admin_dir;
use crate::error::Result;
use crate::mirror::RepoStore;
use crate::worktree::Worktree;
use std::path::PathBuf;

/// The paths a sandbox binds for the agent's own `git` to work in its worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentGitView {
    /// The worktree and its admin dir (`<mirror>/worktrees/<name>`).
    pub writable: Vec<PathBuf>,
    /// The mirror's objects, refs, `packed-refs`, `HEAD` and `config`: git in
    /// the worktree reads them; writing them (a commit, a ref) fails, and
    /// orch itself commits what the agent leaves.
    pub readonly: Vec<PathBuf>,
}

impl RepoStore {
    /// The paths of `wt` a sandboxed agent gets; the admin dir is found from
    /// the mirror's side, never from the worktree's `.git` file.
    pub fn agent_git_view(&self, wt: &Worktree) -> Result<AgentGitView> {
        let mirror = self.mirror_path(&wt.repo)?;
        let admin = admin_dir(&mirror, &wt.path)?;
        Ok(AgentGitView {
            writable: vec![wt.path.clone(), admin],
            readonly: ["objects", "refs", "packed-refs", "HEAD", "config"]
                .into_iter()
                .map(|p| mirror.join(p))
                .collect(),
        })
    }
}
