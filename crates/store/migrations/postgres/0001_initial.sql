-- orch schema v1 (PostgreSQL): the same tables, columns and rules as SQLite's
-- migrations 0001–0004, so one row mapping serves both stores. Migrations are
-- additive: never edit an applied file, add a new one. Timestamps are BIGINT
-- milliseconds since the Unix epoch; every integer is BIGINT (read as i64 on
-- both stores). JSON values (payloads, labels) are TEXT as on SQLite: orch
-- never queries inside them.

CREATE TABLE IF NOT EXISTS tasks (
    id                  BIGSERIAL PRIMARY KEY,
    tracker_id          TEXT,
    work_item_id        TEXT   NOT NULL,
    repo                TEXT   NOT NULL,
    branch              TEXT   NOT NULL,
    stage               TEXT   NOT NULL,
    title               TEXT   NOT NULL,
    body                TEXT   NOT NULL DEFAULT '',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    cancel_requested_at BIGINT,
    cancelled_at        BIGINT
);
-- Live keys are unique; a cancel tombstones them (`<key>#cancelled-<id>`) to free them.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_tracker_id ON tasks (tracker_id) WHERE tracker_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS tasks_work_item_id ON tasks (work_item_id);
CREATE INDEX IF NOT EXISTS tasks_stage ON tasks (stage);

CREATE TABLE IF NOT EXISTS task_deps (
    task_id    BIGINT NOT NULL REFERENCES tasks (id),
    depends_on BIGINT NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX IF NOT EXISTS task_deps_on ON task_deps (depends_on);

CREATE TABLE IF NOT EXISTS task_events (
    id         BIGSERIAL PRIMARY KEY,
    task_id    BIGINT NOT NULL REFERENCES tasks (id),
    at         BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    from_stage TEXT,
    to_stage   TEXT,
    message    TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS task_events_task ON task_events (task_id, id);
-- The audit log is append-only, enforced by the database itself.
CREATE OR REPLACE FUNCTION orch_task_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'task_events is append-only';
END $$;
CREATE OR REPLACE TRIGGER task_events_append_only BEFORE UPDATE OR DELETE ON task_events
    FOR EACH ROW EXECUTE FUNCTION orch_task_events_append_only();
-- TRUNCATE skips row triggers: refuse it too.
CREATE OR REPLACE TRIGGER task_events_no_truncate BEFORE TRUNCATE ON task_events
    FOR EACH STATEMENT EXECUTE FUNCTION orch_task_events_append_only();

CREATE TABLE IF NOT EXISTS jobs (
    id               BIGSERIAL PRIMARY KEY,
    task_id          BIGINT NOT NULL REFERENCES tasks (id),
    agent            TEXT   NOT NULL,
    repo             TEXT   NOT NULL,
    status           TEXT   NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         BIGINT NOT NULL DEFAULT 0,
    attempts         BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL DEFAULT 3,
    run_after        BIGINT NOT NULL,
    run_id           TEXT,
    worker_id        TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    payload          TEXT   NOT NULL DEFAULT 'null',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
-- Partial indexes hold only live rows: finished jobs cost the hot path nothing.
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, run_after, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (repo, agent) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_task ON jobs (task_id);

CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT   PRIMARY KEY,
    job_id           BIGINT NOT NULL REFERENCES jobs (id),
    task_id          BIGINT NOT NULL REFERENCES tasks (id),
    agent            TEXT   NOT NULL,
    attempt          BIGINT NOT NULL,
    worker_id        TEXT   NOT NULL,
    pid              BIGINT,
    pgid             BIGINT,
    proc_start_ticks BIGINT,
    log_path         TEXT,
    started_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    exit_code        BIGINT,
    signal           BIGINT,
    outcome          TEXT,
    input_tokens     BIGINT NOT NULL DEFAULT 0,
    output_tokens    BIGINT NOT NULL DEFAULT 0,
    cost_usd         DOUBLE PRECISION NOT NULL DEFAULT 0,
    session_id       TEXT,
    error            TEXT,
    final_text       TEXT
);
CREATE INDEX IF NOT EXISTS runs_task ON runs (task_id, started_at);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job_id);

-- One row per repo; `epoch` grows with every acquisition (a fencing token).
CREATE TABLE IF NOT EXISTS merge_leases (
    repo           TEXT   PRIMARY KEY,
    holder_task_id BIGINT REFERENCES tasks (id),
    holder_branch  TEXT,
    epoch          BIGINT NOT NULL DEFAULT 0,
    acquired_at    BIGINT,
    updated_at     BIGINT NOT NULL
);

-- Written INITIATED before an irreversible step (merge, deploy phase B).
CREATE TABLE IF NOT EXISTS markers (
    id           BIGSERIAL PRIMARY KEY,
    task_id      BIGINT NOT NULL REFERENCES tasks (id),
    repo         TEXT   NOT NULL,
    step         TEXT   NOT NULL CHECK (step IN ('merge', 'deploy')),
    state        TEXT   NOT NULL CHECK (state IN ('INITIATED', 'COMPLETED', 'ABANDONED')),
    detail       TEXT   NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS markers_one_initiated ON markers (task_id, step) WHERE state = 'INITIATED';

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    provider    TEXT   NOT NULL,
    delivery_id TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);

-- The builtin tracker: items and their states live in the store.
CREATE TABLE IF NOT EXISTS tracker_items (
    id         TEXT   PRIMARY KEY,
    project    TEXT   NOT NULL DEFAULT 'default',
    title      TEXT   NOT NULL,
    body       TEXT   NOT NULL DEFAULT '',
    state      TEXT   NOT NULL,
    labels     TEXT   NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tracker_items_updated ON tracker_items (project, updated_at);

CREATE TABLE IF NOT EXISTS tracker_comments (
    id          BIGSERIAL PRIMARY KEY,
    item_id     TEXT   NOT NULL REFERENCES tracker_items (id),
    author      TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    external_id TEXT,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tracker_comments_external ON tracker_comments (item_id, external_id) WHERE external_id IS NOT NULL;

-- The outbox of outgoing notifications (R-9).
CREATE TABLE IF NOT EXISTS notifications (
    id          BIGSERIAL PRIMARY KEY,
    sink        TEXT   NOT NULL,
    task_id     BIGINT REFERENCES tasks (id),
    payload     TEXT   NOT NULL,
    -- A repeated notice (same sink and key) is written once.
    dedupe_key  TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    sent_at     BIGINT,
    failed_at   BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS notifications_dedupe
    ON notifications (sink, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_pending
    ON notifications (next_at, id) WHERE sent_at IS NULL AND failed_at IS NULL;
