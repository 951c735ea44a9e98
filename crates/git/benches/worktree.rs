//! Worktree vs clone: what a task's checkout costs.
//!
//! Builds a remote with 20,000 small files (one `git fast-import`, so generation
//! is quick), mirrors it once, then per iteration creates a task worktree and, for
//! comparison, clones the same repository — `--no-local` (objects copied as over
//! the network, what a clone per task from a forge costs) and a plain local clone
//! (objects hard-linked, the cheapest clone possible on one filesystem). Prints
//! wall time (min/median/max) and disk use of each, and the ratios.
//!
//! Dirty pages are flushed (`sync`) before each timed step, so one step does not
//! pay for writing back the previous one's files.
//!
//! Run: `cargo bench -p orch-git --bench worktree`
//! (`BENCH_FILES` and `BENCH_ITERS` override the file count and iterations,
//! `BENCH_DIR` the parent of the temp dir, e.g. `/dev/shm` to take the disk out).

use std::error::Error;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use orch_git::{Git, RepoStore};

type Res<T> = Result<T, Box<dyn Error>>;

/// Flush dirty pages so the next timed step starts from a quiet disk.
fn sync() -> Res<()> {
    std::process::Command::new("sync").status()?;
    Ok(())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Write a fast-import stream of `files` small files in one commit on `main`.
fn generate_remote(git: &Git, remote: &Path, files: usize) -> Res<()> {
    let status = std::process::Command::new(git.binary())
        .args(["init", "--quiet", "--bare", "-b", "main"])
        .arg(remote)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()?;
    if !status.success() {
        return Err("git init failed".into());
    }
    let mut child = std::process::Command::new(git.binary())
        .args(["fast-import", "--quiet"])
        .current_dir(remote)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    {
        let stdin = child.stdin.as_mut().ok_or("no stdin")?;
        let mut w = std::io::BufWriter::new(stdin);
        for i in 0..files {
            let data = format!("file {i}\nsome content so the blob is not empty\n");
            write!(w, "blob\nmark :{}\ndata {}\n{}\n", i + 1, data.len(), data)?;
        }
        let msg = "generated";
        write!(
            w,
            "commit refs/heads/main\ncommitter bench <bench@localhost> 1700000000 +0000\ndata {}\n{}\n",
            msg.len(),
            msg
        )?;
        for i in 0..files {
            writeln!(w, "M 100644 :{} src/d{:03}/f{:05}.txt", i + 1, i / 100, i)?;
        }
        writeln!(w, "done")?;
        w.flush()?;
    }
    if !child.wait()?.success() {
        return Err("git fast-import failed".into());
    }
    Ok(())
}

/// Allocated bytes under `path` (files counted once per inode, like `du`).
fn disk_usage(path: &Path) -> Res<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(total)
}

fn clone(
    rt: &tokio::runtime::Runtime,
    git: &Git,
    dir: &Path,
    remote: &Path,
    dest: &Path,
    no_local: bool,
) -> Res<()> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["clone".as_ref(), "--quiet".as_ref()];
    if no_local {
        args.push("--no-local".as_ref());
    }
    args.extend(["--".as_ref(), remote.as_os_str(), dest.as_os_str()]);
    rt.block_on(git.run(dir, args))?;
    Ok(())
}

struct Series {
    name: &'static str,
    hist: Histogram<u64>,
    disk: u64,
}

impl Series {
    fn new(name: &'static str) -> Res<Self> {
        Ok(Series {
            name,
            hist: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            disk: 0,
        })
    }

    fn record(&mut self, d: Duration) -> Res<()> {
        self.hist.record(u64::try_from(d.as_micros())?.max(1))?;
        Ok(())
    }

    fn median_ms(&self) -> f64 {
        self.hist.value_at_quantile(0.5) as f64 / 1000.0
    }

