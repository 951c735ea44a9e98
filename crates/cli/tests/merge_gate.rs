//! The merge gate when things go wrong, through the `orch` binary (issue 15,
//! points 3 and 4):
//! - `orch serve` is killed (SIGKILL) together with its git child in the
//!   middle of the merger's `git merge`, which leaves `index.lock` and a
//!   half-written file behind: after the restart the task still ends `done`;
//! - a forge that keeps refusing the merge (Gitea's branch protection, Gitea
//!   asking to try later forever, a local remote whose hook refuses pushes)
//!   parks the task within `merge.max_attempts`, with the forge's words, and
//!   frees the repo's merge lease at once: the next task of the repo merges.
//!
//! Everything is real: the binary, git, the example agents, and Gitea's fake
//! over the project's bare remote on 127.0.0.1.

mod common;

use common::{Serve, add_task, count_events, git, ok, quickstart_project, show};
use orch_integrations::fakes::FakeGitea;
use orch_store::{LeaseStore, SqliteOptions, SqliteStore};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(150);
const GITEA_TOKEN: &str = "gitea-merge-gate-token";

/// The environment of `orch serve`: loopback never goes through a proxy.
fn serve_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
        ("no_proxy".into(), "127.0.0.1,localhost".into()),
    ];
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        // An empty value is no proxy for reqwest and curl alike.
        env.push((var.into(), String::new()));
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn start(dir: &Path, env: &[(String, String)]) -> Serve {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Serve::start_with_env(dir, &env)
}

fn stage(v: &Value) -> &str {
    v["task"]["stage"].as_str().unwrap_or("")
}

fn events_of<'a>(v: &'a Value, kind: &str) -> Vec<&'a str> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["message"].as_str().unwrap_or(""))
        .collect()
}

/// Polls the task until `until` holds; a task that ends elsewhere (one of
/// `done`, `needs_attention`, `failed`, `cancelled` that `until` rejects)
/// fails the test at once, with its events and the server's log.
fn wait(dir: &Path, key: &str, what: &str, until: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + DEADLINE;
    let mut signal = common::wait::Signal::new(dir);
    loop {
        signal.mark();
        if let Some(v) = show(dir, key) {
            if until(&v) {
                return v;
            }
            let s = stage(&v);
            assert!(
                !["done", "needs_attention", "failed", "cancelled"].contains(&s),
                "{key}: waiting for {what}, the task ended {s}: {:#}\n{}",
                v["events"],
                serve_logs(dir)
            );
        }
        assert!(
            Instant::now() < end,
            "{key}: {what} never happened: {:#}\n{}",
            show(dir, key)
                .map(|v| v["events"].clone())
                .unwrap_or_default(),
            serve_logs(dir)
        );
        signal.next(end.saturating_duration_since(Instant::now()));
    }
}

fn serve_logs(dir: &Path) -> String {
    let mut out = String::new();
    for n in 0..4 {
        if let Ok(s) = std::fs::read_to_string(dir.join(format!("serve-{n}.log"))) {
            let tail: Vec<&str> = s.lines().rev().take(40).collect();
            out += &format!("--- serve-{n}.log (last lines)\n");
            for l in tail.into_iter().rev() {
                out += l;
                out.push('\n');
            }
        }
    }
    out
}

/// Adds a work item (which starts its pipeline) and approves its analysis.
fn add_and_approve(dir: &Path, key: &str, title: &str) {
    ok(
        dir,
        &[
            "task", "add", "--repo", "demo", "--title", title, "--id", key,
        ],
    );
    wait(dir, key, "the approval gate", |v| {
        stage(v) == "awaiting_approval"
    });
    ok(dir, &["task", "approve", key]);
}

/// The repo's merge lease as the store has it: `Some(holder task id)`.
fn lease_holder(dir: &Path) -> Option<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(dir.join(".orch/orch.db"), SqliteOptions::default())
            .await
            .unwrap();
        let lease = store.merge_lease("demo").await.unwrap();
        store.close().await;
        lease.map(|l| l.holder_task.0)
    })
}

/// Attempts of the merge step the task's log records.
fn merge_attempts(v: &Value) -> usize {
    count_events(v, "merge_failed") + count_events(v, "merge_retry")
}

/// A parked task whose merge the forge refused: parked with `words`, within
/// `max` attempts, and holding no lease.
fn assert_parked_and_free(dir: &Path, key: &str, v: &Value, words: &str, max: usize) {
    let parked = events_of(v, "needs_attention");
    assert_eq!(parked.len(), 1, "{:#}", v["events"]);
    assert!(
        parked[0].contains(words),
        "parked with the forge's words: {parked:?}"
    );
    let attempts = merge_attempts(v);
    assert!(
        (1..=max).contains(&attempts),
        "{key}: {attempts} merge attempts, merge.max_attempts is {max}: {:#}",
        v["events"]
    );
    assert_eq!(count_events(v, "merged"), 0);
    assert_eq!(
        lease_holder(dir),
        None,
        "{key} parked: the merge lease is free"
    );
}

