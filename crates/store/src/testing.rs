//! Test support shared by the store's tests and benchmarks: a scratch
//! PostgreSQL schema per test on the server named by `ORCH_TEST_PG_URL`.

use crate::clock::ManualClock;
use crate::conformance::Harness;
use crate::postgres::{PgOptions, PgStore};
use crate::traits::Store;
use std::sync::Arc;

/// The variable naming the PostgreSQL server the tests use, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const PG_URL_VAR: &str = "ORCH_TEST_PG_URL";

/// The server for the PostgreSQL tests. Unset, a developer without
/// PostgreSQL gets `None` and a note, and runs the rest; under CI (`CI` set)
/// it is a failure, so CI can never pass by skipping them.
pub fn pg_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{PG_URL_VAR} is unset under CI: the PostgreSQL store tests must run there")
        }
        _ => {
            eprintln!("note: {PG_URL_VAR} is unset; skipping this PostgreSQL store test");
            None
        }
    }
}

/// A schema of its own on the test server, which the URL of `url()` puts
/// first on every connection's search path. Dropped (with everything in it)
/// when this is dropped, also when the test panics.
pub struct PgScratch {
    base: String,
    schema: String,
    url: String,
}

impl PgScratch {
    /// Create a fresh schema on the server at `base`. Panics (test support)
    /// when the server cannot be reached.
    pub async fn create(base: &str) -> PgScratch {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("orch_t_{secs}_{}", &uuid[..12]);
        // A test process killed before its drops leaves its schemas behind:
        // whoever creates one next drops those older than an hour.
        let sweep = format!(
            "DO $$ DECLARE s text; BEGIN
               FOR s IN SELECT nspname FROM pg_namespace
                        WHERE nspname ~ '^orch_t_[0-9]+_' AND split_part(nspname, '_', 3)::bigint < {}
               LOOP
                 -- Another test sweeping at once may drop it first.
                 BEGIN EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
                 EXCEPTION WHEN OTHERS THEN NULL; END;
               END LOOP;
             END $$; CREATE SCHEMA {schema}",
            secs.saturating_sub(3600)
        );
        run_admin(base, &sweep).await;
        // The tests need no durability across a crash of the server: commits
        // that do not wait for the disk keep DDL-heavy tests quick.
        let sep = if base.contains('?') { '&' } else { '?' };
        let url =
            format!("{base}{sep}options[search_path]={schema}&options[synchronous_commit]=off");
        PgScratch {
            base: base.to_owned(),
            schema,
            url,
        }
    }

    /// The URL whose connections work in this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, where blocking on a future is
        // not allowed: a thread of its own with a runtime of its own does it.
        let base = self.base.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(run_admin(&base, &sql));
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("could not drop the test schema {}", self.schema);
        }
    }
}

async fn run_admin(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {PG_URL_VAR}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// A fresh, migrated `PgStore` in a scratch schema, on a manual clock; `None`
/// when the PostgreSQL tests are skipped (see `pg_url`).
pub async fn pg_harness() -> Option<Harness> {
    let base = pg_url()?;
    let scratch = PgScratch::create(&base).await;
    let clock = ManualClock::new(orch_core::Timestamp(1_750_000_000_000));
    let opts = PgOptions {
        clock: Arc::new(clock.clone()),
        ..PgOptions::default()
    };
    let store = PgStore::open(scratch.url(), opts).await.expect("open");
    store.migrate().await.expect("migrate");
    Some(Harness {
        store: Arc::new(store),
        clock,
        guard: Box::new(scratch),
    })
}
