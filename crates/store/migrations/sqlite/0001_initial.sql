-- orch schema v1 (SQLite). Migrations are additive: never edit an applied file,
-- add a new one. Timestamps are INTEGER milliseconds since the Unix epoch.

CREATE TABLE IF NOT EXISTS tasks (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    tracker_id          TEXT,
    work_item_id        TEXT    NOT NULL,
    repo                TEXT    NOT NULL,
    branch              TEXT    NOT NULL,
    stage               TEXT    NOT NULL,
    title               TEXT    NOT NULL,
    body                TEXT    NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    cancel_requested_at INTEGER,
    cancelled_at        INTEGER
);
-- Live keys are unique; a cancel tombstones them (`<key>#cancelled-<id>`) to free them.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_tracker_id ON tasks (tracker_id) WHERE tracker_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS tasks_work_item_id ON tasks (work_item_id);
CREATE INDEX IF NOT EXISTS tasks_stage ON tasks (stage);

CREATE TABLE IF NOT EXISTS task_deps (
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    depends_on INTEGER NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on)
);

CREATE TABLE IF NOT EXISTS task_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    from_stage TEXT,
    to_stage   TEXT,
    message    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS task_events_task ON task_events (task_id, id);
-- The audit log is append-only, enforced by the database itself.
CREATE TRIGGER IF NOT EXISTS task_events_no_update BEFORE UPDATE ON task_events
BEGIN SELECT RAISE(ABORT, 'task_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS task_events_no_delete BEFORE DELETE ON task_events
BEGIN SELECT RAISE(ABORT, 'task_events is append-only'); END;

CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id          INTEGER NOT NULL REFERENCES tasks (id),
    agent            TEXT    NOT NULL,
    repo             TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    run_after        INTEGER NOT NULL,
    run_id           TEXT,
    worker_id        TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    payload          TEXT    NOT NULL DEFAULT 'null',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- Partial indexes hold only live rows: finished jobs cost the hot path nothing.
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, run_after, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (repo, agent) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_task ON jobs (task_id);

CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT    PRIMARY KEY,
    job_id           INTEGER NOT NULL REFERENCES jobs (id),
    task_id          INTEGER NOT NULL REFERENCES tasks (id),
    agent            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL,
    worker_id        TEXT    NOT NULL,
    pid              INTEGER,
    pgid             INTEGER,
    proc_start_ticks INTEGER,
    log_path         TEXT,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    exit_code        INTEGER,
    signal           INTEGER,
    outcome          TEXT,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0,
    cost_usd         REAL    NOT NULL DEFAULT 0,
    session_id       TEXT,
    error            TEXT
);
CREATE INDEX IF NOT EXISTS runs_task ON runs (task_id, started_at);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job_id);

-- One row per repo; `epoch` grows with every acquisition (a fencing token).
CREATE TABLE IF NOT EXISTS merge_leases (
    repo           TEXT    PRIMARY KEY,
    holder_task_id INTEGER REFERENCES tasks (id),
    holder_branch  TEXT,
    epoch          INTEGER NOT NULL DEFAULT 0,
    acquired_at    INTEGER,
    updated_at     INTEGER NOT NULL
);

-- Written INITIATED before an irreversible step (merge, deploy phase B).
CREATE TABLE IF NOT EXISTS markers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id      INTEGER NOT NULL REFERENCES tasks (id),
    repo         TEXT    NOT NULL,
    step         TEXT    NOT NULL CHECK (step IN ('merge', 'deploy')),
    state        TEXT    NOT NULL CHECK (state IN ('INITIATED', 'COMPLETED', 'ABANDONED')),
    detail       TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    completed_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS markers_one_initiated ON markers (task_id, step) WHERE state = 'INITIATED';

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    provider    TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);

-- The builtin tracker: items and their states live in the store.
CREATE TABLE IF NOT EXISTS tracker_items (
    id         TEXT    PRIMARY KEY,
    project    TEXT    NOT NULL DEFAULT 'default',
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL DEFAULT '',
    state      TEXT    NOT NULL,
    labels     TEXT    NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tracker_items_updated ON tracker_items (project, updated_at);

CREATE TABLE IF NOT EXISTS tracker_comments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id     TEXT    NOT NULL REFERENCES tracker_items (id),
    author      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    external_id TEXT,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tracker_comments_external ON tracker_comments (item_id, external_id) WHERE external_id IS NOT NULL;
