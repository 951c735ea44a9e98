//! The outbox of outgoing notifications: written by pipeline moves, drained
//! by the sender (`orch_engine::notify`).

use super::{SqliteStore, rows};
use crate::common::json_text;
use crate::error::StoreResult;
use crate::model::{NewNotification, Notification, OutboxCounts, TRACKER_SINK};
use crate::traits::NotificationStore;
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn enqueue_notification(&self, n: &NewNotification) -> StoreResult<bool> {
        let now = self.now();
        let payload = json_text(&n.payload, "notification payload")?;
        let written = self.write(
            "INSERT INTO notifications (sink, task_id, payload, dedupe_key, next_at, created_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT DO NOTHING",
            (&n.sink, &n.task_id.map(|t| t.0), &payload, &n.dedupe_key, &now.0),
        )
            .await?;
        Ok(written == 1)
    }

    async fn due_notifications(&self, limit: u32) -> StoreResult<Vec<Notification>> {
        let now = self.now();
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::notification_columns!(),
                " FROM notifications
                     WHERE sent_at IS NULL AND failed_at IS NULL AND next_at <= ?1
                       AND sink <> ?3
                     ORDER BY next_at, id LIMIT ?2"
            ),
            (&now.0, &i64::from(limit), TRACKER_SINK),
            rows::notification,
        )
        .await
    }

    async fn pending_notifications(
        &self,
        sink: &str,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::notification_columns!(),
                " FROM notifications
                     WHERE sent_at IS NULL AND failed_at IS NULL AND sink = ?1
                     ORDER BY id LIMIT ?2"
            ),
            (sink, &i64::from(limit)),
            rows::notification,
        )
        .await
    }

    async fn notification_sent(&self, id: i64) -> StoreResult<bool> {
        let now = self.now();
        let n = self
            .write(
                "UPDATE notifications SET sent_at = ?1, last_error = NULL
                     WHERE id = ?2 AND sent_at IS NULL AND failed_at IS NULL",
                (&now.0, &id),
            )
            .await?;
        Ok(n == 1)
    }

    async fn notification_failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<bool> {
        let now = self.now();
        let retry_at = retry_in.map(|d| now.plus(d));
        let n = self
            .write(
                "UPDATE notifications
                     SET attempts = attempts + 1, last_error = ?1,
                         next_at = COALESCE(?2, next_at),
                         failed_at = CASE WHEN ?2 IS NULL THEN ?3 END
                     WHERE id = ?4 AND sent_at IS NULL AND failed_at IS NULL",
                (&error, &retry_at.map(|t| t.0), &now.0, &id),
            )
            .await?;
        Ok(n == 1)
    }

    async fn outbox_counts(&self, sink: &str) -> StoreResult<OutboxCounts> {
        let counts = self
            .read_one(
                "SELECT
                     COALESCE(SUM(sent_at IS NULL AND failed_at IS NULL AND attempts = 0), 0),
                     COALESCE(SUM(sent_at IS NULL AND failed_at IS NULL AND attempts > 0), 0),
                     COALESCE(SUM(failed_at IS NOT NULL), 0)
                 FROM notifications WHERE sink = ?1",
                (sink,),
                |r| {
                    let n = |i: usize| -> StoreResult<u64> {
                        let v: i64 = r.get(i)?;
                        Ok(u64::try_from(v).unwrap_or(0))
                    };
                    Ok(OutboxCounts {
                        waiting: n(0)?,
                        retrying: n(1)?,
                        given_up: n(2)?,
                    })
                },
            )
            .await?;
        Ok(counts.unwrap_or_default())
    }

    async fn given_up_notifications(
        &self,
        sink: &str,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::notification_columns!(),
                " FROM notifications WHERE sink = ?1 AND failed_at IS NOT NULL
                     ORDER BY failed_at DESC, id DESC LIMIT ?2"
            ),
            (sink, &i64::from(limit)),
            rows::notification,
        )
        .await
    }

    async fn resend_notification(&self, id: i64) -> StoreResult<bool> {
        let now = self.now();
        let n = self
            .write(
                "UPDATE notifications SET failed_at = NULL, attempts = 0, next_at = ?1
                     WHERE id = ?2 AND failed_at IS NOT NULL AND sent_at IS NULL",
                (&now.0, &id),
            )
            .await?;
        Ok(n == 1)
    }
}
