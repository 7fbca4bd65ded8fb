-- Run history that stays small: a routine run (a scheduled collection that succeeded with nothing
-- to tell) keeps its full row in job_execution_logs for a day; then the hourly run-history job
-- moves it into compacted_runs, which keeps only what the stats, the charts and the per-config
-- figures read: per run, the minute it started, its lateness, duration and candles stored. Runs
-- that failed, were partial, repaired holes, retried, collapsed missed slots or were triggered by
-- hand keep their full row until LOG_RETENTION_DAYS. compacted_runs is cut into UTC days, and
-- retention drops whole days.

-- One row per config and UTC hour (or a few, when runs of an hour are moved at different times).
-- The arrays hold one element per run, in the order the runs started. The values give back the
-- log's own: duration_seconds = duration_ms / 1000 (runs log it to the millisecond), lateness
-- (started_at - scheduled_for) = lateness_us / 1000000, and the run started in minute
-- hour + minutes[i]. What is the same for every run of the row is stored once: minutes is null
-- when the runs started in consecutive minutes from first_minute (a one-minute config's hour),
-- records is null when every run stored records_each candles. Every compacted run is a
-- data_collection run, trigger schedule, status success.
CREATE TABLE compacted_runs (
    hour          timestamptz NOT NULL,
    config_id     bigint      REFERENCES data_collection_configs (id) ON DELETE SET NULL,
    lateness_us   integer[]   NOT NULL,
    duration_ms   smallint[]  NOT NULL,
    first_minute  smallint    NOT NULL,
    minutes       smallint[],
    records_each  smallint,
    records       smallint[],
    CHECK (cardinality(duration_ms) = cardinality(lateness_us)),
    CHECK (cardinality(minutes) = cardinality(lateness_us)),
    CHECK (cardinality(records) = cardinality(lateness_us)),
    CHECK ((records IS NULL) <> (records_each IS NULL))
) PARTITION BY RANGE (hour);

CREATE INDEX compacted_runs_hour_idx ON compacted_runs (hour);
CREATE INDEX compacted_runs_config_hour_idx ON compacted_runs (config_id, hour);

-- The partitions, one per UTC day: compacted_runs_2026_01_31.
CREATE VIEW compacted_run_partitions AS
SELECT child.relname::text AS partition_name,
       to_date(right(child.relname, 10), 'YYYY_MM_DD') AS day
FROM pg_inherits
JOIN pg_class AS parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class AS child ON child.oid = pg_inherits.inhrelid
WHERE parent.relname = 'compacted_runs';

CREATE FUNCTION create_compacted_runs_partition(day date) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    name text := 'compacted_runs_' || to_char(day, 'YYYY_MM_DD');
BEGIN
    IF NOT EXISTS (SELECT FROM compacted_run_partitions AS p WHERE p.partition_name = name) THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF compacted_runs FOR VALUES FROM (%L) TO (%L)',
            name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC'
        );
    END IF;
    RETURN name;
END
$$;

-- The run history job moves runs without changing the per-minute counts (the runs are still
-- there, in another table): it sets altar.moving_runs for its transaction, and the counting
-- trigger leaves that transaction's deletes alone. Otherwise as in 0004.
CREATE OR REPLACE FUNCTION count_runs_per_minute() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    changed_rows text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT *, 1 AS sign FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT *, -1 AS sign FROM old_rows'
        ELSE 'SELECT *, 1 AS sign FROM new_rows UNION ALL SELECT *, -1 AS sign FROM old_rows'
    END;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('altar.moving_runs', true) = 'on' THEN
        RETURN NULL;
    END IF;
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

-- Each compacted run that started in [from_minute, before_minute), as its log showed it. (A plain
-- SQL body, so that the planner inlines it and reads only the days asked for.)
CREATE FUNCTION compacted_run_values(from_minute timestamptz, before_minute timestamptz)
    RETURNS TABLE (config_id bigint, started_minute timestamptz, duration_seconds float8,
                   records_collected integer, lateness_seconds float8)
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT config_id, started_minute, duration_seconds, records_collected, lateness_seconds
FROM (
    SELECT compacted.config_id,
           compacted.hour + make_interval(mins => coalesce(run.minute, compacted.first_minute + run.position - 1)::integer)
               AS started_minute,
           (run.duration_ms::numeric / 1000)::float8 AS duration_seconds,
           coalesce(run.records, compacted.records_each)::integer AS records_collected,
           (run.lateness_us::numeric / 1000000)::float8 AS lateness_seconds
    FROM compacted_runs AS compacted
    CROSS JOIN LATERAL unnest(compacted.lateness_us, compacted.duration_ms, compacted.minutes, compacted.records)
        WITH ORDINALITY AS run(lateness_us, duration_ms, minute, records, position)
    WHERE compacted.hour > from_minute - interval '1 hour' AND compacted.hour < before_minute
) AS runs
WHERE started_minute >= from_minute AND started_minute < before_minute
$$;

-- Recounting from the logs counts the compacted runs too.
CREATE OR REPLACE FUNCTION recount_runs_per_minute() RETURNS void
    LANGUAGE sql
    BEGIN ATOMIC
        DELETE FROM job_execution_minutes;
        INSERT INTO job_execution_minutes
        SELECT minute, job_type, status, sum(runs), sum(timed_runs), sum(duration_seconds), sum(records_collected)
        FROM (
            SELECT log_minute(started_at) AS minute, job_type, status, count(*) AS runs,
                   count(duration_seconds) AS timed_runs, coalesce(sum(duration_seconds), 0) AS duration_seconds,
                   coalesce(sum(records_collected), 0) AS records_collected
            FROM job_execution_logs
            GROUP BY 1, 2, 3
            UNION ALL
            SELECT started_minute, 'data_collection', 'success', count(*), count(*), sum(duration_seconds),
                   sum(records_collected)
            FROM compacted_run_values('-infinity', 'infinity')
            GROUP BY 1
        ) AS counted
        GROUP BY 1, 2, 3;
    END;

-- The log page's status filter, newest first with its tie-break, as one index range.
CREATE INDEX job_execution_logs_status_newest_idx ON job_execution_logs (status, started_at DESC, id DESC);
DROP INDEX job_execution_logs_status_started_at_idx;
-- /stats reads the per-minute counts, not the logs; the charts and per-config figures read columns
-- this index does not hold. A day of full logs is a fifteenth smaller without it.
DROP INDEX job_execution_logs_stats_idx;
