-- Cheaper bookkeeping around every run. A run writes its config's row twice (the claim moves
-- next_run_at, the start sets last_run_at) and its log row twice (start, end). Each of those
-- statements used to build a jsonb copy of every old and new row to find out whether anything
-- but the bookkeeping columns changed, and planned the timeframes' CHECK function again. The
-- answers stay the same; the questions are asked more cheaply.

-- A config's data version and its config_changed event: only statements that name a column the
-- API shows fire them. The claim (next_run_at, schedule_anchor_at) and a run's start
-- (last_run_at) name none, so they no longer fire anything. An API statement that names a
-- shown column and changes nothing (or matches no row) bumps the version anyway: clients poll
-- again once, they never miss a change.
DROP TRIGGER data_collection_configs_version_update ON data_collection_configs;
CREATE TRIGGER data_collection_configs_version_update
    AFTER UPDATE OF symbol, exchange, timeframes, interval_minutes, enabled, description, created_by, created_at,
        updated_at, backfill_days
    ON data_collection_configs
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version_always();

DROP TRIGGER data_collection_configs_notify_update ON data_collection_configs;
CREATE TRIGGER data_collection_configs_notify_update
    AFTER UPDATE OF symbol, exchange, timeframes, interval_minutes, enabled, description, created_by, created_at,
        updated_at, backfill_days
    ON data_collection_configs
    FOR EACH ROW
    WHEN (
        (OLD.symbol, OLD.exchange, OLD.timeframes, OLD.interval_minutes, OLD.enabled, OLD.description, OLD.created_by,
         OLD.created_at, OLD.updated_at, OLD.backfill_days)
        IS DISTINCT FROM
        (NEW.symbol, NEW.exchange, NEW.timeframes, NEW.interval_minutes, NEW.enabled, NEW.description, NEW.created_by,
         NEW.created_at, NEW.updated_at, NEW.backfill_days)
    )
    EXECUTE FUNCTION notify_config_event();

-- A log's data version: bumped when a row changed in anything but its heartbeat, compared column
-- by column (status and started_at first: a run's start and end differ there). A statement that
-- changes no row, such as the periodic search for stale runs, bumps nothing, so polls keep their
-- 304 between runs. The tests hold this list to the table's columns.
CREATE FUNCTION bump_log_version_when_shown_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT FROM old_rows AS o JOIN new_rows AS n USING (id)
        WHERE (o.status, o.started_at, o.finished_at, o.duration_seconds, o.records_collected, o.error_type,
               o.error_message, o.error_cause, o.metadata, o.config_id, o.job_name, o.job_type, o.symbol, o.exchange,
               o.timeframe, o.trigger, o.scheduled_for, o.missed_slots)
            IS DISTINCT FROM
              (n.status, n.started_at, n.finished_at, n.duration_seconds, n.records_collected, n.error_type,
               n.error_message, n.error_cause, n.metadata, n.config_id, n.job_name, n.job_type, n.symbol, n.exchange,
               n.timeframe, n.trigger, n.scheduled_for, n.missed_slots)
    ) THEN
        PERFORM bump_data_version(TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER job_execution_logs_version_update ON job_execution_logs;
CREATE TRIGGER job_execution_logs_version_update AFTER UPDATE ON job_execution_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION bump_log_version_when_shown_changed();

DROP FUNCTION bump_data_version_when_changed();

-- The timeframes' CHECK runs at every update of a config's row. As a SQL function with a
-- sub-select it was planned again each time; in PL/pgSQL its plan is kept for the session.
CREATE OR REPLACE FUNCTION array_elements_unique(items text[]) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN cardinality(items) = (SELECT count(DISTINCT item) FROM unnest(items) AS item);
END
$$;
