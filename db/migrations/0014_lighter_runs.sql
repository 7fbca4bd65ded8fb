-- Lighter runs: the per-minute run counts keep exactly what 0012 keeps, with static statements
-- (planned once per session and kept) instead of a statement text built and planned again at
-- every insert, start and end of a run.

CREATE OR REPLACE FUNCTION count_runs_per_minute() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_execution_minutes AS m
        SELECT log_minute(started_at), job_type, status, count(*), count(duration_seconds),
               coalesce(sum(duration_seconds), 0), coalesce(sum(records_collected), 0)
        FROM new_rows
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (minute, job_type, status) DO UPDATE
            SET runs = m.runs + excluded.runs, timed_runs = m.timed_runs + excluded.timed_runs,
                duration_seconds = m.duration_seconds + excluded.duration_seconds,
                records_collected = m.records_collected + excluded.records_collected;
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        -- the run history job moves runs into compacted_runs: they are still counted (see 0012)
        IF current_setting('altar.moving_runs', true) = 'on' THEN
            RETURN NULL;
        END IF;
        INSERT INTO job_execution_minutes AS m
        SELECT log_minute(started_at), job_type, status, -count(*), -count(duration_seconds),
               -coalesce(sum(duration_seconds), 0), -coalesce(sum(records_collected), 0)
        FROM old_rows
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (minute, job_type, status) DO UPDATE
            SET runs = m.runs + excluded.runs, timed_runs = m.timed_runs + excluded.timed_runs,
                duration_seconds = m.duration_seconds + excluded.duration_seconds,
                records_collected = m.records_collected + excluded.records_collected;
    ELSE
        -- +1 per new row and -1 per old row; a heartbeat nets to nothing and writes nothing
        INSERT INTO job_execution_minutes AS m
        SELECT log_minute(started_at), job_type, status, sum(sign), sum(sign * (duration_seconds IS NOT NULL)::int),
               sum(sign * coalesce(duration_seconds, 0)), sum(sign * coalesce(records_collected, 0))
        FROM (
            SELECT started_at, job_type, status, duration_seconds, records_collected, 1 AS sign FROM new_rows
            UNION ALL
            SELECT started_at, job_type, status, duration_seconds, records_collected, -1 AS sign FROM old_rows
        ) AS changes
        GROUP BY 1, 2, 3
        HAVING sum(sign) <> 0 OR sum(sign * (duration_seconds IS NOT NULL)::int) <> 0
            OR sum(sign * coalesce(duration_seconds, 0)) <> 0 OR sum(sign * coalesce(records_collected, 0)) <> 0
        ORDER BY 1, 2, 3
        ON CONFLICT (minute, job_type, status) DO UPDATE
            SET runs = m.runs + excluded.runs, timed_runs = m.timed_runs + excluded.timed_runs,
                duration_seconds = m.duration_seconds + excluded.duration_seconds,
                records_collected = m.records_collected + excluded.records_collected;
    END IF;
    -- minutes left with no run go
    DELETE FROM job_execution_minutes AS m
    USING (SELECT DISTINCT log_minute(started_at) AS minute, job_type, status FROM old_rows) AS touched
    WHERE m.runs = 0 AND (m.minute, m.job_type, m.status) = (touched.minute, touched.job_type, touched.status);
    RETURN NULL;
END
$$;

-- The same expressions as before (0004, 0009), in PL/pgSQL: a SQL function that cannot be inlined
-- (these hold a sub-select, or an operator that is not immutable) is planned again in every
-- statement that calls it, where PL/pgSQL keeps its plans for the session. A run's end calls each
-- of them, and each bump of a data version calls data_version_token.
CREATE OR REPLACE FUNCTION data_version_token(v data_versions) RETURNS text
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN v.source || ':' || v.version || ':' || (extract(epoch FROM v.changed_at) * 1000000)::bigint;
END
$$;

CREATE OR REPLACE FUNCTION histogram_bucket(value double precision, bounds double precision[]) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN coalesce((SELECT min(bound) FROM unnest(bounds) AS bound WHERE bound >= value), 'Infinity');
END
$$;

CREATE OR REPLACE FUNCTION run_candles(metadata jsonb, field text) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN coalesce((
        SELECT sum(CASE WHEN jsonb_typeof(tf.value -> field) = 'number' THEN (tf.value ->> field)::numeric END)
        FROM jsonb_each(CASE WHEN jsonb_typeof(metadata -> 'by_timeframe') = 'object'
                             THEN metadata -> 'by_timeframe' END) AS tf
    ), 0)::bigint;
END
$$;