/// Waits until the task parks; nothing else may end it.
fn wait_parked(dir: &Path, key: &str) -> Value {
    wait(dir, key, "the park", |v| stage(v) == "needs_attention")
}

fn wait_done(dir: &Path, key: &str) -> Value {
    wait(dir, key, "done", |v| stage(v) == "done")
}

// ---------------------------------------------------------------------------
// Point 3: a crash in the middle of the merger's `git merge`.

/// A `git` in front of the real one for `orch serve` (and its agents): the
/// first `git merge` of orch's merger (`--no-edit`) after the test arms it
/// does what a git killed midway leaves behind — takes the worktree's
/// `index.lock` and writes half a file — then says where it is and hangs
/// until it is killed. Every other call is the real git.
fn blocking_git(dir: &Path) -> (PathBuf, PathBuf) {
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    assert!(real.starts_with('/'), "git not found: {real:?}");
    let bin = dir.join("test-bin");
    let block = dir.join("test-block");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&block).unwrap();
    let script = format!(
        r#"#!/bin/sh
REAL='{real}'
BLOCK='{block}'
sub=
skip=
for a in "$@"; do
  if [ -n "$skip" ]; then skip=; continue; fi
  case "$a" in
    -c|-C) skip=1 ;;
    -*) ;;
    *) sub="$a"; break ;;
  esac