    fn print(&self) {
        println!(
            "{:<34} min {:>8.1} ms  median {:>8.1} ms  max {:>8.1} ms  disk {:>8.1} MiB",
            self.name,
            self.hist.min() as f64 / 1000.0,
            self.median_ms(),
            self.hist.max() as f64 / 1000.0,
            self.disk as f64 / (1024.0 * 1024.0),
        );
    }
}

fn main() -> Res<()> {
    let files = env_usize("BENCH_FILES", 20_000);
    let iters = env_usize("BENCH_ITERS", 5);
    let tmp = match std::env::var_os("BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let root = tmp.path().canonicalize()?;
    let home = root.join("home");
    std::fs::create_dir_all(&home)?;
    let git = Git::new().isolated(&home);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let remote = root.join("remote.git");
    let t = Instant::now();
    generate_remote(&git, &remote, files)?;
    println!(
        "generated a remote with {files} files in {:.1?}",
        t.elapsed()
    );

    let store = RepoStore::with_git(root.join("repos"), git.clone());
    let url = remote.to_str().ok_or("non-UTF-8 temp path")?;
    let t = Instant::now();
    let mirror = rt.block_on(store.ensure_mirror("bench", url))?;
    println!(
        "mirror (once per repo): {:.1?}, {:.1} MiB shared by every worktree",
        t.elapsed(),
        disk_usage(&mirror)? as f64 / (1024.0 * 1024.0)
    );

    let mut wt_series = Series::new("create worktree")?;
    let mut rm_series = Series::new("archive + remove worktree")?;
    let mut clone_series = Series::new("git clone --no-local")?;
    let mut local_series = Series::new("git clone (local, hard-linked)")?;
    let clones = root.join("clones");
    std::fs::create_dir_all(&clones)?;

    for i in 0..iters {
        let branch = format!("bench/task-{i}");
        // Rotate the order of the three checkouts so none always runs first (right
        // after the previous iteration's removal) and order effects cancel out.
        for step in (0..3).map(|k| (k + i) % 3) {
            sync()?;
            match step {
                0 => {
                    let t = Instant::now();
                    let wt =
                        rt.block_on(store.create_or_reuse_worktree("bench", &branch, "main"))?;
                    wt_series.record(t.elapsed())?;
                    let admin = mirror
                        .join("worktrees")
                        .join(wt.path.file_name().ok_or("no name")?);
                    wt_series.disk = disk_usage(&wt.path)? + disk_usage(&admin)?;
                }
                1 => {
                    let dest = clones.join(format!("full-{i}"));
                    let t = Instant::now();
                    clone(&rt, &git, &clones, &remote, &dest, true)?;
                    clone_series.record(t.elapsed())?;
                    clone_series.disk = disk_usage(&dest)?;
                }
                _ => {
                    let dest = clones.join(format!("local-{i}"));
                    let t = Instant::now();
                    clone(&rt, &git, &clones, &remote, &dest, false)?;
                    local_series.record(t.elapsed())?;
                    // Hard-linked objects are shared with the remote, so count the
                    // checkout only: the same yardstick as the worktree's (whose
                    // objects live in the mirror).
                    local_series.disk =
                        disk_usage(&dest)? - disk_usage(&dest.join(".git/objects"))?;
                }
            }
        }

        sync()?;
        let t = Instant::now();
        rt.block_on(store.remove_worktree("bench", &branch, "BENCH-1"))?;
        rm_series.record(t.elapsed())?;
    }

    println!("\n{files} files, {iters} iterations:");
    for s in [&wt_series, &clone_series, &local_series, &rm_series] {
        s.print();
    }
    println!(
        "\nclone --no-local / worktree: time x{:.2}, disk x{:.2}",
        clone_series.median_ms() / wt_series.median_ms(),
        clone_series.disk as f64 / wt_series.disk as f64
    );
    println!(
        "local clone / worktree:      time x{:.2}, disk x{:.2} (objects hard-linked, not counted)",
        local_series.median_ms() / wt_series.median_ms(),
        local_series.disk as f64 / wt_series.disk as f64
    );
    Ok(())
}
