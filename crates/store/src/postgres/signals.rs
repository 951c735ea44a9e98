//! Queue signals on PostgreSQL: a dedicated `LISTEN orch_queue` connection
//! fed by the triggers of migration 0003, which send a NOTIFY in the same
//! transaction as the write that makes work claimable (or cancels it, or
//! moves a gate). PostgreSQL delivers it at COMMIT to every listener of the
//! database, on every node.
//!
//! The listener has a pool of its own (one connection, named
//! `orch-queue-signals:<schema>` in `pg_stat_activity`), so it never takes
//! one of the store's. When its connection is lost it reconnects, backing off while the
//! server is away, and then sends [`QueueSignal::Resync`]: a NOTIFY sent
//! while nobody listened is gone, so the consumer re-polls once.

use super::PgStore;
use crate::error::StoreResult;
use crate::signals::{QueueSignal, QueueSignals};
use orch_core::{JobId, TaskId};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use std::time::Duration;
use tokio::sync::mpsc;

/// The channel of migration 0003's triggers.
pub(crate) const CHANNEL: &str = "orch_queue";

/// The `application_name` of the listener of the store in `schema`, as
/// `pg_stat_activity` shows it (PostgreSQL keeps its first 63 bytes).
pub fn listener_app_name(schema: &str) -> String {
    format!("orch-queue-signals:{schema}")
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl PgStore {
    pub(super) async fn subscribe(&self) -> StoreResult<QueueSignals> {
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&self.pool)
            .await?;
        let options = (*self.pool.connect_options())
            .clone()
            .application_name(&listener_app_name(&schema));
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        // The first LISTEN is the caller's to see fail; later ones are retried.
        let listener = listen(&pool).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(forward(pool, listener, schema, tx));
        Ok(QueueSignals::new(rx, Some(task)))
    }
}

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(CHANNEL).await?;
    Ok(l)
}

/// Pass the notifications meant for `schema` on, until the receiver is gone.
async fn forward(
    pool: PgPool,
    mut listener: PgListener,
    schema: String,
    tx: mpsc::UnboundedSender<QueueSignal>,
) {
    loop {
        let next = tokio::select! {
            n = listener.try_recv() => n,
            () = tx.closed() => return,
        };
        match next {
            Ok(Some(n)) => {
                if let Some(signal) = parse(n.payload(), &schema)
                    && tx.send(signal).is_err()
                {
                    return;
                }
            }
            // The connection was lost and sqlx has listened again on a new one.
            Ok(None) => {
                tracing::warn!("the queue listener's connection was lost; listening again");
                if tx.send(QueueSignal::Resync).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the queue listener failed; reconnecting");
                drop(listener);
                let mut wait = BACKOFF_MIN;
                listener = loop {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = tx.closed() => return,
                    }
                    match listen(&pool).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in = ?wait, "the queue listener cannot reconnect");
                            wait = (wait * 2).min(BACKOFF_MAX);
                        }
                    }
                };
                tracing::info!("the queue listener is back");
                if tx.send(QueueSignal::Resync).is_err() {
                    return;
                }
            }
        }
    }
}

/// `<schema>:<kind>:<task>:<job>` (migration 0003), if meant for `schema`.
fn parse(payload: &str, schema: &str) -> Option<QueueSignal> {
    let mut parts = payload.rsplitn(4, ':');
    let job = parts.next()?;
    let task = TaskId(parts.next()?.parse().ok()?);
    let kind = parts.next()?;
    if parts.next()? != schema {
        return None;
    }
    let job = || job.parse().ok().map(JobId);
    Some(match kind {
        "job" => QueueSignal::JobQueued { task, job: job()? },
        "cancel" => QueueSignal::JobCancelled { task, job: job()? },
        "ended" => QueueSignal::JobEnded { task, job: job()? },
        "task" | "stage" | "lease" => QueueSignal::GateMoved { task },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_this_schema_only_are_signals() {
        assert_eq!(
            parse("s1:job:7:42", "s1"),
            Some(QueueSignal::JobQueued {
                task: TaskId(7),
                job: JobId(42)
            })
        );
        assert_eq!(
            parse("a:b:cancel:7:42", "a:b"),
            Some(QueueSignal::JobCancelled {
                task: TaskId(7),
                job: JobId(42)
            })
        );
        assert_eq!(
            parse("s1:stage:7:", "s1"),
            Some(QueueSignal::GateMoved { task: TaskId(7) })
        );
        assert_eq!(
            parse("s1:task:8:", "s1"),
            Some(QueueSignal::GateMoved { task: TaskId(8) })
        );
        assert_eq!(
            parse("s1:lease:9:", "s1"),
            Some(QueueSignal::GateMoved { task: TaskId(9) })
        );
        assert_eq!(parse("s2:job:7:42", "s1"), None);
        assert_eq!(parse("s1:job:7:", "s1"), None);
        assert_eq!(parse("s1:what:7:1", "s1"), None);
        assert_eq!(parse("garbage", "s1"), None);
    }
}