done
case " $* " in *" --no-edit "*) noedit=1 ;; *) noedit= ;; esac
if [ "$sub" = merge ] && [ -n "$noedit" ] && mv "$BLOCK/armed" "$BLOCK/taken" 2>/dev/null; then
  lock=$("$REAL" rev-parse --git-path index.lock)
  case "$lock" in /*) ;; *) lock="$PWD/$lock" ;; esac
  set -C
  : > "$lock"
  set +C
  printf 'half-writ' >> README.md
  echo "$$ $lock" > "$BLOCK/blocked.tmp"
  mv "$BLOCK/blocked.tmp" "$BLOCK/blocked"
  exec sleep 600
fi
exec "$REAL" "$@"
"#,
        block = block.display()
    );
    let path = bin.join("git");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, block)
}

/// A commit on the remote's `main` that the task's branch does not have, so
/// the merger has a real merge to do.
fn move_the_base(tmp: &Path, remote: &Path) {
    let clone = tmp.join("someone-else");
    let remote = remote.to_str().unwrap();
    git(tmp, &["clone", "--quiet", remote, clone.to_str().unwrap()]);
    std::fs::write(clone.join("NEWS.md"), "# News\n\nThe base moved on.\n").unwrap();
    git(&clone, &["add", "NEWS.md"]);
    git(
        &clone,
        &[
            "-c",
            "user.name=someone",
            "-c",
            "user.email=someone@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "-m",
            "news",
        ],
    );
    git(&clone, &["push", "--quiet", "origin", "HEAD:main"]);
}

fn kill9(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

#[test]
fn kill_9_of_orch_and_its_git_mid_merge_still_ends_done() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "crash-merge", |cfg| cfg);
    let remote = dir.join("remotes/demo.git");
    let (bin, block) = blocking_git(&dir);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut serve = start(&dir, &serve_env(&[("PATH", &path)]));

    add_task(&dir, "DEMO-2", "Crash mid-merge", &[]);
    wait(&dir, "DEMO-2", "the approval gate", |v| {
        stage(v) == "awaiting_approval"
    });
    // The branch exists (analysis ran in its worktree); now the base moves.
    move_the_base(tmp.path(), &remote);
    std::fs::write(block.join("armed"), "").unwrap();
    ok(&dir, &["task", "approve", "DEMO-2"]);

    // The merger's git merge is under way (and hangs): kill orch, then its git.
    let end = Instant::now() + DEADLINE;
    let blocked = block.join("blocked");
    while !blocked.exists() {
        if let Some(v) = show(&dir, "DEMO-2") {
            assert!(
                !["done", "needs_attention", "failed", "cancelled"].contains(&stage(&v)),
                "the merge never reached git merge: {:#}",
                v["events"]
            );
        }
        assert!(
            Instant::now() < end,
            "the merger never ran git merge:\n{}",
            serve_logs(&dir)
        );
        // A file the hanging git writes: no engine signal (the merge is
        // under way, nothing commits until it ends).
        std::thread::sleep(Duration::from_millis(20));
    }
    let note = std::fs::read_to_string(&blocked).unwrap();
    let (git_pid, lock) = note.trim().split_once(' ').unwrap();
    kill9(serve.pid());
    kill9(git_pid.parse().unwrap());
    let lock = PathBuf::from(lock);
    assert!(
        lock.exists() && lock.to_str().unwrap().contains("/worktrees/"),
        "the killed merge left the worktree's index.lock: {}",
        lock.display()
    );

    // A supervisor restarts orch.
    let end = Instant::now() + Duration::from_secs(10);
    while !serve.restart_if_exited() {
        assert!(Instant::now() < end, "orch serve survived kill -9");
        // A process exiting: the kernel's news, no engine signal.
        std::thread::sleep(Duration::from_millis(10));
    }
    let v = wait_done(&dir, "DEMO-2");
    assert_eq!(count_events(&v, "merged"), 1, "{:#}", v["events"]);
    let removed = events_of(&v, "stale_lock_removed");
    assert_eq!(removed.len(), 1, "{:#}", v["events"]);
    assert!(removed[0].contains("index.lock"), "{removed:?}");
    assert_eq!(count_events(&v, "merge_undone"), 1, "{:#}", v["events"]);
    assert!(!lock.exists());
    // main has the moved base, the task's work, and nothing half-written.
    let files = git(&remote, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(
        files.contains("NEWS.md") && files.contains("work/DEMO-2.md"),
        "{files}"
    );
    let readme = git(&remote, &["show", "main:README.md"]);
    assert!(!readme.contains("half-writ"), "{readme}");
    assert_eq!(lease_holder(&dir), None);
}

// ---------------------------------------------------------------------------
// Point 4: a forge that keeps refusing the merge.

/// A quickstart project whose forge is a fake Gitea over its bare remote.
struct GiteaProject {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    gitea: FakeGitea,
    /// The fake serves requests on its own threads; the runtime owns them.
    _rt: tokio::runtime::Runtime,
}

fn gitea_project(name: &str) -> GiteaProject {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bare = tmp.path().join(name).join("remotes/demo.git");
    let gitea = rt.block_on(FakeGitea::start("acme/demo", GITEA_TOKEN, &bare));
    let uri = gitea.uri();
    let dir = quickstart_project(tmp.path(), name, |cfg| {
        format!(
            "{cfg}\n[forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{uri}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n"
        )
    });
    GiteaProject {
        _tmp: tmp,
        dir,
        gitea,
        _rt: rt,
    }
}

/// Gitea refuses: "protected branch" is a 405 that asking again cannot change.
#[test]
fn a_gitea_that_refuses_the_merge_parks_the_task_and_frees_the_lease() {
    let p = gitea_project("gitea-refuses");
    let dir = &p.dir;
    let refusal = "protected branch main: 1 approving review is required";
    for _ in 0..200 {
        p.gitea.m().merge_answers.push_back((405, refusal.into()));
    }
    let _serve = start(dir, &serve_env(&[("ORCH_GITEA_TOKEN", GITEA_TOKEN)]));
    add_and_approve(dir, "DEMO-2", "Refused by protection");
    let v = wait_parked(dir, "DEMO-2");
    assert_parked_and_free(dir, "DEMO-2", &v, refusal, 1);
    assert!(
        events_of(&v, "merge_failed")[0].contains(refusal),
        "{:#}",
        v["events"]
    );

    // The protection is lifted: the next task of the repo merges.
    p.gitea.m().merge_answers.clear();
    add_and_approve(dir, "DEMO-3", "Merges after the refusal");
    let v3 = wait_done(dir, "DEMO-3");
    assert_eq!(count_events(&v3, "merged"), 1);
    assert!(
        p.gitea
            .prs()
            .iter()
            .any(|pr| pr.merged && pr.head.contains("DEMO-3"))
    );
    let v2 = show(dir, "DEMO-2").unwrap();
    assert_eq!(
        stage(&v2),
        "needs_attention",
        "the refused task stays parked"
    );
}

/// Gitea answers "try again later" forever: transient, retried with backoff,
/// parked after `merge.max_attempts` (3 here, set in the environment).
#[test]
fn a_gitea_that_never_gets_ready_parks_after_max_attempts() {
    let p = gitea_project("gitea-never-ready");
    let dir = &p.dir;
    for _ in 0..200 {
        p.gitea
            .m()
            .merge_answers
            .push_back((405, "Please try again later".into()));
    }
    let _serve = start(
        dir,
        &serve_env(&[
            ("ORCH_GITEA_TOKEN", GITEA_TOKEN),
            ("ORCH_MERGE__MAX_ATTEMPTS", "3"),
        ]),
    );
    add_and_approve(dir, "DEMO-2", "Never ready");
    let v = wait_parked(dir, "DEMO-2");
    assert_parked_and_free(dir, "DEMO-2", &v, "try again later", 3);
    assert_eq!(count_events(&v, "merge_failed"), 3, "{:#}", v["events"]);
    let answered = 200 - p.gitea.m().merge_answers.len();
    assert_eq!(answered, 3, "one merge call per attempt");

    p.gitea.m().merge_answers.clear();
    add_and_approve(dir, "DEMO-3", "Merges afterwards");
    let v3 = wait_done(dir, "DEMO-3");
    assert_eq!(count_events(&v3, "merged"), 1);
}

/// The local forge: the remote's hook refuses every push. The merge step's
/// push fails with the hook's words; the task parks at once, the lease is
/// free, and once the hook is gone the next task merges.
#[test]
fn a_local_remote_that_refuses_pushes_parks_the_task_and_frees_the_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "local-refuses", |cfg| cfg);
    let hook = dir.join("remotes/demo.git/hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    let words = "this repository is frozen until the release";
    std::fs::write(&hook, format!("#!/bin/sh\necho '{words}' >&2\nexit 1\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _serve = start(&dir, &serve_env(&[]));
    add_and_approve(&dir, "DEMO-2", "Refused by the remote");
    let v = wait_parked(&dir, "DEMO-2");
    assert_parked_and_free(&dir, "DEMO-2", &v, words, 1);

    std::fs::remove_file(&hook).unwrap();
    add_and_approve(&dir, "DEMO-3", "Merges after the thaw");
    let v3 = wait_done(&dir, "DEMO-3");
    assert_eq!(count_events(&v3, "merged"), 1);
    let log = git(
        &dir.join("remotes/demo.git"),
        &["log", "--format=%s", "main"],
    );
    assert!(
        log.contains("feat(DEMO-3)") && !log.contains("feat(DEMO-2)"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------
// A branch that brings nothing: its head is already in the base.

/// An analyst and a developer that change nothing, and a reviewer that approves and
/// leaves a note in the worktree without committing it: the branch reaches
/// the merge gate with no commit of its own. A fast-forward to where main
/// already is would be "merged" in name only (the chaos run found tasks
/// done this way with their work never committed), so the task parks with
/// the reason and the uncommitted path, main does not move, and the merge
/// lease is free for the next task.
#[test]
fn a_branch_with_no_change_of_its_own_parks_instead_of_claiming_a_merge() {
    let tmp = tempfile::tempdir().unwrap();
    // The reviewer is a program of its own (a sandbox shows an agent's
    // program and its folder, not the files its arguments name).
    let agents = tmp.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let reviewer = agents.join("approve-with-note.sh");
    std::fs::write(
        &reviewer,
        "#!/bin/sh\necho 'looked at it' > review-note.txt\nprintf '```orch-verdict\\n{\"verdict\": \"approve\", \"comments\": []}\\n```\\n'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&reviewer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = quickstart_project(tmp.path(), "nothing-to-merge", |cfg| {
        cfg.replace(
            "command = [\"examples/agents/analyst.sh\"]",
            "command = [\"sh\", \"-c\", \"echo analyst: nothing to write\"]",
        )
        .replace(
            "command = [\"examples/agents/developer.sh\"]",
            "command = [\"sh\", \"-c\", \"echo developer: nothing to change\"]",
        )
        .replace(
            "command = [\"examples/agents/reviewer.sh\"]",
            &format!("command = [{:?}]", reviewer.display().to_string()),
        )
    });
    let remote = dir.join("remotes/demo.git");
    let main_before = git(&remote, &["rev-parse", "main"]);
    let _serve = start(&dir, &serve_env(&[]));
    add_and_approve(&dir, "DEMO-2", "Nothing to do");
    let v = wait_parked(&dir, "DEMO-2");
    let parked = events_of(&v, "needs_attention");
    assert_eq!(parked.len(), 1, "{:#}", v["events"]);
    assert!(
        parked[0].contains("nothing to merge")
            && parked[0].contains("no change of its own")
            && parked[0].contains("review-note.txt"),
        "the reason names the uncommitted work: {parked:?}"
    );
    assert_eq!(count_events(&v, "merged"), 0, "{:#}", v["events"]);
    assert_eq!(count_events(&v, "merge_initiated"), 0, "{:#}", v["events"]);
    assert_eq!(lease_holder(&dir), None, "parked: the merge lease is free");
    assert_eq!(git(&remote, &["rev-parse", "main"]), main_before);
}
