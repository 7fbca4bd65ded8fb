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
CREATE TABLE scheduler_heartbeats (
    scheduler_id text        PRIMARY KEY,  -- host and process of the scheduler
    backend      text        NOT NULL CHECK (backend IN ('inprocess', 'arq')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
