//! The builtin tracker's items and comments, kept in the store.

use super::{SqliteStore, rows};
use crate::error::{StoreError, StoreResult};
use crate::model::{TrackerComment, TrackerItem};
use crate::traits::TrackerStore;
use async_trait::async_trait;

fn labels_json(labels: &[String]) -> StoreResult<String> {
    serde_json::to_string(labels).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))
}

#[async_trait]
impl TrackerStore for SqliteStore {
    async fn create_item(&self, item: &TrackerItem) -> StoreResult<()> {
        let now = self.now();
        let n = sqlx::query(
            "INSERT INTO tracker_items (id, project, title, body, state, labels, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT DO NOTHING",
        )
        .bind(item.id.clone())
        .bind(item.project.clone())
        .bind(item.title.clone())
        .bind(item.body.clone())
        .bind(item.state.clone())
        .bind(labels_json(&item.labels)?)
        .bind(now.0)
        .execute(&self.write)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Duplicate {
                key: "tracker item id",
                value: item.id.clone(),
            });
        }
        Ok(())
    }

    async fn get_item(&self, id: &str) -> StoreResult<Option<TrackerItem>> {
        let row = sqlx::query("SELECT * FROM tracker_items WHERE id = ?")
            .bind(id.to_owned())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::item).transpose()
    }

    async fn list_items(&self, project: Option<&str>) -> StoreResult<Vec<TrackerItem>> {
        let rows = sqlx::query(
            "SELECT * FROM tracker_items WHERE (?1 IS NULL OR project = ?1) ORDER BY updated_at, id",
        )
        .bind(project.map(str::to_owned))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::item).collect()
    }

    async fn set_item_state(&self, id: &str, state: &str) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE tracker_items SET state = ?, updated_at = ? WHERE id = ?")
            .bind(state.to_owned())
            .bind(self.now().0)
            .bind(id.to_owned())
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn set_item_labels(&self, id: &str, labels: &[String]) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE tracker_items SET labels = ?, updated_at = ? WHERE id = ?")
            .bind(labels_json(labels)?)
            .bind(self.now().0)
            .bind(id.to_owned())
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn add_item_comment(
        &self,
        item: &str,
        author: &str,
        body: &str,
        external_id: Option<&str>,
    ) -> StoreResult<bool> {
        let n = sqlx::query(
            "INSERT INTO tracker_comments (item_id, author, body, external_id, created_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(item.to_owned())
        .bind(author.to_owned())
        .bind(body.to_owned())
        .bind(external_id.map(str::to_owned))
        .bind(self.now().0)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn item_comments(&self, item: &str) -> StoreResult<Vec<TrackerComment>> {
        let rows = sqlx::query("SELECT * FROM tracker_comments WHERE item_id = ? ORDER BY id")
            .bind(item.to_owned())
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::comment).collect()
    }
}
