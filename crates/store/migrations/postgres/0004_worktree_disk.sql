-- Disk care (issue 12): each task's worktree size, measured after each of
-- its runs, and the last removal of its ignored build outputs. measured_at
-- is also the worktree's idle clock: a run ended then, and cleanup waits
-- cleanup_after_hours from it. One row per task, replaced by each measure.
CREATE TABLE IF NOT EXISTS worktree_disk (
    task_id     BIGINT PRIMARY KEY REFERENCES tasks (id),
    bytes       BIGINT NOT NULL,
    -- 0: the walk stopped at its cap, and bytes is a lower bound.
    complete    BIGINT NOT NULL DEFAULT 1,
    measured_at BIGINT NOT NULL,
    cleaned_at  BIGINT,
    freed_bytes BIGINT NOT NULL DEFAULT 0
);
