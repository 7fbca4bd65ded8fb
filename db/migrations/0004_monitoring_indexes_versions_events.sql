-- Monitoring: the indexes the log, stats and chart queries need (newest-first lists use 0001's); a data version per table that
-- ETags are made of (so a poll that changes nothing costs one primary-key read); and NOTIFY
-- triggers that feed the live event stream from whichever process wrote the row.

-- Every aggregate over a time window (stats, status, timeseries, by-config) scans this range;
-- /stats and /status read nothing else (index-only scans, kept narrow so a day of runs is few pages).
CREATE INDEX job_execution_logs_stats_idx ON job_execution_logs (started_at)
    INCLUDE (job_type, status, duration_seconds, records_collected);
-- log filters that narrow a lot
CREATE INDEX job_execution_logs_symbol_started_at_idx ON job_execution_logs (symbol, started_at DESC);
CREATE INDEX job_execution_logs_job_name_started_at_idx ON job_execution_logs (job_name, started_at DESC);
-- the latest error of each config (by-config)
CREATE INDEX job_execution_logs_config_errors_idx ON job_execution_logs (config_id, started_at DESC)
    WHERE status IN ('failed', 'partial');

-- One row per table whose changes monitoring answers depend on. Bumped in the writing
-- transaction, so a reader never sees a new version with old data, and announced on channel
-- data_versions at commit, so that every process knows the current version without asking.
-- changed_at tells a version apart from the same number after a reset (TRUNCATE).
CREATE TABLE data_versions (
    source     text        PRIMARY KEY CHECK (source IN ('job_execution_logs', 'data_collection_configs')),
    version    bigint      NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- "source:version:changed_at in microseconds": the same text whatever the session's settings
CREATE FUNCTION data_version_token(v data_versions) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN v.source || ':' || v.version || ':' || (extract(epoch FROM v.changed_at) * 1000000)::bigint;

CREATE FUNCTION bump_data_version(changed_table text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    bumped data_versions;
BEGIN
    INSERT INTO data_versions AS v (source, version) VALUES (changed_table, 1)
    ON CONFLICT (source) DO UPDATE SET version = v.version + 1, changed_at = clock_timestamp()
    RETURNING * INTO bumped;
    PERFORM pg_notify('data_versions', data_version_token(bumped));
END
$$;

-- INSERT / DELETE statements (one bump per statement, none when no row was touched)
CREATE FUNCTION bump_data_version_when_rows() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM changed_rows) THEN
        PERFORM bump_data_version(TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$;

-- UPDATE statements: one bump when a row changed in more than the bookkeeping columns named in
-- the trigger's arguments. Statement-level like every other trigger on these tables, so that all
-- of them take their locks in one order (trigger name order): no deadlock between writers.
CREATE FUNCTION bump_data_version_when_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT FROM old_rows AS o JOIN new_rows AS n USING (id)
        WHERE to_jsonb(o) - TG_ARGV IS DISTINCT FROM to_jsonb(n) - TG_ARGV
    ) THEN
        PERFORM bump_data_version(TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$;

-- TRUNCATE
CREATE FUNCTION bump_data_version_always() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bump_data_version(TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_execution_logs_version_insert AFTER INSERT ON job_execution_logs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version_when_rows();
CREATE TRIGGER job_execution_logs_version_delete AFTER DELETE ON job_execution_logs
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version_when_rows();
-- a heartbeat of a running run changes nothing that monitoring shows
CREATE TRIGGER job_execution_logs_version_update AFTER UPDATE ON job_execution_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION bump_data_version_when_changed('heartbeat_at');
CREATE TRIGGER job_execution_logs_version_truncate AFTER TRUNCATE ON job_execution_logs
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version_always();

CREATE TRIGGER data_collection_configs_version_insert AFTER INSERT ON data_collection_configs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version_when_rows();
CREATE TRIGGER data_collection_configs_version_delete AFTER DELETE ON data_collection_configs
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version_when_rows();
-- the scheduler advancing a config's slot changes nothing that monitoring shows
CREATE TRIGGER data_collection_configs_version_update AFTER UPDATE ON data_collection_configs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION bump_data_version_when_changed('next_run_at', 'last_run_at', 'schedule_anchor_at');
CREATE TRIGGER data_collection_configs_version_truncate AFTER TRUNCATE ON data_collection_configs
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version_always();

-- Live events on channel data_collection_events, sent at commit by PostgreSQL to every
-- listening process. Payloads stay small (NOTIFY allows 8000 bytes): clients fetch details.
CREATE FUNCTION notify_run_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('data_collection_events', json_build_object(
        'type', CASE WHEN NEW.status = 'running' THEN 'run_started' ELSE 'run_finished' END,
        'log_id', NEW.id,
        'config_id', NEW.config_id,
        'job_name', NEW.job_name,
        'job_type', NEW.job_type,
        'symbol', NEW.symbol,
        'exchange', NEW.exchange,
        'status', NEW.status,
        'trigger', NEW.trigger,
        'started_at', NEW.started_at,
        'finished_at', NEW.finished_at,
        'duration_seconds', NEW.duration_seconds,
        'records_collected', NEW.records_collected,
        'error_type', NEW.error_type
    )::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_execution_logs_notify_insert AFTER INSERT ON job_execution_logs
    FOR EACH ROW EXECUTE FUNCTION notify_run_event();
CREATE TRIGGER job_execution_logs_notify_finish AFTER UPDATE OF status ON job_execution_logs FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION notify_run_event();

CREATE FUNCTION notify_config_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    config data_collection_configs;
BEGIN
    config := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    PERFORM pg_notify('data_collection_events', json_build_object(
        'type', 'config_changed',
        'action', CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END,
        'config_id', config.id,
        'symbol', config.symbol,
        'exchange', config.exchange,
        'enabled', config.enabled
    )::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER data_collection_configs_notify_insert_delete AFTER INSERT OR DELETE ON data_collection_configs
    FOR EACH ROW EXECUTE FUNCTION notify_config_event();
CREATE TRIGGER data_collection_configs_notify_update AFTER UPDATE ON data_collection_configs FOR EACH ROW
    WHEN (
        to_jsonb(OLD) - ARRAY['next_run_at', 'last_run_at', 'schedule_anchor_at']
        IS DISTINCT FROM to_jsonb(NEW) - ARRAY['next_run_at', 'last_run_at', 'schedule_anchor_at']
    )
    EXECUTE FUNCTION notify_config_event();

-- Runs per minute, job type and status, kept equal to job_execution_logs by the triggers below
-- (in the writing transaction), so that /stats and /status sum at most a few thousand rows for
-- a day whatever the number of runs. Minutes are absolute (UTC) and windows start on a minute.
CREATE TABLE job_execution_minutes (
    minute            timestamptz      NOT NULL,
    job_type          text             NOT NULL,
    status            text             NOT NULL,
    runs              bigint           NOT NULL,
    timed_runs        bigint           NOT NULL,  -- runs with a duration (finished ones)
    duration_seconds  double precision NOT NULL,  -- sum
    records_collected bigint           NOT NULL,  -- sum
    PRIMARY KEY (minute, job_type, status)
);

CREATE FUNCTION log_minute(started_at timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin('1 minute', started_at, TIMESTAMPTZ '2000-01-01 00:00:00+00');

-- Add +1 per new row and -1 per old row to their minutes, keys in one order (no deadlock between
-- two writers); a heartbeat nets to nothing and writes nothing. Minutes left with no run go.
CREATE FUNCTION count_runs_per_minute() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    changed_rows text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT *, 1 AS sign FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT *, -1 AS sign FROM old_rows'
        ELSE 'SELECT *, 1 AS sign FROM new_rows UNION ALL SELECT *, -1 AS sign FROM old_rows'
    END;
BEGIN
    EXECUTE format($sql$
        INSERT INTO job_execution_minutes AS m
        SELECT log_minute(started_at), job_type, status, sum(sign), sum(sign * (duration_seconds IS NOT NULL)::int),
               sum(sign * coalesce(duration_seconds, 0)), sum(sign * coalesce(records_collected, 0))
        FROM (%s) AS changes
        GROUP BY 1, 2, 3
        HAVING sum(sign) <> 0 OR sum(sign * (duration_seconds IS NOT NULL)::int) <> 0
            OR sum(sign * coalesce(duration_seconds, 0)) <> 0 OR sum(sign * coalesce(records_collected, 0)) <> 0
        ORDER BY 1, 2, 3
        ON CONFLICT (minute, job_type, status) DO UPDATE
            SET runs = m.runs + excluded.runs, timed_runs = m.timed_runs + excluded.timed_runs,
                duration_seconds = m.duration_seconds + excluded.duration_seconds,
                records_collected = m.records_collected + excluded.records_collected
    $sql$, changed_rows);
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM job_execution_minutes AS m
        USING (SELECT DISTINCT log_minute(started_at) AS minute, job_type, status FROM old_rows) AS touched
        WHERE m.runs = 0 AND (m.minute, m.job_type, m.status) = (touched.minute, touched.job_type, touched.status);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_execution_logs_minutes_insert AFTER INSERT ON job_execution_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_runs_per_minute();
CREATE TRIGGER job_execution_logs_minutes_update AFTER UPDATE ON job_execution_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_runs_per_minute();
CREATE TRIGGER job_execution_logs_minutes_delete AFTER DELETE ON job_execution_logs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_runs_per_minute();

CREATE FUNCTION forget_runs_per_minute() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_execution_minutes;  -- not TRUNCATE: that one may be part of the same statement
    RETURN NULL;
END
$$;

CREATE TRIGGER job_execution_logs_minutes_truncate AFTER TRUNCATE ON job_execution_logs
    FOR EACH STATEMENT EXECUTE FUNCTION forget_runs_per_minute();

-- after a load that skipped triggers (or to repair): recount every minute from the logs
CREATE FUNCTION recount_runs_per_minute() RETURNS void
    LANGUAGE sql
    BEGIN ATOMIC
        DELETE FROM job_execution_minutes;
        INSERT INTO job_execution_minutes
        SELECT log_minute(started_at), job_type, status, count(*), count(duration_seconds),
               coalesce(sum(duration_seconds), 0), coalesce(sum(records_collected), 0)
        FROM job_execution_logs
        GROUP BY 1, 2, 3;
    END;

SELECT recount_runs_per_minute();
