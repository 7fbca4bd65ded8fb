-- Monitoring that survives retention and restarts: cumulative run totals, and what each exchange
-- ordered (pauses, bans) and was asked, as every process saw it.

-- Every run that ended, added by the statement that ended it (never recomputed from the logs,
-- which retention deletes): these only grow. exchange and trigger are '' when a run has none
-- (jobs of the service itself).
CREATE TABLE run_totals (
    job_type         text             NOT NULL,
    exchange         text             NOT NULL,
    trigger          text             NOT NULL,
    status           text             NOT NULL,
    runs             bigint           NOT NULL,
    duration_seconds double precision NOT NULL,  -- sum over the runs
    scheduled_runs   bigint           NOT NULL,  -- runs that served a slot (trigger 'schedule')
    lateness_seconds double precision NOT NULL,  -- sum of started_at - scheduled_for over those
    missed_slots     bigint           NOT NULL,
    candles_stored   bigint           NOT NULL,  -- records_collected
    candles_rejected bigint           NOT NULL,  -- metadata.by_timeframe.*.rejected_candles
    candles_revised  bigint           NOT NULL,  -- metadata.by_timeframe.*.revised
    PRIMARY KEY (job_type, exchange, trigger, status)
);

-- Histograms of run duration and of lateness (scheduled runs), one row per bucket that holds a
-- run: le is the bucket's upper bound (the smallest bound at or above the value, Infinity past
-- the last). Counts are per bucket; readers add them up into Prometheus' cumulative buckets.
CREATE TABLE run_histogram_buckets (
    histogram text             NOT NULL CHECK (histogram IN ('duration', 'lateness')),
    job_type  text             NOT NULL,
    exchange  text             NOT NULL,
    le        double precision NOT NULL,
    runs      bigint           NOT NULL,
    PRIMARY KEY (histogram, job_type, exchange, le)
);

CREATE FUNCTION run_duration_bounds() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN '{0.1,0.25,0.5,1,2.5,5,10,30,60,120,300,600}'::double precision[];

CREATE FUNCTION run_lateness_bounds() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN '{0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60}'::double precision[];

CREATE FUNCTION histogram_bucket(value double precision, bounds double precision[]) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce((SELECT min(bound) FROM unnest(bounds) AS bound WHERE bound >= value), 'Infinity');

-- Candles a run reports under metadata.by_timeframe.<timeframe>.<field>, all timeframes together
-- (0 when the run has no such metadata or field).
CREATE FUNCTION run_candles(metadata jsonb, field text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce((
        SELECT sum(CASE WHEN jsonb_typeof(tf.value -> field) = 'number' THEN (tf.value ->> field)::numeric END)
        FROM jsonb_each(CASE WHEN jsonb_typeof(metadata -> 'by_timeframe') = 'object'
                             THEN metadata -> 'by_timeframe' END) AS tf
    ), 0)::bigint;

-- A pause or ban an exchange ordered, as one process's client of it keeps it: written when it
-- starts (or is extended) and deleted when it ends. A row whose until has passed is over (its
-- process stopped before saying so); the daily retention deletes those.
CREATE TABLE exchange_pauses (
    exchange text        NOT NULL,
    process  text        NOT NULL,  -- host and process id
    state    text        NOT NULL CHECK (state IN ('paused', 'banned')),
    since    timestamptz NOT NULL,  -- requests have been held since then, without a break
    until    timestamptz NOT NULL,
    reason   text        NOT NULL,
    PRIMARY KEY (exchange, process)
);

-- Requests to each exchange, counted in each process and added here periodically: only grow.
CREATE TABLE exchange_request_totals (
    exchange    text   PRIMARY KEY,
    requests    bigint NOT NULL,  -- answers received, and requests that got none
    errors      bigint NOT NULL,  -- requests without a usable answer (no answer, 4xx/5xx, a body that cannot be read)
    rate_limits bigint NOT NULL,  -- "slow down" answers: 429, or a rate limit said in the body
    bans        bigint NOT NULL   -- 418 answers
);
