//! The builtin tracker's items and comments, kept in the store.

use super::{SqliteStore, rows};
use crate::common::labels_json;
use crate::error::{StoreError, StoreResult};
use crate::model::{TrackerComment, TrackerItem};
use crate::traits::TrackerStore;
use async_trait::async_trait;

#[async_trait]
impl TrackerStore for SqliteStore {
    async fn create_item(&self, item: &TrackerItem) -> StoreResult<()> {
        let now = self.now();
        let labels = labels_json(&item.labels)?;
        let n = self.write(
            "INSERT INTO tracker_items (id, project, title, body, state, labels, created_at, updated_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT DO NOTHING",
            (&item.id, &item.project, &item.title, &item.body, &item.state, &labels, &now.0),
        ).await?;
        if n == 0 {
            return Err(StoreError::Duplicate {
                key: "tracker item id",
                value: item.id.clone(),
            });
        }
        Ok(())
    }

    async fn get_item(&self, id: &str) -> StoreResult<Option<TrackerItem>> {
        self.read_one(
            concat!(
                "SELECT ",
                crate::rows::item_columns!(),
                " FROM tracker_items WHERE id = ?"
            ),
            (&id,),
            rows::item,
        )
        .await
    }

    async fn list_items(&self, project: Option<&str>) -> StoreResult<Vec<TrackerItem>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::item_columns!(),
                " FROM tracker_items WHERE (?1 IS NULL OR project = ?1) ORDER BY updated_at, id"
            ),
            (&project,),
            rows::item,
        )
        .await
    }

    async fn set_item_state(&self, id: &str, state: &str) -> StoreResult<bool> {
        let now = self.now();
        let n = self
            .write(
                "UPDATE tracker_items SET state = ?, updated_at = ? WHERE id = ?",
                (&state, &now.0, &id),
            )
            .await?;
        Ok(n == 1)
    }

    async fn set_item_labels(&self, id: &str, labels: &[String]) -> StoreResult<bool> {
        let now = self.now();
        let labels = labels_json(labels)?;
        let n = self
            .write(
                "UPDATE tracker_items SET labels = ?, updated_at = ? WHERE id = ?",
                (&labels, &now.0, &id),
            )
            .await?;
        Ok(n == 1)
    }

    async fn add_item_comment(
        &self,
        item: &str,
        author: &str,
        body: &str,
        external_id: Option<&str>,
    ) -> StoreResult<bool> {
        let now = self.now();
        let n = self
            .write(
                "INSERT INTO tracker_comments (item_id, author, body, external_id, created_at)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (&item, &author, &body, &external_id, &now.0),
            )
            .await?;
        Ok(n == 1)
    }

    async fn item_comments(&self, item: &str) -> StoreResult<Vec<TrackerComment>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::comment_columns!(),
                " FROM tracker_comments WHERE item_id = ? ORDER BY id"
            ),
            (&item,),
            rows::comment,
        )
        .await
    }
}
