-- Candles at scale: a compact series key, time partitions per timeframe, and a coverage summary
-- kept as candles are stored. Converts the candles stored so far in place, one series at a time.
-- (What 0005 added keeps its shape: candle_series gains an id beside earliest_available and
-- earliest_asked_from; candle_rejections and candle_empty_ranges stay keyed by market.)
--
-- candle_data holds one row per candle, keyed by (series_id, open_minute): 48 bytes of values
-- and no padding, so a million candles take about 77 MB of heap and 20 MB of primary key.
-- It is partitioned by series_id into one table per timeframe (a series id carries its
-- timeframe: id / 100,000,000 is the timeframe's block), each partitioned by open_minute into
-- months (1m, 3m, 5m) or years (longer timeframes), so that retention drops whole partitions.
-- The view `candles` shows them with their market and open time, as before.

-- The timeframes candles are stored for: series id block, length, partition length, name in
-- partition names (identifiers ignore case, so the monthly '1M' is '1mo').
CREATE FUNCTION candle_timeframes()
    RETURNS TABLE (timeframe text, series_block integer, step interval, partition_months integer, slug text)
    LANGUAGE sql IMMUTABLE AS $$
VALUES ('1m', 1, interval '1 minute', 1, '1m'), ('3m', 2, interval '3 minutes', 1, '3m'),
       ('5m', 3, interval '5 minutes', 1, '5m'), ('15m', 4, interval '15 minutes', 12, '15m'),
       ('30m', 5, interval '30 minutes', 12, '30m'), ('1h', 6, interval '1 hour', 12, '1h'),
       ('2h', 7, interval '2 hours', 12, '2h'), ('4h', 8, interval '4 hours', 12, '4h'),
       ('6h', 9, interval '6 hours', 12, '6h'), ('8h', 10, interval '8 hours', 12, '8h'),
       ('12h', 11, interval '12 hours', 12, '12h'), ('1d', 12, interval '1 day', 12, '1d'),
       ('3d', 13, interval '3 days', 12, '3d'), ('1w', 14, interval '7 days', 12, '1w'),
       ('1M', 15, interval '1 month', 12, '1mo')
$$;

-- Open times are whole minutes since 1970-01-01 UTC (a moment within a minute: that minute).
CREATE FUNCTION candle_minute(moment timestamp) RETURNS integer
    LANGUAGE sql IMMUTABLE RETURN floor(extract(epoch FROM moment) / 60)::integer;

CREATE FUNCTION candle_next_open(open_minute integer, step interval) RETURNS integer
    LANGUAGE sql IMMUTABLE RETURN candle_minute((to_timestamp(open_minute * 60.0) AT TIME ZONE 'UTC') + step);

-- Every series gets an integer id; (exchange, symbol, timeframe) stays unique.
CREATE SEQUENCE candle_series_number AS integer;
ALTER TABLE candle_series ADD COLUMN id integer;
INSERT INTO candle_series (exchange, symbol, timeframe)
SELECT DISTINCT exchange, symbol, timeframe FROM candles
ON CONFLICT (exchange, symbol, timeframe) DO NOTHING;
UPDATE candle_series AS s SET id = t.series_block * 100000000 + nextval('candle_series_number')
FROM candle_timeframes() AS t WHERE t.timeframe = s.timeframe;
ALTER TABLE candle_series
    ALTER COLUMN id SET NOT NULL,
    DROP CONSTRAINT candle_series_pkey,
    ADD PRIMARY KEY (id),
    ADD CONSTRAINT candle_series_market_key UNIQUE (exchange, symbol, timeframe);
ALTER SEQUENCE candle_series_number OWNED BY candle_series.id;

ALTER TABLE candles RENAME TO candles_before_0006;

-- No foreign key to candle_series: its check per row would cost more than the insert itself.
CREATE TABLE candle_data (
    series_id   integer          NOT NULL,
    open_minute integer          NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL,
    -- candles arrive in order, so full leaf pages never need splitting again
    PRIMARY KEY (series_id, open_minute) WITH (fillfactor = 100)
) PARTITION BY RANGE (series_id);

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM candle_timeframes() LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF candle_data FOR VALUES FROM (%s) TO (%s) PARTITION BY RANGE (open_minute)',
            'candle_data_' || t.slug, t.series_block * 100000000, (t.series_block + 1) * 100000000
        );
    END LOOP;
