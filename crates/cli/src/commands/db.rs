//! `orch db migrate` and `orch db copy`.

use crate::args::DbCopyArgs;
use crate::engine_link;
use crate::error::{CliError, CliResult};
use crate::output::{out, outln};
use crate::progress::Progress;
use orch_config::Config;
use orch_store::copy::{self, CopyOptions, CopyProgress, CountReport, Db};
use std::path::PathBuf;
use std::time::Instant;

pub async fn migrate(cfg: &Config) -> CliResult {
    let location = cfg.store_location()?;
    // open_store migrates; running it again is a no-op.
    super::open_store(cfg).await?;
    outln!("database up to date: {}", location.url());
    Ok(())
}

/// Copy one store into another: refused while an engine runs on the data
/// folder (or on a SQLite file's folder), whose lock the copy then holds
/// until it ends; refused into a target with data
/// unless `--replace`; the counts of every table compared after, exit 1 if
/// any differ.
pub async fn copy(cfg: &Config, args: &DbCopyArgs) -> CliResult {
    let from = match &args.from {
        Some(url) => url.clone(),
        None => cfg.store_location()?.url(),
    };
    if let Some(path) = from.strip_prefix("sqlite://")
        && !std::path::Path::new(path).is_file()
    {
        return Err(CliError::Usage(format!(
            "no database at {path}: --from names no SQLite file"
        )));
    }
    // Held until the copy ends: no engine starts on either store meanwhile.
    // The data folder's lock file is made if missing; a SQLite file's folder
    // is held only where an engine has run (its serve.pid exists).
    let mut folders = vec![(cfg.data_dir(), true)];
    folders.extend(
        [from.as_str(), args.to.as_str()]
            .into_iter()
            .filter_map(sqlite_folder)
            .map(|d| (d, false)),
    );
    let mut held = Vec::new();
    for (dir, create) in folders {
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        if held.iter().any(|(d, _)| *d == dir) {
            continue;
        }
        let hold = engine_link::hold_folder(&dir, create)?;
        held.push((dir, hold));
    }
    let (shown_from, shown_to) = (copy::shown_url(&from), copy::shown_url(&args.to));
    let source = Db::open(&from).await?;
    let target = Db::open(&args.to).await?;
    let progress = Progress::new(Instant::now());
    progress.say(&format!("copying {shown_from} → {shown_to}"));
    let options = CopyOptions {
        replace: args.replace,
        ..CopyOptions::default()
    };
    let outcome = copy::copy_all(&source, &target, options, &mut Shown(&progress)).await;
    progress.finish();
    source.close().await;
    target.close().await;
    let report = outcome.map_err(|e| CliError::Runtime(anyhow::anyhow!("{e}")))?;
    out!("{}", counts_table(&report));
    drop(held);
    check(&report)?;
    outln!(
        "every table holds as many rows in the copy as in the source.\nnext: set store.url = \"{shown_to}\" in orch.toml (on every node), then start orch serve."
    );
    Ok(())
}

/// The folder of a SQLite database, where an engine using it would hold its lock.
fn sqlite_folder(url: &str) -> Option<PathBuf> {
    let path = std::path::Path::new(url.strip_prefix("sqlite://")?);
    let dir = path.parent()?;
    Some(if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    })
}

/// The copy's progress: a line per table copied, the rows so far on a terminal.
struct Shown<'a>(&'a Progress);

impl CopyProgress for Shown<'_> {
    fn table_started(&mut self, table: &'static str, rows: u64) {
        if rows == 0 {
            self.0.say(&format!("{table}: no rows"));
        } else {
            self.0.status(format!("{table}: 0 / {rows} rows"));
        }
    }

    fn rows_copied(&mut self, table: &'static str, done: u64, total: u64) {
        if done >= total {
            let s = if done == 1 { "" } else { "s" };
            self.0.say(&format!("{table}: {done} row{s}"));
        } else {
            self.0.status(format!("{table}: {done} / {total} rows"));
        }
    }
}

fn counts_table(report: &CountReport) -> String {
    let mut out = format!("{:<20} {:>10} {:>10}\n", "table", "source", "target");
    for c in &report.tables {
        let mark = if c.source == c.target {
            ""
        } else {
            "  DIFFERS"
        };
        out += &format!("{:<20} {:>10} {:>10}{mark}\n", c.table, c.source, c.target);
    }
    out
}

/// Exit 1 when any table's counts differ.
fn check(report: &CountReport) -> CliResult {
    let differing: Vec<String> = report
        .differing()
        .iter()
        .map(|c| {
            format!(
                "{}: {} in the source, {} in the target",
                c.table, c.source, c.target
            )
        })
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(CliError::Runtime(anyhow::anyhow!(
        "the row counts differ after the copy ({}); the target is not a faithful copy: do not use it, find out what wrote to either store during the copy, and copy again with --replace",
        differing.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_store::copy::TableCount;

    #[test]
    fn differing_counts_are_marked_and_fail_with_exit_1() {
        let report = CountReport {
            tables: vec![
                TableCount {
                    table: "tasks",
                    source: 5,
                    target: 5,
                },
                TableCount {
                    table: "jobs",
                    source: 9,
                    target: 8,
                },
            ],
        };
        let table = counts_table(&report);
        assert!(
            table.contains("tasks                         5          5\n"),
            "{table}"
        );
        assert!(
            table.contains("jobs                          9          8  DIFFERS\n"),
            "{table}"
        );
        let err = check(&report).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string()
                .contains("jobs: 9 in the source, 8 in the target"),
            "{err}"
        );
        let equal = CountReport {
            tables: report.tables[..1].to_vec(),
        };
        assert!(check(&equal).is_ok());
    }

    #[test]
    fn a_sqlite_file_s_folder() {
        assert_eq!(
            sqlite_folder("sqlite://.orch/orch.db"),
            Some(".orch".into())
        );
        assert_eq!(sqlite_folder("sqlite://orch.db"), Some(".".into()));
        assert_eq!(sqlite_folder("postgres://u@h/db"), None);
    }
}
