-- A claim mints its run row in the same statement: every running attempt has
-- exactly one run, and the claim stays a single atomic UPDATE (no transaction
-- round trips on the hot path).
CREATE TRIGGER IF NOT EXISTS jobs_claim_mints_run
AFTER UPDATE OF run_id ON jobs
WHEN NEW.status = 'running' AND NEW.run_id IS NOT NULL AND NEW.run_id IS NOT OLD.run_id
BEGIN
    INSERT INTO runs (run_id, job_id, task_id, agent, attempt, worker_id, started_at)
    VALUES (NEW.run_id, NEW.id, NEW.task_id, NEW.agent, NEW.attempts, NEW.worker_id, NEW.updated_at);
END;
