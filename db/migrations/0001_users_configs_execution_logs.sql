-- Users who log in, the data-collection configs they manage, and the log of job runs.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text        NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('admin', 'viewer')),
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- true when no element of the array appears twice (CHECK constraints cannot hold subqueries)
CREATE FUNCTION array_elements_unique(items text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN cardinality(items) = (SELECT count(DISTINCT item) FROM unnest(items) AS item);

CREATE TABLE data_collection_configs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol           text        NOT NULL CHECK (symbol ~ '^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$'),
    exchange         text        NOT NULL CHECK (exchange ~ '^[a-z0-9_]{1,40}$'),
    timeframes       text[]      NOT NULL CHECK (
        cardinality(timeframes) > 0
        AND timeframes <@ ARRAY['1m','3m','5m','15m','30m','1h','2h','4h','6h','8h','12h','1d','3d','1w','1M']
        AND array_elements_unique(timeframes)
    ),
    interval_minutes integer     NOT NULL CHECK (interval_minutes BETWEEN 1 AND 1440),
    enabled          boolean     NOT NULL DEFAULT true,
    description      text        CHECK (char_length(description) <= 200),
    created_by       bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT data_collection_configs_exchange_symbol_key UNIQUE (exchange, symbol)
);

CREATE INDEX data_collection_configs_enabled_idx ON data_collection_configs (enabled, id);

CREATE TABLE job_execution_logs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_name          text             NOT NULL,
    job_type          text             NOT NULL,
    config_id         bigint           REFERENCES data_collection_configs (id) ON DELETE SET NULL,
    symbol            text,
    exchange          text,
    timeframe         text,
    status            text             NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    started_at        timestamptz      NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    duration_seconds  double precision CHECK (duration_seconds >= 0),
    records_collected integer          CHECK (records_collected >= 0),
    error_message     text,
    error_type        text,
    metadata          jsonb,
    CHECK ((status = 'running') = (finished_at IS NULL))
);

-- newest first, overall and per config / per status
CREATE INDEX job_execution_logs_started_at_idx ON job_execution_logs (started_at DESC, id DESC);
CREATE INDEX job_execution_logs_config_started_at_idx ON job_execution_logs (config_id, started_at DESC);
CREATE INDEX job_execution_logs_status_started_at_idx ON job_execution_logs (status, started_at DESC);
