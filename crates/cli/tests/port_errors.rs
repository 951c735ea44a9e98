//! A command whose tracker or forge step fails exits 1 with the provider's
//! words and what they mean (issue 10, point 6): run in-process or sent to a
//! running `orch serve`, never a usage error (exit 2) and never without the
//! cause. The tracker is the fake Plane; orch's key for it was revoked.

mod common;

use common::Serve;
use orch_integrations::fakes::FakePlane;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const PROJECT: &str = "59e3be42-87ec-4950-99a3-ae639cf2b089";
/// The key orch sends; the fake Plane only takes `plane_api_right`.
const REVOKED: &str = "plane_api_revoked";

/// orch's calls to the fake are on loopback: never through a proxy.
const NO_PROXY: [(&str, &str); 2] = [
    ("NO_PROXY", "127.0.0.1,localhost"),
    ("no_proxy", "127.0.0.1,localhost"),
];

fn orch(dir: &Path, args: &[&str]) -> Output {
    Command::new(ORCH)
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .env("ORCH_PLANE_API_KEY", REVOKED)
        .envs(NO_PROXY)
        .stdin(Stdio::null())
        .output()
        .expect("run orch")
}

fn project(dir: &Path, plane: &FakePlane) {
    let remote = dir.join("remotes/demo.git");
    std::fs::create_dir_all(&remote).unwrap();
    common::git(&remote, &["init", "--quiet", "--bare", "-b", "main"]);
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    common::git(&seed, &["init", "--quiet", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "# demo\n").unwrap();
    common::git(&seed, &["add", "-A"]);
    common::git(
        &seed,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "commit",
            "--quiet",
            "-m",
            "initial commit",
        ],
    );
    common::git(
        &seed,
        &["push", "--quiet", remote.to_str().unwrap(), "main"],
    );
    std::fs::write(
        dir.join("orch.toml"),
        format!(
            "data_dir = \".orch\"\n\
             [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"true\"]\n\
             [tracker]\nkind = \"plane\"\n[tracker.plane]\nbase_url = \"{}\"\nworkspace = \"acme\"\nproject_ids = [\"{PROJECT}\"]\n",
            plane.uri()
        ),
    )
    .unwrap();
}

fn assert_refused_with_cause(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
    assert!(err.contains("401"), "{what}: the cause: {err}");
    assert!(
        err.contains("Invalid API key"),
        "{what}: Plane's words: {err}"
    );
    assert!(
        err.contains("[refused: asking again will not help"),
        "{what}: what it means: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_refusing_a_start_is_exit_1_with_its_words_here_and_through_the_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plane = FakePlane::start("acme", "plane_api_right").await;
    plane.add_project(PROJECT, &["Backlog", "To Analyse"]);
    let item = plane.add_item(PROJECT, "Add a greeting", "Backlog");
    project(dir, &plane);

    // No engine runs: the CLI asks Plane itself.
    let out = tokio::task::spawn_blocking({
        let (dir, item) = (dir.to_path_buf(), item.clone());
        move || orch(&dir, &["task", "start", &item])
    })
    .await
    .unwrap();
    assert_refused_with_cause(&out, "in-process");

    // An engine runs: the CLI sends the start to it, which answers 502.
    let _serve = Serve::start_with_env(
        dir,
        &[("ORCH_PLANE_API_KEY", REVOKED), NO_PROXY[0], NO_PROXY[1]],
    );
    let control = dir.join(".orch/serve.control");
    let end = Instant::now() + Duration::from_secs(60);
    while !control.exists() {
        assert!(
            Instant::now() < end,
            "orch serve never listened: {}",
            std::fs::read_to_string(dir.join("serve-0.log")).unwrap_or_default()
        );
        // Before its control file the engine has no API to signal on.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = tokio::task::spawn_blocking({
        let (dir, item) = (dir.to_path_buf(), item.clone());
        move || orch(&dir, &["task", "start", &item])
    })
    .await
    .unwrap();
    assert_refused_with_cause(&out, "through the engine");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("orch serve failed (502)"), "{err}");
}
