-- Nodes (issue 11): every orch engine sharing this store records itself
-- at each heartbeat; a person can ask one to drain (finish running work,
-- claim nothing new), and it says when it has stopped claiming.
CREATE TABLE IF NOT EXISTS nodes (
    name         TEXT PRIMARY KEY,
    -- A new value at each start of the engine: a restart, not a second node.
    boot_id      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    -- Asked to drain (set by `orch node drain`).
    draining     BIGINT NOT NULL DEFAULT 0,
    -- 1 once the node reports it claims nothing new.
    claims_stopped BIGINT NOT NULL DEFAULT 0
);

-- The leader lease: one row. The node named leads until expires_at; a node
-- that takes it over from another (or after expiry) raises the epoch.
CREATE TABLE IF NOT EXISTS leader (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    node       TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
