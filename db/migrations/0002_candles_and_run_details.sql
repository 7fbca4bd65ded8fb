-- Collection engine: stored candles, what is known about each series, per-config backfill,
-- and the run-log details a collection run records (how it was triggered, partial success).

-- One row per candle. ccxt hands prices and volumes over as floats, so double precision
-- stores exactly what the exchange client gave us.
CREATE TABLE candles (
    exchange  text             NOT NULL,
    symbol    text             NOT NULL,
    timeframe text             NOT NULL,
    open_time timestamptz      NOT NULL,
    open      double precision NOT NULL,
    high      double precision NOT NULL,
    low       double precision NOT NULL,
    close     double precision NOT NULL,
    volume    double precision NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, open_time)
);

-- What a series' candles alone cannot tell: where the exchange's history begins.
CREATE TABLE candle_series (
    exchange           text        NOT NULL,
    symbol             text        NOT NULL,
    timeframe          text        NOT NULL,
    earliest_available timestamptz,  -- the exchange serves nothing older: never ask before it
    PRIMARY KEY (exchange, symbol, timeframe)
);

-- Holes the exchange confirmed have no candles (no trades then): never refetched.
CREATE TABLE candle_empty_ranges (
    exchange     text        NOT NULL,
    symbol       text        NOT NULL,
    timeframe    text        NOT NULL,
    range_start  timestamptz NOT NULL,
    range_end    timestamptz NOT NULL CHECK (range_end > range_start),
    confirmed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, symbol, timeframe, range_start)
);

ALTER TABLE data_collection_configs
    ADD COLUMN backfill_days integer NOT NULL DEFAULT 7 CHECK (backfill_days BETWEEN 1 AND 3650);

ALTER TABLE job_execution_logs
    ADD COLUMN trigger text CHECK (trigger IN ('schedule', 'manual', 'system')),
    DROP CONSTRAINT job_execution_logs_status_check,
    ADD CONSTRAINT job_execution_logs_status_check CHECK (status IN ('running', 'success', 'failed', 'partial'));
