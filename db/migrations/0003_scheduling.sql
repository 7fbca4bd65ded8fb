-- Scheduling: the database is the schedule. A config's slots are its anchor plus whole
-- intervals; due slots are claimed with FOR UPDATE SKIP LOCKED, and the run-log keys make a
-- second run of one slot, or two runs of one config at once, impossible.

ALTER TABLE data_collection_configs
    ADD COLUMN schedule_anchor_at timestamptz NOT NULL DEFAULT now(),  -- creation or last interval change
    ADD COLUMN next_run_at        timestamptz NOT NULL DEFAULT now(),  -- the next slot not yet claimed
    ADD COLUMN last_run_at        timestamptz;                         -- start of the latest run

UPDATE data_collection_configs SET schedule_anchor_at = created_at;

CREATE INDEX data_collection_configs_due_idx ON data_collection_configs (next_run_at) WHERE enabled;

ALTER TABLE job_execution_logs
    ADD COLUMN scheduled_for timestamptz,                                       -- the slot a scheduled run serves
    ADD COLUMN missed_slots  integer NOT NULL DEFAULT 0 CHECK (missed_slots >= 0), -- slots collapsed into this run
    ADD COLUMN heartbeat_at  timestamptz;                                       -- refreshed while the run lives

-- each slot of a config runs once
CREATE UNIQUE INDEX job_execution_logs_config_slot_key
    ON job_execution_logs (config_id, scheduled_for) WHERE trigger = 'schedule';
-- a config never runs twice at the same time
CREATE UNIQUE INDEX job_execution_logs_one_running_per_config
    ON job_execution_logs (config_id) WHERE status = 'running' AND config_id IS NOT NULL;
-- finding runs whose process died
CREATE INDEX job_execution_logs_running_heartbeat_idx
    ON job_execution_logs (heartbeat_at) WHERE status = 'running';

-- Jobs of the service itself (log retention), claimed like configs so each runs once across processes.
CREATE TABLE system_jobs (
    name        text PRIMARY KEY,
    next_run_at timestamptz NOT NULL
);

-- Every live scheduler (a web process in-process, or an arq worker) beats here; /status reads it.
-- A scheduler is alive while its lease (expires_at) runs; a clean shutdown deletes its row.
CREATE TABLE scheduler_heartbeats (
    scheduler_id text        PRIMARY KEY,  -- host and process of the scheduler
    backend      text        NOT NULL CHECK (backend IN ('inprocess', 'arq')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Re-enabling a config, or changing its interval, restarts its schedule now: a run at once,
-- then every interval from there. Done here so that every writer (one route or a bulk action) agrees.
CREATE FUNCTION restart_config_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.enabled AND NOT OLD.enabled) OR NEW.interval_minutes <> OLD.interval_minutes THEN
        NEW.schedule_anchor_at := now();
        NEW.next_run_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER data_collection_configs_restart_schedule
    BEFORE UPDATE OF enabled, interval_minutes ON data_collection_configs
    FOR EACH ROW EXECUTE FUNCTION restart_config_schedule();

-- Wake every listening scheduler (any process) when the schedule changes: a config created,
-- deleted, enabled, disabled or rescheduled, or a run ended while its config's next slot waits.
CREATE FUNCTION notify_scheduler_of_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('scheduler_wakeup', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER data_collection_configs_wake_scheduler_on_insert_or_delete
    AFTER INSERT OR DELETE ON data_collection_configs
    FOR EACH ROW EXECUTE FUNCTION notify_scheduler_of_config();

CREATE TRIGGER data_collection_configs_wake_scheduler_on_schedule_change
    AFTER UPDATE OF enabled, interval_minutes ON data_collection_configs
    FOR EACH ROW
    WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled OR OLD.interval_minutes IS DISTINCT FROM NEW.interval_minutes)
    EXECUTE FUNCTION notify_scheduler_of_config();

CREATE FUNCTION notify_scheduler_of_ended_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.status <> 'running') AND EXISTS (
        SELECT 1 FROM data_collection_configs
        WHERE id = OLD.config_id AND enabled AND next_run_at <= now()
    ) THEN
        PERFORM pg_notify('scheduler_wakeup', OLD.config_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_execution_logs_wake_scheduler_on_run_end
    AFTER UPDATE OF status OR DELETE ON job_execution_logs
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND OLD.config_id IS NOT NULL)
    EXECUTE FUNCTION notify_scheduler_of_ended_run();
