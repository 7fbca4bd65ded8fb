-- Closed periods compacted: the candles of a series over a day (1m, 3m, 5m), a month (15m to 12h)
-- or a year (1d and longer) become one row of candle_segments, about 12 bytes a candle instead of
-- 98. The daily upkeep compacts each time partition of candle_data some days after its period
-- closed (backend/collection/compaction.py) and empties it; candles written into a compacted
-- period later (older history, repaired holes, revisions) land in candle_data as before, win over
-- the segment's candle of the same minute, and are folded in by the next upkeep. Nothing is
-- converted here: existing months are compacted by the upkeep.
--
-- A segment's candles: open times as runs of consecutive grid slots counted from first_minute
-- (runs = [first slot, length, ...]), values in body (layout in backend/collection/segments.py),
-- and candles whose values are not short decimals kept as they are (raw_positions: their places
-- among the segment's candles; raw_values: five values each).
CREATE TABLE candle_segments (
    series_id     integer            NOT NULL,
    segment_start integer            NOT NULL,
    first_minute  integer            NOT NULL,
    last_minute   integer            NOT NULL,
    candles       integer            NOT NULL CHECK (candles > 0),
    runs          integer[]          NOT NULL,
    body          bytea              NOT NULL,
    raw_positions integer[],
    raw_values    double precision[],
    PRIMARY KEY (series_id, segment_start)
) PARTITION BY RANGE (series_id);

-- Partitioned like candle_data: per timeframe, then per period (by segment_start), so that
-- retention drops a period's segments whole.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM candle_timeframes() LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF candle_segments FOR VALUES FROM (%s) TO (%s) PARTITION BY RANGE (segment_start)',
            'candle_segments_' || t.slug, t.series_block * 100000000, (t.series_block + 1) * 100000000
        );
    END LOOP;
END
$$;

CREATE VIEW candle_segment_partitions AS
SELECT part.relname::text AS partition_name, parent.relname::text AS parent_name, t.timeframe,
       bounds[1]::integer AS period_start, bounds[2]::integer AS period_end, i.inhdetachpending AS detach_pending
FROM candle_timeframes() AS t
JOIN pg_class AS parent ON parent.relname = 'candle_segments_' || t.slug AND parent.relnamespace = 'public'::regnamespace
JOIN pg_inherits AS i ON i.inhparent = parent.oid
JOIN pg_class AS part ON part.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(pg_get_expr(part.relpartbound, part.oid), 'FROM \((-?\d+)\) TO \((-?\d+)\)') AS bounds;