END
$$;

-- The time partitions that exist, with their timeframe and period [period_start, period_end);
-- detach_pending: a DETACH ... CONCURRENTLY of it was interrupted (finish it with FINALIZE).
CREATE VIEW candle_partitions AS
SELECT part.relname::text AS partition_name, parent.relname::text AS parent_name, t.timeframe,
       bounds[1]::integer AS period_start, bounds[2]::integer AS period_end, i.inhdetachpending AS detach_pending
FROM candle_timeframes() AS t
JOIN pg_class AS parent ON parent.relname = 'candle_data_' || t.slug AND parent.relnamespace = 'public'::regnamespace
JOIN pg_inherits AS i ON i.inhparent = parent.oid
JOIN pg_class AS part ON part.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(pg_get_expr(part.relpartbound, part.oid), 'FROM \((-?\d+)\) TO \((-?\d+)\)') AS bounds;

-- The partitions holding [first_minute, last_minute] of a timeframe, created when missing.
-- CREATE + ATTACH takes no lock that waits for writers of the timeframe (CREATE ... PARTITION OF
-- would). Call it in a transaction of its own: it holds the new table's lock until commit.
CREATE FUNCTION create_candle_partitions(p_timeframe text, first_minute integer, last_minute integer)
    RETURNS TABLE (partition_name text, period_start integer, period_end integer)
    LANGUAGE plpgsql AS $$
DECLARE
    t record;
    starts timestamp;
    ends timestamp;
    parent text;
    minute integer := first_minute;
BEGIN
    SELECT * INTO STRICT t FROM candle_timeframes() AS tf WHERE tf.timeframe = p_timeframe;
    parent := 'candle_data_' || t.slug;
    LOOP
        starts := date_trunc(CASE t.partition_months WHEN 1 THEN 'month' ELSE 'year' END,
                             to_timestamp(minute * 60.0) AT TIME ZONE 'UTC');
        ends := starts + make_interval(months => t.partition_months);
        partition_name := parent || to_char(starts, CASE t.partition_months WHEN 1 THEN '_YYYY_MM' ELSE '_YYYY' END);
        period_start := candle_minute(starts);
        period_end := candle_minute(ends);
        IF to_regclass(partition_name) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext(partition_name));
            IF to_regclass(partition_name) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', partition_name, parent);
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                               parent, partition_name, period_start, period_end);
            END IF;
        END IF;
        RETURN NEXT;
        EXIT WHEN period_end > last_minute;
        minute := period_end;
    END LOOP;
END
$$;

-- The coverage summary, kept by the code that stores candles in the same transaction:
-- per series and partition period, how many candles and the first and last open time...
CREATE TABLE candle_counts (
    series_id    integer NOT NULL,
    period_start integer NOT NULL,
    candles      integer NOT NULL CHECK (candles > 0),
    first_minute integer NOT NULL,
    last_minute  integer NOT NULL,
    PRIMARY KEY (series_id, period_start)
);

-- ...and every hole between two stored candles: after_minute and next_minute are the stored
-- candles around it. Coverage and hole repair read these, never the candles.
CREATE TABLE candle_gaps (
    series_id    integer NOT NULL,
    after_minute integer NOT NULL,
    next_minute  integer NOT NULL CHECK (next_minute > after_minute),
    PRIMARY KEY (series_id, after_minute)
);

-- Rebuilds the summary of one series from its candles (after a delete, or candles loaded by hand).
CREATE FUNCTION recount_candle_series(p_series_id integer) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    tf record;
BEGIN
    SELECT t.* INTO STRICT tf FROM candle_timeframes() AS t WHERE t.series_block = p_series_id / 100000000;
    DELETE FROM candle_counts WHERE series_id = p_series_id;
    DELETE FROM candle_gaps WHERE series_id = p_series_id;
    INSERT INTO candle_counts (series_id, period_start, candles, first_minute, last_minute)
    SELECT p_series_id, p.period_start, count(*), min(c.open_minute), max(c.open_minute)
    FROM candle_data AS c
    JOIN candle_partitions AS p ON p.timeframe = tf.timeframe
        AND c.open_minute >= p.period_start AND c.open_minute < p.period_end
    WHERE c.series_id = p_series_id
    GROUP BY p.period_start;
    INSERT INTO candle_gaps (series_id, after_minute, next_minute)
    SELECT p_series_id, open_minute, next_minute
    FROM (
        SELECT open_minute, lead(open_minute) OVER (ORDER BY open_minute) AS next_minute
        FROM candle_data WHERE series_id = p_series_id
    ) AS pairs
    WHERE next_minute > candle_next_open(open_minute, tf.step);
