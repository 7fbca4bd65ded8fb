-- Partitions created once: concurrent first writers of a timeframe's period could both pass the
-- existence check. After the advisory lock, to_regclass still answered from the session's catalog
-- cache (an advisory lock does not refresh it), so the second creator did not see the table its
-- predecessor had just committed and failed with "relation ... already exists". The check inside
-- the lock now reads pg_class in a statement of its own, which sees every committed table.
CREATE OR REPLACE FUNCTION create_candle_partitions(p_timeframe text, first_minute integer, last_minute integer)
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
            IF NOT EXISTS (
                SELECT FROM pg_class AS c
                WHERE c.relname = partition_name AND c.relnamespace = current_schema()::regnamespace
            ) THEN
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

-- Revisions: candles the exchange changed after they were stored, rewritten with its new values and
-- counted per series (shown by /coverage as revised_candles).
ALTER TABLE candle_series ADD COLUMN revised_candles bigint NOT NULL DEFAULT 0;
