-- The outbox of outgoing notifications (R-9): a pipeline move writes a row per
-- configured webhook; a sender posts it and marks it sent, or retries it later.
-- A crash loses nothing: an unsent row is sent after the restart.
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY,
    sink        TEXT    NOT NULL,
    task_id     INTEGER REFERENCES tasks(id),
    payload     TEXT    NOT NULL,
    -- A repeated notice (same sink and key) is written once.
    dedupe_key  TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    sent_at     INTEGER,
    failed_at   INTEGER,
    last_error  TEXT,
    created_at  INTEGER NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS notifications_dedupe
    ON notifications (sink, dedupe_key) WHERE dedupe_key IS NOT NULL;

-- The sender's scan: only rows still to send.
CREATE INDEX IF NOT EXISTS notifications_pending
    ON notifications (next_at, id) WHERE sent_at IS NULL AND failed_at IS NULL;
