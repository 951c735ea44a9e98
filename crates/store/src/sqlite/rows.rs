//! SQLite rows as `crate::rows::Columns`, and the shared mappings as plain
//! functions of a `rusqlite::Row` (a generic function cannot stand where a
//! closure over a row of any statement lifetime is wanted).

use crate::error::StoreResult;
use crate::model::{Marker, MergeLease, Notification, TrackerComment, TrackerItem};
use crate::rows::{self, Columns};
use orch_core::run::Run;
use orch_core::{Job, Task, TaskEvent};
use rusqlite::Row;

impl Columns for Row<'_> {
    fn int(&self, col: &str) -> StoreResult<i64> {
        Ok(self.get(col)?)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        Ok(self.get(col)?)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        Ok(self.get(col)?)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        Ok(self.get(col)?)
    }
    fn real(&self, col: &str) -> StoreResult<f64> {
        Ok(self.get(col)?)
    }
}

pub fn task(r: &Row<'_>) -> StoreResult<Task> {
    rows::task(r)
}
pub fn job(r: &Row<'_>) -> StoreResult<Job> {
    rows::job(r)
}
pub fn event(r: &Row<'_>) -> StoreResult<TaskEvent> {
    rows::event(r)
}
pub fn run(r: &Row<'_>) -> StoreResult<Run> {
    rows::run(r)
}
pub fn lease(r: &Row<'_>) -> StoreResult<MergeLease> {
    rows::lease(r)
}
pub fn marker(r: &Row<'_>) -> StoreResult<Marker> {
    rows::marker(r)
}
pub fn item(r: &Row<'_>) -> StoreResult<TrackerItem> {
    rows::item(r)
}
pub fn comment(r: &Row<'_>) -> StoreResult<TrackerComment> {
    rows::comment(r)
}
pub fn notification(r: &Row<'_>) -> StoreResult<Notification> {
    rows::notification(r)
}
