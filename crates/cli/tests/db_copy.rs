//! `orch db copy` through the binary: a populated SQLite store copied to
//! PostgreSQL and back with every row equal and the counts printed; refused
//! while an engine holds the data folder's lock; refused into a target with
//! data unless `--replace`. The PostgreSQL cases work in fresh schemas
//! (`ORCH_TEST_PG_URL`; under `CI` a missing URL fails them).

mod common;

use common::{ORCH, orch};
use orch_store::copy::{Db, TABLES};
use orch_store::testing::{PgScratch, pg_url, populate};
use std::path::Path;

/// A project folder whose configured store (the default, `.orch/orch.db`)
/// holds a bit of everything.
async fn populated_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&format!(
        "sqlite://{}",
        dir.path().join(".orch/orch.db").display()
    ))
    .await
    .unwrap();
    db.store().migrate().await.unwrap();
    populate(db.store()).await;
    db.close().await;
    dir
}

fn sqlite(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

fn failed(out: &std::process::Output) -> (i32, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn assert_same_rows(a: &str, b: &str) {
    let (a, b) = (Db::open(a).await.unwrap(), Db::open(b).await.unwrap());
    for t in TABLES {
        let sorted = |mut rows: Vec<orch_store::copy::Row>| {
            rows.sort_by_key(|r| format!("{:?}", t.key_of_row(r)));
            rows
        };
        let (left, right) = (
            sorted(a.rows(t).await.unwrap()),
            sorted(b.rows(t).await.unwrap()),
        );
        assert!(!left.is_empty(), "{} is populated", t.name);
        assert_eq!(left, right, "table {}", t.name);
    }
    a.close().await;
    b.close().await;
}

/// The count table has a line per table with equal counts.
fn assert_counts_printed(stdout: &str) {
    for t in TABLES {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(t.name))
            .unwrap_or_else(|| panic!("no count line for {}:\n{stdout}", t.name));
        let n: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(n.len(), 2, "{line}");
        assert_eq!(n[0], n[1], "{line}");
    }
    assert!(!stdout.contains("DIFFERS"), "{stdout}");
}

#[tokio::test]
async fn copies_sqlite_to_postgres_and_back() {
    let Some(base) = pg_url() else { return };
    let dir = populated_project().await;
    let scratch = PgScratch::create(&base).await;
    let source = sqlite(dir.path(), ".orch/orch.db");

    // --from defaults to the configured store.
    let out = orch(dir.path(), &["db", "copy", "--to", scratch.url()]);
    assert!(out.status.success(), "{:?}", failed(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_counts_printed(&stdout);
    assert!(stdout.contains("tasks: 5 rows"), "{stdout}");
    assert!(stdout.contains("set store.url"), "{stdout}");
    assert_same_rows(&source, scratch.url()).await;

    let back = sqlite(dir.path(), "back/orch.db");
    let out = orch(
        dir.path(),
        &["db", "copy", "--from", scratch.url(), "--to", &back],
    );
    assert!(out.status.success(), "{:?}", failed(&out));
    assert_counts_printed(&String::from_utf8(out.stdout).unwrap());
    assert_same_rows(&source, &back).await;

    // A second copy into the now full PostgreSQL schema is refused.
    let out = orch(dir.path(), &["db", "copy", "--to", scratch.url()]);
    let (code, stderr) = failed(&out);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already holds orch data"), "{stderr}");
}

#[tokio::test]
async fn refused_while_an_engine_holds_the_data_folder() {
    let dir = populated_project().await;
    let target = sqlite(dir.path(), "copy/orch.db");
    // What `orch serve` holds while it runs.
    let pid_file = std::fs::File::create(dir.path().join(".orch/serve.pid")).unwrap();
    let engine = nix::fcntl::Flock::lock(pid_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();

    let out = orch(dir.path(), &["db", "copy", "--to", &target]);
    let (code, stderr) = failed(&out);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("stop orch serve first"), "{stderr}");
    assert!(!dir.path().join("copy").exists(), "nothing was written");

    // An engine on the target's folder is refused as well.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join(".orch")).unwrap();
    let other_lock = std::fs::File::create(other.path().join(".orch/serve.pid")).unwrap();
    let other_engine =
        nix::fcntl::Flock::lock(other_lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .unwrap();
    drop(engine);
    let into_running = sqlite(other.path(), ".orch/orch.db");
    let out = orch(dir.path(), &["db", "copy", "--to", &into_running]);
    let (code, stderr) = failed(&out);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("stop orch serve first"), "{stderr}");
    drop(other_engine);

    // The engine stopped: the copy goes ahead.
    let out = orch(dir.path(), &["db", "copy", "--to", &target]);
    assert!(out.status.success(), "{:?}", failed(&out));
    assert_same_rows(&sqlite(dir.path(), ".orch/orch.db"), &target).await;
}

#[tokio::test]
async fn a_target_with_data_is_refused_unless_replace() {
    let dir = populated_project().await;
    let target = sqlite(dir.path(), "other.db");
    let other = Db::open(&target).await.unwrap();
    other.store().migrate().await.unwrap();
    other
        .store()
        .create_task(orch_core::NewTask::new("other", "not ours"), "test")
        .await
        .unwrap();
    other.close().await;
    drop(other);

    let out = orch(dir.path(), &["db", "copy", "--to", &target]);
    let (code, stderr) = failed(&out);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("already holds orch data (tasks: 1, task_events: 1)"),
        "{stderr}"
    );
    assert!(stderr.contains("--replace"), "{stderr}");

    let out = orch(dir.path(), &["db", "copy", "--to", &target, "--replace"]);
    assert!(out.status.success(), "{:?}", failed(&out));
    assert_counts_printed(&String::from_utf8(out.stdout).unwrap());
    assert_same_rows(&sqlite(dir.path(), ".orch/orch.db"), &target).await;
}

#[test]
fn a_missing_source_is_a_usage_error_and_help_names_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = orch(
        dir.path(),
        &[
            "db",
            "copy",
            "--from",
            "sqlite://nope.db",
            "--to",
            "sqlite://t.db",
        ],
    );
    let (code, stderr) = failed(&out);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no database at nope.db"), "{stderr}");
    assert!(!dir.path().join("nope.db").exists());

    let help = std::process::Command::new(ORCH)
        .args(["db", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("copy"), "{help}");
    assert!(help.contains("migrate"), "{help}");
}