END
$$;

-- Candles deleted by hand (not through retention) keep the summary true.
CREATE FUNCTION recount_series_of_deleted_candles() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM recount_candle_series(series_id) FROM (SELECT DISTINCT series_id FROM deleted_rows) AS touched;
    RETURN NULL;
END
$$;

CREATE FUNCTION forget_candle_summary() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM candle_counts;
    DELETE FROM candle_gaps;
    RETURN NULL;
END
$$;

CREATE TRIGGER candle_data_recount_after_delete AFTER DELETE ON candle_data
    REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION recount_series_of_deleted_candles();
CREATE TRIGGER candle_data_forget_summary_after_truncate AFTER TRUNCATE ON candle_data
    FOR EACH STATEMENT EXECUTE FUNCTION forget_candle_summary();

-- Candles as people read them: market, timeframe and open time. Deleting through it deletes
-- the candles (one statement per row: for many rows, delete from candle_data).
CREATE VIEW candles AS
SELECT s.exchange, s.symbol, s.timeframe, to_timestamp(c.open_minute * 60.0) AS open_time,
       c.open, c.high, c.low, c.close, c.volume, c.series_id, c.open_minute
FROM candle_data AS c JOIN candle_series AS s ON s.id = c.series_id;

CREATE FUNCTION delete_candle_through_view() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM candle_data WHERE series_id = OLD.series_id AND open_minute = OLD.open_minute;
    RETURN OLD;
END
$$;

CREATE TRIGGER candles_delete INSTEAD OF DELETE ON candles
    FOR EACH ROW EXECUTE FUNCTION delete_candle_through_view();

-- The conversion, one series at a time: its partitions, its candles in order, its summary.
-- Open times that are not whole minutes (off any timeframe's grid) cannot be stored and are left out.
DO $$
DECLARE
    s record;
    moved bigint;
    total bigint := 0;
    skipped bigint;
BEGIN
    FOR s IN
        SELECT cs.id, cs.exchange, cs.symbol, cs.timeframe, span.first_time, span.last_time
        FROM candle_series AS cs
        CROSS JOIN LATERAL (
            SELECT min(open_time) AS first_time, max(open_time) AS last_time FROM candles_before_0006 AS c
            WHERE c.exchange = cs.exchange AND c.symbol = cs.symbol AND c.timeframe = cs.timeframe
        ) AS span
        WHERE span.first_time IS NOT NULL
        ORDER BY cs.id
    LOOP
        PERFORM create_candle_partitions(
            s.timeframe,
            candle_minute(date_trunc('minute', s.first_time AT TIME ZONE 'UTC')),
            candle_minute(date_trunc('minute', s.last_time AT TIME ZONE 'UTC'))
        );
        INSERT INTO candle_data (series_id, open_minute, open, high, low, close, volume)
        SELECT s.id, candle_minute(open_time AT TIME ZONE 'UTC'), open, high, low, close, volume
        FROM candles_before_0006
        WHERE exchange = s.exchange AND symbol = s.symbol AND timeframe = s.timeframe
          AND open_time = date_trunc('minute', open_time)
        ORDER BY open_time;
        GET DIAGNOSTICS moved = ROW_COUNT;
        total := total + moved;
        PERFORM recount_candle_series(s.id);
        RAISE NOTICE 'candles of % % %: % converted', s.exchange, s.symbol, s.timeframe, moved;
    END LOOP;
    SELECT count(*) - total INTO skipped FROM candles_before_0006;
    IF skipped > 0 THEN
        RAISE NOTICE '% candles whose open time is not a whole minute were left out', skipped;
    END IF;
END
$$;

DROP TABLE candles_before_0006;
