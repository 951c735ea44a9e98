//! The outbox of outgoing notifications: written by pipeline moves, drained
//! by the sender (`orch_engine::notify`).

use super::{PgStore, all, first};
use crate::common::json_text;
use crate::error::StoreResult;
use crate::model::{NewNotification, Notification, OutboxCounts, TRACKER_SINK};
use crate::rows::{self, Columns};
use crate::traits::NotificationStore;
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
impl NotificationStore for PgStore {
    async fn enqueue_notification(&self, n: &NewNotification) -> StoreResult<bool> {
        let now = self.now();
        let payload = json_text(&n.payload, "notification payload")?;
        let q = sqlx::query(
            "INSERT INTO notifications (sink, task_id, payload, dedupe_key, next_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&n.sink)
        .bind(n.task_id.map(|t| t.0))
        .bind(payload)
        .bind(&n.dedupe_key)
        .bind(now.0);
        Ok(self.write(q).await? == 1)
    }

    async fn due_notifications(&self, limit: u32) -> StoreResult<Vec<Notification>> {
        let now = self.now();
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::notification_columns!(),
            " FROM notifications
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_at <= $1
               AND sink <> $3
             ORDER BY next_at, id LIMIT $2"
        ))
        .bind(now.0)
        .bind(i64::from(limit))
        .bind(TRACKER_SINK);
        all(&self.pool, q, rows::notification).await
    }

    async fn pending_notifications(
        &self,
        sink: &str,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::notification_columns!(),
            " FROM notifications
             WHERE sent_at IS NULL AND failed_at IS NULL AND sink = $1
             ORDER BY id LIMIT $2"
        ))
        .bind(sink)
        .bind(i64::from(limit));
        all(&self.pool, q, rows::notification).await
    }

    async fn notification_sent(&self, id: i64) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query(
            "UPDATE notifications SET sent_at = $1, last_error = NULL
             WHERE id = $2 AND sent_at IS NULL AND failed_at IS NULL",
        )
        .bind(now.0)
        .bind(id);
        Ok(self.write(q).await? == 1)
    }

    async fn notification_failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<bool> {
        let now = self.now();
        let retry_at = retry_in.map(|d| now.plus(d).0);
        let q = sqlx::query(
            "UPDATE notifications
             SET attempts = attempts + 1, last_error = $1,
                 next_at = COALESCE($2, next_at),
                 failed_at = CASE WHEN $2::bigint IS NULL THEN $3 END
             WHERE id = $4 AND sent_at IS NULL AND failed_at IS NULL",
        )
        .bind(error)
        .bind(retry_at)
        .bind(now.0)
        .bind(id);
        Ok(self.write(q).await? == 1)
    }

    async fn outbox_counts(&self, sink: &str) -> StoreResult<OutboxCounts> {
        let q = sqlx::query(
            "SELECT
                 COUNT(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL AND attempts = 0) AS waiting,
                 COUNT(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL AND attempts > 0) AS retrying,
                 COUNT(*) FILTER (WHERE failed_at IS NOT NULL) AS given_up
             FROM notifications WHERE sink = $1",
        )
        .bind(sink);
        let counts = first(&self.pool, q, |r| {
            let n = |c: &str| -> StoreResult<u64> { Ok(u64::try_from(r.int(c)?).unwrap_or(0)) };
            Ok(OutboxCounts {
                waiting: n("waiting")?,
                retrying: n("retrying")?,
                given_up: n("given_up")?,
            })
        })
        .await?;
        Ok(counts.unwrap_or_default())
    }

    async fn given_up_notifications(
        &self,
        sink: &str,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::notification_columns!(),
            " FROM notifications WHERE sink = $1 AND failed_at IS NOT NULL
             ORDER BY failed_at DESC, id DESC LIMIT $2"
        ))
        .bind(sink)
        .bind(i64::from(limit));
        all(&self.pool, q, rows::notification).await
    }

    async fn resend_notification(&self, id: i64) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query(
            "UPDATE notifications SET failed_at = NULL, attempts = 0, next_at = $1
             WHERE id = $2 AND failed_at IS NOT NULL AND sent_at IS NULL",
        )
        .bind(now.0)
        .bind(id);
        Ok(self.write(q).await? == 1)
    }
}