-- The segment partition of the period of candle_data's partition p_partition (same bounds, named
-- candle_segments_...), created when missing; its name.
CREATE FUNCTION create_candle_segment_partition(p_partition text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    p record;
    name text := 'candle_segments' || substr(p_partition, length('candle_data') + 1);
BEGIN
    IF to_regclass(name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext(name));
        -- a statement of its own, after the lock: it sees a partition its previous holder committed
        -- (to_regclass reads the session's catalog cache, which the lock does not refresh)
        IF NOT EXISTS (SELECT FROM pg_class WHERE relname = name AND relnamespace = current_schema()::regnamespace) THEN
            SELECT cp.period_start, cp.period_end, 'candle_segments_' || t.slug AS parent INTO STRICT p
            FROM candle_partitions AS cp JOIN candle_timeframes() AS t USING (timeframe)
            WHERE cp.partition_name = p_partition;
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', name, p.parent);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                           p.parent, name, p.period_start, p.period_end);
        END IF;
    END IF;
    RETURN name;
END
$$;

-- The signed little-endian integer of `width` bytes (1, 2, 4 or 8) at `pos` of a segment body.
CREATE FUNCTION candle_segment_int(body bytea, pos integer, width integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE width
    WHEN 1 THEN get_byte(body, pos) - ((get_byte(body, pos) >> 7) << 8)
    WHEN 2 THEN (get_byte(body, pos) | (get_byte(body, pos + 1) << 8)) - ((get_byte(body, pos + 1) >> 7) << 16)
    WHEN 4 THEN (get_byte(body, pos)::bigint | (get_byte(body, pos + 1)::bigint << 8)
                 | (get_byte(body, pos + 2)::bigint << 16) | (get_byte(body, pos + 3)::bigint << 24))
                - ((get_byte(body, pos + 3)::bigint >> 7) << 32)
    ELSE get_byte(body, pos)::bigint | (get_byte(body, pos + 1)::bigint << 8)
         | (get_byte(body, pos + 2)::bigint << 16) | (get_byte(body, pos + 3)::bigint << 24)
         | (get_byte(body, pos + 4)::bigint << 32) | (get_byte(body, pos + 5)::bigint << 40)
         | (get_byte(body, pos + 6)::bigint << 48) | (get_byte(body, pos + 7)::bigint << 56)
END;

-- The open minutes of a segment's candles, with their place among them (0 first). Not inlined into
-- the statements that call it (SET): its row estimates would be far off, and compiling them (JIT)
-- would cost far more than running them.
CREATE FUNCTION candle_segment_minutes(p_series_id integer, p_first_minute integer, p_runs integer[])
    RETURNS TABLE (open_minute integer, candle integer)
    LANGUAGE sql STABLE ROWS 1440 SET jit = off AS $$
WITH runs AS (
    SELECT p_runs[2 * r - 1] AS first_slot, p_runs[2 * r] AS length,
           (sum(p_runs[2 * r]) OVER (ORDER BY r) - p_runs[2 * r])::integer AS first_candle
    FROM generate_series(1, cardinality(p_runs) / 2) AS r
)
SELECT candle_minute((to_timestamp(p_first_minute * 60.0) AT TIME ZONE 'UTC') + (runs.first_slot + s) * t.step),
       runs.first_candle + s
FROM runs
CROSS JOIN generate_series(0, runs.length - 1) AS s
CROSS JOIN candle_timeframes() AS t
WHERE t.series_block = p_series_id / 100000000
$$;

-- The candles of a segment: open minute and values, decoded as backend/collection/segments.py does.
CREATE FUNCTION candle_segment_candles(
    p_series_id integer, p_first_minute integer, p_runs integer[], p_body bytea,
    p_raw_positions integer[], p_raw_values double precision[]
) RETURNS TABLE (open_minute integer, open double precision, high double precision, low double precision,
                 close double precision, volume double precision)
    LANGUAGE sql STABLE ROWS 1440 SET jit = off AS $$
WITH head AS MATERIALIZED (
    -- the body read once (each get_byte of a stored body would fetch it again)
    SELECT body, ('1e' || get_byte(body, 1))::double precision AS divisor,
           ('1e' || get_byte(body, 2))::double precision AS volume_divisor,
           get_byte(body, 3) AS w_open, get_byte(body, 4) AS w_high, get_byte(body, 5) AS w_low,
           get_byte(body, 6) AS w_close, get_byte(body, 7) AS w_volume,
           candle_segment_int(body, 8, 8) AS base,
           (SELECT sum(p_runs[2 * r]) FROM generate_series(1, cardinality(p_runs) / 2) AS r)::integer AS n
    FROM (SELECT p_body || '\x'::bytea AS body) AS copied
), ints AS MATERIALIZED (  -- the integers of each candle (the body is not carried further)
    SELECT m.open_minute, m.candle, divisor, volume_divisor, base,
           candle_segment_int(body, 16 + m.candle * w_open, w_open) AS to_open,
           candle_segment_int(body, 16 + n * w_open + m.candle * w_high, w_high) AS to_high,
           candle_segment_int(body, 16 + n * (w_open + w_high) + m.candle * w_low, w_low) AS to_low,
           candle_segment_int(body, 16 + n * (w_open + w_high + w_low) + m.candle * w_close, w_close) AS to_close,
           candle_segment_int(body, 16 + n * (w_open + w_high + w_low + w_close) + m.candle * w_volume, w_volume)
               AS volume
    FROM candle_segment_minutes(p_series_id, p_first_minute, p_runs) AS m, head
), raw AS MATERIALIZED (  -- the candles kept as they are: their place, and their five values
    SELECT p.candle, v.raw_values
    FROM unnest(p_raw_positions) WITH ORDINALITY AS p(candle, n)
    JOIN (
        SELECT (i - 1) / 5 + 1 AS n, array_agg(value ORDER BY i) AS raw_values
        FROM unnest(p_raw_values) WITH ORDINALITY AS u(value, i) GROUP BY 1
    ) AS v USING (n)
)
SELECT open_minute,
       coalesce(raw_values[1], (close_int - to_close + to_open)::double precision / divisor),
       coalesce(raw_values[2], (close_int + to_high)::double precision / divisor),
       coalesce(raw_values[3], (close_int - to_low)::double precision / divisor),
       coalesce(raw_values[4], close_int::double precision / divisor),
       coalesce(raw_values[5], volume::double precision / volume_divisor)
FROM (
    SELECT ints.*, (base + sum(to_close) OVER (ORDER BY candle))::bigint AS close_int FROM ints
) AS chained
LEFT JOIN raw USING (candle)
ORDER BY candle
$$;

-- Whether a candle of a series is stored, as a row or in a segment.
CREATE FUNCTION candle_is_stored(p_series_id integer, p_open_minute integer) RETURNS boolean
    LANGUAGE sql STABLE
RETURN EXISTS (SELECT FROM candle_data WHERE series_id = p_series_id AND open_minute = p_open_minute)
    OR EXISTS (
        SELECT FROM candle_segments AS g
        CROSS JOIN LATERAL candle_segment_minutes(g.series_id, g.first_minute, g.runs) AS m
        WHERE g.series_id = p_series_id AND g.first_minute <= p_open_minute AND g.last_minute >= p_open_minute
          AND m.open_minute = p_open_minute
    );

-- Candles as people read them, whatever their storage: rows, and the candles of segments that no
-- row of the same minute replaces. Reading compacted candles through it decodes them in SQL
-- (the API decodes them in Python).
CREATE OR REPLACE VIEW candles AS
SELECT s.exchange, s.symbol, s.timeframe, to_timestamp(c.open_minute * 60.0) AS open_time,
       c.open, c.high, c.low, c.close, c.volume, c.series_id, c.open_minute
FROM candle_data AS c JOIN candle_series AS s ON s.id = c.series_id
UNION ALL
SELECT s.exchange, s.symbol, s.timeframe, to_timestamp(d.open_minute * 60.0),
       d.open, d.high, d.low, d.close, d.volume, g.series_id, d.open_minute
FROM candle_segments AS g
JOIN candle_series AS s ON s.id = g.series_id
CROSS JOIN LATERAL candle_segment_candles(g.series_id, g.first_minute, g.runs, g.body, g.raw_positions, g.raw_values) AS d
WHERE NOT EXISTS (SELECT FROM candle_data AS c WHERE c.series_id = g.series_id AND c.open_minute = d.open_minute);

-- A segment back into rows (candles already there as rows stay as they are), and gone. The summary
-- is unchanged: the same candles are stored.
CREATE FUNCTION expand_candle_segment(p_series_id integer, p_segment_start integer) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO candle_data (series_id, open_minute, open, high, low, close, volume)
    SELECT p_series_id, d.open_minute, d.open, d.high, d.low, d.close, d.volume
    FROM candle_segments AS g
    CROSS JOIN LATERAL candle_segment_candles(g.series_id, g.first_minute, g.runs, g.body, g.raw_positions, g.raw_values) AS d
    WHERE g.series_id = p_series_id AND g.segment_start = p_segment_start
    ON CONFLICT (series_id, open_minute) DO NOTHING;
    DELETE FROM candle_segments WHERE series_id = p_series_id AND segment_start = p_segment_start;
END
$$;

-- Deleting through the view deletes compacted candles too: their segment becomes rows first.
CREATE OR REPLACE FUNCTION delete_candle_through_view() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    segment integer;
BEGIN
    PERFORM pg_advisory_xact_lock(OLD.series_id);  -- as writers and the compaction do
    FOR segment IN
        SELECT segment_start FROM candle_segments
        WHERE series_id = OLD.series_id AND first_minute <= OLD.open_minute AND last_minute >= OLD.open_minute
    LOOP
        PERFORM expand_candle_segment(OLD.series_id, segment);
    END LOOP;
    DELETE FROM candle_data WHERE series_id = OLD.series_id AND open_minute = OLD.open_minute;
    RETURN OLD;
END
$$;

-- The summary of one series, recounted from its rows and its segments.
CREATE OR REPLACE FUNCTION recount_candle_series(p_series_id integer) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    tf record;
BEGIN
    SELECT t.* INTO STRICT tf FROM candle_timeframes() AS t WHERE t.series_block = p_series_id / 100000000;
    DELETE FROM candle_counts WHERE series_id = p_series_id;
    DELETE FROM candle_gaps WHERE series_id = p_series_id;
    WITH stored AS (
        SELECT open_minute FROM candle_data WHERE series_id = p_series_id
        UNION
        SELECT m.open_minute FROM candle_segments AS g
        CROSS JOIN LATERAL candle_segment_minutes(g.series_id, g.first_minute, g.runs) AS m
        WHERE g.series_id = p_series_id
    ), periods AS MATERIALIZED (  -- read once, not for every candle
        SELECT period_start, period_end FROM candle_partitions WHERE timeframe = tf.timeframe
    ), counts AS (
        INSERT INTO candle_counts (series_id, period_start, candles, first_minute, last_minute)
        SELECT p_series_id, p.period_start, count(*), min(c.open_minute), max(c.open_minute)
        FROM stored AS c
        JOIN periods AS p ON c.open_minute >= p.period_start AND c.open_minute < p.period_end
        GROUP BY p.period_start
    )
    INSERT INTO candle_gaps (series_id, after_minute, next_minute)
    SELECT p_series_id, open_minute, next_minute
    FROM (SELECT open_minute, lead(open_minute) OVER (ORDER BY open_minute) AS next_minute FROM stored) AS pairs
    WHERE next_minute > candle_next_open(open_minute, tf.step);
END
$$;

-- Emptying candle_data by hand empties the segments too (the summary is forgotten with both).
CREATE OR REPLACE FUNCTION forget_candle_summary() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM candle_segments;
    DELETE FROM candle_counts;
    DELETE FROM candle_gaps;
    RETURN NULL;
END
$$;
