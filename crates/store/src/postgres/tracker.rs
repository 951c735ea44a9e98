//! The builtin tracker's items and comments, kept in the store.

use super::{PgStore, all, first};
use crate::common::labels_json;
use crate::error::{StoreError, StoreResult};
use crate::model::{TrackerComment, TrackerItem};
use crate::rows;
use crate::traits::TrackerStore;
use async_trait::async_trait;

#[async_trait]
impl TrackerStore for PgStore {
    async fn create_item(&self, item: &TrackerItem) -> StoreResult<()> {
        let now = self.now();
        let q = sqlx::query(
            "INSERT INTO tracker_items (id, project, title, body, state, labels, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&item.id)
        .bind(&item.project)
        .bind(&item.title)
        .bind(&item.body)
        .bind(&item.state)
        .bind(labels_json(&item.labels)?)
        .bind(now.0);
        if self.write(q).await? == 0 {
            return Err(StoreError::Duplicate {
                key: "tracker item id",
                value: item.id.clone(),
            });
        }
        Ok(())
    }

    async fn get_item(&self, id: &str) -> StoreResult<Option<TrackerItem>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::item_columns!(),
            " FROM tracker_items WHERE id = $1"
        ))
        .bind(id);
        first(&self.pool, q, rows::item).await
    }

    async fn list_items(&self, project: Option<&str>) -> StoreResult<Vec<TrackerItem>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::item_columns!(),
            " FROM tracker_items WHERE ($1::text IS NULL OR project = $1)
             ORDER BY updated_at, id COLLATE \"C\""
        ))
        .bind(project);
        all(&self.pool, q, rows::item).await
    }

    async fn set_item_state(&self, id: &str, state: &str) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query("UPDATE tracker_items SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(state)
            .bind(now.0)
            .bind(id);
        Ok(self.write(q).await? == 1)
    }

    async fn set_item_labels(&self, id: &str, labels: &[String]) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query("UPDATE tracker_items SET labels = $1, updated_at = $2 WHERE id = $3")
            .bind(labels_json(labels)?)
            .bind(now.0)
            .bind(id);
        Ok(self.write(q).await? == 1)
    }

    async fn add_item_comment(
        &self,
        item: &str,
        author: &str,
        body: &str,
        external_id: Option<&str>,
    ) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query(
            "INSERT INTO tracker_comments (item_id, author, body, external_id, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(item)
        .bind(author)
        .bind(body)
        .bind(external_id)
        .bind(now.0);
        Ok(self.write(q).await? == 1)
    }

    async fn item_comments(&self, item: &str) -> StoreResult<Vec<TrackerComment>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::comment_columns!(),
            " FROM tracker_comments WHERE item_id = $1 ORDER BY id"
        ))
        .bind(item);
        all(&self.pool, q, rows::comment).await
    }
}
