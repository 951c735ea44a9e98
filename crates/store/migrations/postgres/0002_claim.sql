-- The claim (R-11), called as one statement: `SELECT * FROM orch_claim(…)`.
-- It picks the first queued, due job that no gate blocks, takes it, and mints
-- its run row, all in that statement (and so in one implicit transaction).
--
-- Every gate is evaluated inside the claim, exactly as in SQLite's claim
-- (`src/sqlite/jobs.rs`, mirroring `orch_core::gates::blocked_by`): the task
-- is not terminal, its dependencies are done, no other live task holds the
-- repo's merge lease (merger / deployer work), and the global, per-repo and
-- per-agent limits.
--
-- Why an advisory lock when a limit is set: `FOR UPDATE SKIP LOCKED` makes
-- two claimers take different rows, but each counts the running jobs in the
-- snapshot its statement started with. Two claimers could both count 0 under
-- a limit of 1 and both take a job (write skew). The transaction-level
-- advisory lock makes claims under a limit take turns, and the UPDATE below
-- runs after it is granted: in PL/pgSQL each statement of a VOLATILE function
-- takes a fresh snapshot (READ COMMITTED), so it counts every claim committed
-- before the lock was granted, and the lock is released only after this
-- claim commits. Without limits nothing is counted and claimers do not wait
-- for one another. SERIALIZABLE would also prevent the skew, but by failing
-- one of the two claims; the lock makes the loser wait a few hundred µs
-- instead of erroring and retrying. The lock's key is the jobs table's oid
-- in orch's own key space (two-int form), so orch stores in other schemas of
-- the same database do not wait for one another.
CREATE OR REPLACE FUNCTION orch_claim(
    p_run_id       TEXT,
    p_worker       TEXT,
    p_lease_until  BIGINT,
    p_now          BIGINT,
    p_task_deps    BOOLEAN,
    p_serial       BOOLEAN,
    p_global       BIGINT,
    p_repo_limits  JSONB,
    p_per_repo     BIGINT,
    p_agent_limits JSONB
) RETURNS SETOF jobs
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_global IS NOT NULL OR p_per_repo IS NOT NULL
       OR p_repo_limits <> '{}'::jsonb OR p_agent_limits <> '{}'::jsonb THEN
        PERFORM pg_advisory_xact_lock(1869767528, 'jobs'::regclass::oid::int);
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT j.id FROM jobs j
        WHERE j.status = 'queued' AND j.run_after <= p_now
          AND NOT EXISTS (SELECT 1 FROM tasks t
                          WHERE t.id = j.task_id AND t.stage IN ('done', 'cancelled', 'failed'))
          AND (NOT p_task_deps OR NOT EXISTS (
                SELECT 1 FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on
                WHERE d.task_id = j.task_id AND dt.stage <> 'done'))
          AND (NOT p_serial OR j.agent NOT IN ('merger', 'deployer') OR NOT EXISTS (
                SELECT 1 FROM merge_leases l JOIN tasks lt ON lt.id = l.holder_task_id
                WHERE l.repo = j.repo AND l.holder_task_id <> j.task_id
                  AND lt.stage NOT IN ('done', 'cancelled', 'failed')))
          AND (p_global IS NULL OR (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running') < p_global)
          AND (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.repo = j.repo)
              < COALESCE((p_repo_limits ->> j.repo)::bigint, p_per_repo, 9223372036854775807)
          AND (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.agent = j.agent)
              < COALESCE((p_agent_limits ->> j.agent)::bigint, 9223372036854775807)
        ORDER BY j.priority DESC, j.run_after, j.id
        LIMIT 1
        FOR UPDATE OF j SKIP LOCKED
    ), claimed AS (
        UPDATE jobs
        SET status = 'running', run_id = p_run_id, worker_id = p_worker,
            attempts = jobs.attempts + 1, lease_expires_at = p_lease_until, updated_at = p_now
        FROM picked
        -- The picked row is locked, so it is still queued; saying so keeps
        -- the UPDATE safe on its own (it re-checks this on a changed row).
        WHERE jobs.id = picked.id AND jobs.status = 'queued'
        RETURNING jobs.*
    ), minted AS (
        -- Every attempt has exactly one run (SQLite's trigger `jobs_claim_mints_run`).
        INSERT INTO runs (run_id, job_id, task_id, agent, attempt, worker_id, started_at)
        SELECT c.run_id, c.id, c.task_id, c.agent, c.attempts, c.worker_id, c.updated_at
        FROM claimed c
    )
    SELECT * FROM claimed;
END $$;
