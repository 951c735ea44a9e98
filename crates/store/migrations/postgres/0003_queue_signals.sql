-- Wake-ups without polling: a NOTIFY on the channel `orch_queue` whenever
-- the queue changes in a way another node may act on, sent by the write's
-- own transaction (PostgreSQL delivers it at COMMIT, never for a rollback).
-- Listeners (`PgStore::queue_signals`) wake their dispatcher at once; the
-- dispatcher's polling stays the fallback for anything missed.
--
-- Payload: `<schema>:<kind>:<task id>:<job id or empty>`. The channel is one
-- per database, so the schema (the table's, `TG_TABLE_SCHEMA`) lets a
-- listener ignore stores in other schemas of the same database. Kinds:
--   job    a job became queued (inserted, retried, requeued)
--   cancel a queued or running job was cancelled
--   ended  a running job ended otherwise (a limit's slot is free)
--   task   a task was created (written by another process: its engine ticks it)
--   stage  a task moved stage (dependencies, the serial gate, terminal tasks)
--   lease  a task released a repo's merge lease (the serial gate)
-- Additive and idempotent: CREATE OR REPLACE only.

CREATE OR REPLACE FUNCTION orch_queue_notify_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    IF NEW.status = 'queued' THEN
        IF TG_OP = 'INSERT' OR OLD.status <> 'queued' THEN
            kind := 'job';
        END IF;
    ELSIF TG_OP = 'UPDATE' AND NEW.status <> OLD.status THEN
        IF NEW.status = 'cancelled' THEN
            kind := 'cancel';
        ELSIF OLD.status = 'running' THEN
            kind := 'ended';
        END IF;
    END IF;
    IF kind IS NOT NULL THEN
        PERFORM pg_notify('orch_queue',
            TG_TABLE_SCHEMA || ':' || kind || ':' || NEW.task_id || ':' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER jobs_queue_notify AFTER INSERT OR UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION orch_queue_notify_jobs();

CREATE OR REPLACE FUNCTION orch_queue_notify_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('orch_queue', TG_TABLE_SCHEMA || ':task:' || NEW.id || ':');
    ELSIF NEW.stage IS DISTINCT FROM OLD.stage THEN
        PERFORM pg_notify('orch_queue', TG_TABLE_SCHEMA || ':stage:' || NEW.id || ':');
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER tasks_queue_notify AFTER INSERT OR UPDATE OF stage ON tasks
    FOR EACH ROW EXECUTE FUNCTION orch_queue_notify_tasks();

CREATE OR REPLACE FUNCTION orch_queue_notify_leases() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.holder_task_id IS NOT NULL
       AND NEW.holder_task_id IS DISTINCT FROM OLD.holder_task_id THEN
        PERFORM pg_notify('orch_queue',
            TG_TABLE_SCHEMA || ':lease:' || OLD.holder_task_id || ':');
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER merge_leases_queue_notify AFTER UPDATE OF holder_task_id ON merge_leases
    FOR EACH ROW EXECUTE FUNCTION orch_queue_notify_leases();
