//! An agent owns its worktree and can write the repository config its git sees
//! (the mirror's shared `config`, `info/attributes`, hooks, its worktree's
//! `.git` file). These tests plant every way we know for such a config to make
//! git run a program or send a push elsewhere, then drive each of orch's git
//! operations and check that no planted program ever ran, that the work still
//! reached the configured remote, and that committed content is the file's own.
//!
//! The "agent" here is plain `git` run as an agent would run it (not orch's
//! runner), with a secret in the test's environment that a planted program would
//! record if it ran.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use orch_git::{DeleteOutcome, FastForward, Git, MergeResult, ProtectedBranches, RepoStore};

const REPO: &str = "demo";
const BRANCH: &str = "feature/ORCH-7-hostile";
const ITEM: &str = "ORCH-7";
const SECRET: &str = "orch-secret-token-value";

struct Fx {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    store: RepoStore,
    remote: PathBuf,
    other: PathBuf,
    /// Planted programs write here when they run.
    marks: PathBuf,
}

/// Plain git as an agent (or a person) runs it.
fn agent_git(home: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.test")
        .env("GIT_COMMITTER_NAME", "agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.test")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {dir:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn fixture() -> Fx {
    // Stands for ORCH_API_TOKEN and the other secrets in orch's environment.
    // SAFETY: set before any thread of this test binary reads the environment
    // concurrently (every test sets the same value).
    unsafe { std::env::set_var("ORCH_TEST_SECRET", SECRET) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().canonicalize().expect("canonical");
    let home = root.join("home");
    let marks = root.join("marks");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&marks).unwrap();
    let remote = root.join("remote.git");
    agent_git(
        &home,
        &root,
        &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
    );
    agent_git(&home, &root, &["clone", "--quiet", "remote.git", "other"]);
    let other = root.join("other");
    agent_git(&home, &other, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    std::fs::write(other.join("README.md"), "# demo\n").unwrap();
    agent_git(&home, &other, &["add", "-A"]);
    agent_git(&home, &other, &["commit", "--quiet", "-m", "initial"]);
    agent_git(&home, &other, &["push", "--quiet", "origin", "main"]);

    let store = RepoStore::with_git(root.join("repos"), Git::new().isolated(&home));
    store
        .ensure_mirror(REPO, remote.to_str().unwrap())
        .await
        .expect("mirror");
    Fx {
        _tmp: tmp,
        root,
        home,
        store,
        remote,
        other,
        marks,
    }
}

impl Fx {
    /// A program that records that it ran (with its environment) and passes its
    /// input through, so a filter that ran would not break the operation and
    /// only the mark tells.
    fn program(&self, name: &str) -> String {
        let path = self.root.join(format!("bin-{name}"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nenv > '{}/{name}-'$$\ncat\nexit 0\n",
                self.marks.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn marks(&self) -> Vec<(String, bool)> {
        std::fs::read_dir(&self.marks)
            .unwrap()
            .flatten()
            .map(|e| {
                let env = std::fs::read_to_string(e.path()).unwrap_or_default();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    env.contains(SECRET),
                )
            })
            .collect()
    }

    fn clear_marks(&self) {
        std::fs::remove_dir_all(&self.marks).unwrap();
        std::fs::create_dir_all(&self.marks).unwrap();
    }

    fn assert_nothing_ran(&self, after: &str) {
        let marks = self.marks();
        assert!(
            marks.is_empty(),
            "after {after}: planted programs ran (name, saw the secret): {marks:?}"
        );
    }

    fn remote_sha(&self, branch: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/heads/{branch}"))
            .current_dir(&self.remote)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Everything an agent can write from its worktree, planted at once.
    fn plant_everything(&self, wt: &Path) {
        let g = |args: &[&str]| agent_git(&self.home, wt, args);
        let mirror = self.store.mirror_path(REPO).unwrap();

        // Filters, diff and merge drivers named by committed attributes.
        g(&["config", "filter.x.clean", &self.program("filter-clean")]);
        g(&["config", "filter.x.smudge", &self.program("filter-smudge")]);
        g(&[
            "config",
            "filter.x.process",
            &self.program("filter-process"),
        ]);
        g(&["config", "diff.x.textconv", &self.program("textconv")]);
        g(&["config", "diff.x.command", &self.program("diff-command")]);
        g(&["config", "diff.external", &self.program("diff-external")]);
        g(&["config", "merge.x.driver", &self.program("merge-driver")]);
        std::fs::write(wt.join(".gitattributes"), "* filter=x diff=x merge=x\n").unwrap();
        g(&["add", ".gitattributes"]);
        g(&["commit", "--quiet", "-m", "attributes"]);

        // The mirror's own attributes file, and an included config file.
        std::fs::create_dir_all(mirror.join("info")).unwrap();
        std::fs::write(mirror.join("info/attributes"), "* filter=y\n").unwrap();
        let included = self.root.join("included.gitconfig");
        std::fs::write(
            &included,
            format!(
                "[filter \"y\"]\n\tclean = {}\n",
                self.program("include-clean")
            ),
        )
        .unwrap();
        g(&["config", "include.path", included.to_str().unwrap()]);

        // Transport: ext::, URL rewriting, remote programs, ssh, credentials.
        g(&["config", "protocol.ext.allow", "always"]);
        g(&["config", "protocol.allow", "always"]);
        let ext = format!("ext::{} %S", self.program("ext-transport"));
        g(&["config", "remote.origin.pushurl", &ext]);
        g(&["config", "remote.origin.url", &ext]);
        let remote = self.remote.to_str().unwrap();
        g(&["config", &format!("url.{ext}.insteadOf"), remote]);
        g(&["config", &format!("url.{ext}.pushInsteadOf"), remote]);
        let receive = self.program("receive-pack");
        let upload = self.program("upload-pack");
        g(&["config", &format!("remote.{remote}.receivepack"), &receive]);
        g(&["config", &format!("remote.{remote}.uploadpack"), &upload]);
        g(&["config", "remote.origin.receivepack", &receive]);
        g(&["config", "remote.origin.uploadpack", &upload]);
        g(&["config", "core.sshCommand", &self.program("ssh")]);
        g(&["config", "core.gitProxy", &self.program("git-proxy")]);
        g(&[
            "config",
            "credential.helper",
            &format!("!{}", self.program("credential")),
        ]);
        g(&["config", "core.askPass", &self.program("askpass")]);
        g(&[
            "config",
            "core.alternateRefsCommand",
            &self.program("alt-refs"),
        ]);

        // Hooks (in the mirror's hooks dir and a hooksPath), fsmonitor, pager,
        // signing, background gc.
        let hooks = self.root.join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::create_dir_all(mirror.join("hooks")).unwrap();
        for hook in [
            "pre-commit",
            "prepare-commit-msg",
            "commit-msg",
            "post-commit",
            "pre-merge-commit",
            "post-merge",
            "post-checkout",
            "pre-push",
            "reference-transaction",
            "post-index-change",
            "pre-auto-gc",
            "post-rewrite",
        ] {
            let program = self.program(&format!("hook-{hook}"));
            for dir in [&hooks, &mirror.join("hooks")] {
                let path = dir.join(hook);
                let _ = std::fs::remove_file(&path);
                std::os::unix::fs::symlink(&program, &path).unwrap();
            }
        }
        g(&["config", "core.hooksPath", hooks.to_str().unwrap()]);
        g(&["config", "core.fsmonitor", &self.program("fsmonitor")]);
        g(&["config", "core.pager", &self.program("pager")]);
        g(&["config", "pager.diff", &self.program("pager-diff")]);
        g(&["config", "gpg.program", &self.program("gpg")]);
        g(&["config", "commit.gpgSign", "true"]);
        g(&["config", "gc.auto", "1"]);
        g(&["config", "maintenance.auto", "true"]);

        // Per-worktree config, switched on by the agent.
        g(&["config", "extensions.worktreeConfig", "true"]);
        g(&[
            "config",
            "--worktree",
            "filter.x.clean",
            &self.program("worktree-clean"),
        ]);

        // Work the agent leaves uncommitted, for orch's leftover commit.
        std::fs::write(wt.join("notes.txt"), "left uncommitted by the agent\n").unwrap();
    }
}

#[tokio::test]
async fn no_planted_program_runs_in_any_of_orchs_git_calls() {
    let fx = fixture().await;
    let wt = fx
        .store
        .create_or_reuse_worktree(REPO, BRANCH, "main")
        .await
        .expect("worktree");
    fx.plant_everything(&wt.path);
    // The agent's own git ran some of them while planting: that is its business.
    fx.clear_marks();

    // The leftover commit: `git add -A` over files the filter names.
    let sha = fx
        .store
        .commit_all(&wt, "orch: leftovers")
        .await
        .expect("commit")
        .expect("something to commit");
    fx.assert_nothing_ran("commit_all");
    let blob = agent_git(&fx.home, &wt.path, &["show", &format!("{sha}:notes.txt")]);
    assert_eq!(
        blob, "left uncommitted by the agent\n",
        "content as written"
    );

    // An archive of the worktree with more uncommitted work.
    std::fs::write(wt.path.join("more.txt"), "more\n").unwrap();
    fx.store.archive_worktree(&wt, ITEM).await.expect("archive");
    fx.assert_nothing_ran("archive_worktree");

    // Push: the configured remote receives it, however the repo config rewrites URLs.
    let pushed = fx.store.push_branch(REPO, BRANCH).await.expect("push");
    fx.assert_nothing_ran("push_branch");
    assert_eq!(fx.remote_sha(BRANCH).as_deref(), Some(pushed.as_str()));

    // Someone advances main; orch fetches and merges it in (merge drivers named).
    std::fs::write(fx.other.join("README.md"), "# demo\nupstream\n").unwrap();
    agent_git(
        &fx.home,
        &fx.other,
        &["commit", "--quiet", "-am", "upstream"],
    );
    agent_git(&fx.home, &fx.other, &["push", "--quiet", "origin", "main"]);
    std::fs::remove_file(wt.path.join("more.txt")).unwrap();
    let merged = fx
        .store
        .merge_base_into_branch(&wt, "main")
        .await
        .expect("merge");
    assert!(matches!(merged, MergeResult::Merged { .. }), "{merged:?}");
    fx.assert_nothing_ran("merge_base_into_branch");

    let diff = fx.store.diff_against_base(&wt, "main").await.expect("diff");
    assert!(diff.contains("left uncommitted by the agent"), "{diff}");
    fx.store
        .changed_files(&wt, "main")
        .await
        .expect("changed files");
    fx.assert_nothing_ran("diff_against_base / changed_files");

    // The local forge's merge: a lease-checked fast-forward of main.
    fx.store.push_branch(REPO, BRANCH).await.expect("push");
    let base = fx
        .store
        .remote_branch_sha(REPO, "main")
        .await
        .expect("ls-remote")
        .expect("main");
    let ff = fx
        .store
        .fast_forward_base(REPO, BRANCH, "main", &base)
        .await
        .expect("fast-forward");
    assert!(matches!(ff, FastForward::Pushed { .. }), "{ff:?}");
    fx.assert_nothing_ran("fast_forward_base");

    // A second task's worktree checks out files the smudge filter names.
    let second = fx
        .store
        .create_or_reuse_worktree(REPO, "feature/ORCH-8-next", "main")
        .await
        .expect("second worktree");
    assert_eq!(
        std::fs::read_to_string(second.path.join("notes.txt")).unwrap(),
        "left uncommitted by the agent\n"
    );
    fx.assert_nothing_ran("create_or_reuse_worktree (checkout)");

    let deleted = fx
        .store
        .delete_remote_branch(REPO, BRANCH, &ProtectedBranches::default())
        .await
        .expect("delete");
    assert_eq!(deleted, DeleteOutcome::Deleted);
    assert_eq!(fx.remote_sha(BRANCH), None);
    fx.assert_nothing_ran("delete_remote_branch");

    fx.store
        .remove_worktree(REPO, BRANCH, ITEM)
        .await
        .expect("remove");
    fx.store.fetch(REPO).await.expect("fetch");
    fx.store
        .ensure_mirror(REPO, fx.remote.to_str().unwrap())
        .await
        .expect("ensure again");
    fx.store.prune_stale().await.expect("prune");
    fx.assert_nothing_ran("remove_worktree / fetch / ensure_mirror / prune_stale");
}

#[tokio::test]
async fn a_rewritten_dot_git_file_does_not_redirect_orch() {
    let fx = fixture().await;
    let wt = fx
        .store
        .create_or_reuse_worktree(REPO, BRANCH, "main")
        .await
        .expect("worktree");
    // The agent points its worktree at a repository of its own making, whose
    // config defines a filter for every file.
    let evil = fx.root.join("evil.git");
    agent_git(
        &fx.home,
        &fx.root,
        &["init", "--quiet", "--bare", evil.to_str().unwrap()],
    );
    let clean = fx.program("evil-clean");
    agent_git(&fx.home, &evil, &["config", "filter.z.clean", &clean]);
    std::fs::write(evil.join("info/attributes"), "* filter=z\n").unwrap();
    std::fs::write(
        wt.path.join(".git"),
        format!("gitdir: {}\n", evil.display()),
    )
    .unwrap();
    std::fs::write(wt.path.join("work.txt"), "work\n").unwrap();

    let sha = fx
        .store
        .commit_all(&wt, "orch: leftovers")
        .await
        .expect("commit")
        .expect("sha");
    fx.assert_nothing_ran("commit_all through a rewritten .git");
    let mirror = fx.store.mirror_path(REPO).unwrap();
    let on_branch = agent_git(
        &fx.home,
        &mirror,
        &["rev-parse", &format!("refs/heads/{BRANCH}")],
    );
    assert_eq!(on_branch.trim(), sha, "the commit is on the task's branch");
}

#[tokio::test]
async fn orchs_git_sees_none_of_orchs_environment() {
    let fx = fixture().await;
    // No variable of orch's own (tokens, secrets) is on the list git may see.
    for var in orch_git::PASSED_VARS {
        assert!(
            !var.contains("TOKEN") && !var.contains("SECRET") && !var.starts_with("ORCH"),
            "{var} would pass a secret"
        );
    }
    // Through a real call: a program git starts (here the upload-pack of a path
    // remote, standing in for anything git might run) sees no secret.
    let probe = fx.root.join("probe.sh");
    std::fs::write(
        &probe,
        format!(
            "#!/bin/sh\nenv > '{}'\nexec git-upload-pack \"$@\"\n",
            fx.root.join("probe-env").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let git = Git::new().isolated(&fx.home);
    let upload = format!("--upload-pack={}", probe.display());
    git.run(
        &fx.root,
        ["ls-remote", upload.as_str(), fx.remote.to_str().unwrap()],
    )
    .await
    .expect("ls-remote");
    let env = std::fs::read_to_string(fx.root.join("probe-env")).unwrap();
    assert!(
        !env.contains(SECRET),
        "the secret reached git's child: {env}"
    );
    assert!(env.contains("PATH="), "PATH is passed: {env}");
}
