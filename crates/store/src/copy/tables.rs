//! What `orch db copy` copies: every table of orch's schema, its columns with
//! their kind, its key, in an order where every foreign key points to a table
//! copied before it. Both dialects share the description; a test checks it
//! against the migrations of each (`tests/copy.rs`), and a copy checks it
//! against both databases before it writes anything.

/// A column's kind, the same on both stores: SQLite's INTEGER / REAL / TEXT,
/// PostgreSQL's BIGINT / DOUBLE PRECISION / TEXT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
}

/// One value of a row, as both databases hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A row: its values in the order of `Table::columns`.
pub type Row = Vec<Value>;

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// The primary key: rows are read in its order, a page at a time.
    pub key: &'static [&'static str],
    /// New ids come from a counter (PostgreSQL's sequence, SQLite's
    /// AUTOINCREMENT or its largest rowid), which the copy carries over.
    pub counter: bool,
}

use Kind::{Int, Real, Text};

/// Every table, parents before children.
pub const TABLES: &[Table] = &[
    Table {
        name: "tasks",
        columns: &[
            ("id", Int),
            ("tracker_id", Text),
            ("work_item_id", Text),
            ("repo", Text),
            ("branch", Text),
            ("stage", Text),
            ("title", Text),
            ("body", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("cancel_requested_at", Int),
            ("cancelled_at", Int),
        ],
        key: &["id"],
        counter: true,
    },
    Table {
        name: "task_deps",
        columns: &[("task_id", Int), ("depends_on", Int)],
        key: &["task_id", "depends_on"],
        counter: false,
    },
    Table {
        name: "task_events",
        columns: &[
            ("id", Int),
            ("task_id", Int),
            ("at", Int),
            ("actor", Text),
            ("kind", Text),
            ("from_stage", Text),
            ("to_stage", Text),
            ("message", Text),
        ],
        key: &["id"],
        counter: true,
    },
    Table {
        name: "jobs",
        columns: &[
            ("id", Int),
            ("task_id", Int),
            ("agent", Text),
            ("repo", Text),
            ("status", Text),
            ("priority", Int),
            ("attempts", Int),
            ("max_attempts", Int),
            ("run_after", Int),
            ("run_id", Text),
            ("worker_id", Text),
            ("lease_expires_at", Int),
            ("last_error", Text),
            ("payload", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        key: &["id"],
        counter: true,
    },
    Table {
        name: "runs",
        columns: &[
            ("run_id", Text),
            ("job_id", Int),
            ("task_id", Int),
            ("agent", Text),
            ("attempt", Int),
            ("worker_id", Text),
            ("pid", Int),
            ("pgid", Int),
            ("proc_start_ticks", Int),
            ("log_path", Text),
            ("started_at", Int),
            ("finished_at", Int),
            ("exit_code", Int),
            ("signal", Int),
            ("outcome", Text),
            ("input_tokens", Int),
            ("output_tokens", Int),
            ("cost_usd", Real),
            ("session_id", Text),
            ("error", Text),
            ("final_text", Text),
        ],
        key: &["run_id"],
        counter: false,
    },
    Table {
        name: "nodes",
        columns: &[
            ("name", Text),
            ("boot_id", Text),
            ("started_at", Int),
            ("heartbeat_at", Int),
            ("draining", Int),
            ("claims_stopped", Int),
            ("api_url", Text),
            ("machine", Text),
        ],
        key: &["name"],
        counter: false,
    },
    Table {
        name: "leader",
        columns: &[
            ("id", Int),
            ("node", Text),
            ("epoch", Int),
            ("expires_at", Int),
        ],
        key: &["id"],
        counter: false,
    },
    Table {
        name: "worktree_disk",
        columns: &[
            ("task_id", Int),
            ("bytes", Int),
            ("complete", Int),
            ("measured_at", Int),
            ("cleaned_at", Int),
            ("freed_bytes", Int),
        ],
        key: &["task_id"],
        counter: false,
    },
    Table {
        name: "merge_leases",
        columns: &[
            ("repo", Text),
            ("holder_task_id", Int),
            ("holder_branch", Text),
            ("epoch", Int),
            ("acquired_at", Int),
            ("updated_at", Int),
        ],
        key: &["repo"],
        counter: false,
    },
    Table {
        name: "markers",
        columns: &[
            ("id", Int),
            ("task_id", Int),
            ("repo", Text),
            ("step", Text),
            ("state", Text),
            ("detail", Text),
            ("created_at", Int),
            ("completed_at", Int),
        ],
        key: &["id"],
        counter: true,
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            ("provider", Text),
            ("delivery_id", Text),
            ("received_at", Int),
        ],
        key: &["provider", "delivery_id"],
        counter: false,
    },
    Table {
        name: "tracker_items",
        columns: &[
            ("id", Text),
            ("project", Text),
            ("title", Text),
            ("body", Text),
            ("state", Text),
            ("labels", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        key: &["id"],
        counter: false,
    },
    Table {
        name: "tracker_comments",
        columns: &[
            ("id", Int),
            ("item_id", Text),
            ("author", Text),
            ("body", Text),
            ("external_id", Text),
            ("created_at", Int),
        ],
        key: &["id"],
        counter: true,
    },
    Table {
        name: "notifications",
        columns: &[
            ("id", Int),
            ("sink", Text),
            ("task_id", Int),
            ("payload", Text),
            ("dedupe_key", Text),
            ("attempts", Int),
            ("next_at", Int),
            ("sent_at", Int),
            ("failed_at", Int),
            ("last_error", Text),
            ("created_at", Int),
        ],
        key: &["id"],
        counter: true,
    },
];

/// The table of this name, if orch has one.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

impl Table {
    /// `a, b, c`
    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The positions of the key's columns in a row.
    pub(crate) fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|(c, _)| c == k)
                    .expect("a key column is one of the table's columns")
            })
            .collect()
    }

    /// The key's kinds, in key order.
    pub(crate) fn key_kinds(&self) -> Vec<Kind> {
        self.key_positions()
            .into_iter()
            .map(|i| self.columns[i].1)
            .collect()
    }

    /// A page of rows in key order, after the key `after` when given. `p(n)`
    /// is the dialect's n-th placeholder (1-based). The key comparison is a
    /// row value, which both databases answer from the primary key's index.
    pub(crate) fn page_sql(&self, after: bool, limit: u32, p: impl Fn(usize) -> String) -> String {
        let order = self.key.join(", ");
        let filter = if after {
            let params: Vec<String> = (1..=self.key.len()).map(&p).collect();
            format!("WHERE ({order}) > ({}) ", params.join(", "))
        } else {
            String::new()
        };
        format!(
            "SELECT {} FROM {} {filter}ORDER BY {order} LIMIT {limit}",
            self.column_list(),
            self.name
        )
    }

    /// An INSERT of `rows` rows, placeholders numbered row by row.
    pub(crate) fn insert_sql(&self, rows: usize, p: impl Fn(usize) -> String) -> String {
        let n = self.columns.len();
        let values: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=n).map(|i| p(r * n + i)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.name,
            self.column_list(),
            values.join(", ")
        )
    }

    /// The key of a row, to read the next page after it.
    pub fn key_of_row(&self, row: &Row) -> Vec<Value> {
        self.key_positions()
            .into_iter()
            .map(|i| row[i].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_a_column_and_parents_come_first() {
        for (i, t) in TABLES.iter().enumerate() {
            assert_eq!(t.key_positions().len(), t.key.len(), "{}", t.name);
            assert!(!t.counter || t.key == ["id"], "{}", t.name);
            assert!(
                TABLES[..i].iter().all(|p| p.name != t.name),
                "{} twice",
                t.name
            );
        }
    }

    #[test]
    fn page_and_insert_sql() {
        let deps = table("task_deps").unwrap();
        assert_eq!(
            deps.page_sql(true, 10, |i| format!("${i}")),
            "SELECT task_id, depends_on FROM task_deps WHERE (task_id, depends_on) > ($1, $2) ORDER BY task_id, depends_on LIMIT 10"
        );
        assert_eq!(
            deps.insert_sql(2, |i| format!("?{i}")),
            "INSERT INTO task_deps (task_id, depends_on) VALUES (?1, ?2), (?3, ?4)"
        );
    }
}
