-- Data integrity: what a series knows about the exchange, only as far as the exchange said it.

-- "The exchange has nothing before earliest_available" holds for the window that was asked
-- from earliest_asked_from on; a collection whose window starts earlier asks again. Rows written
-- before this migration never said where they were asked from: they are asked again.
ALTER TABLE candle_series ADD COLUMN earliest_asked_from timestamptz;

-- Candles the exchange sent that break the rules (never stored), one per open time of the grid;
-- /coverage counts those of a series that no good candle has replaced since.
CREATE TABLE candle_rejections (
    exchange    text        NOT NULL,
    symbol      text        NOT NULL,
    timeframe   text        NOT NULL,
    open_time   timestamptz NOT NULL,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, open_time)
);
