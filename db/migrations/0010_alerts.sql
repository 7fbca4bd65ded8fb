-- Alerts: the service watches itself. Once per evaluation interval one process (whichever claims
-- the system job alert_evaluation first, with FOR UPDATE SKIP LOCKED) reads every rule's conditions,
-- moves each alert's state, and queues the webhook messages those changes call for, all in one
-- transaction. Messages wait in alert_notifications (the outbox) until one process delivers them.

-- One row per episode of an alert: a rule about one subject, from the moment its condition was
-- seen until it resolved. A row whose condition has not yet held long enough is pending (no
-- firing_since); a pending row that clears is deleted, it never told anyone anything.
CREATE TABLE alerts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule              text        NOT NULL,  -- config_failing, series_stale, scheduler_silent, ...
    subject           text        NOT NULL,  -- what it is about: config:12, series:12:1m, exchange:binance
    summary           text        NOT NULL,  -- one line for people, as of the latest evaluation
    details           jsonb       NOT NULL,  -- the rule's facts (ids, counts, ages), as of the latest evaluation
    condition_since   timestamptz NOT NULL,  -- since when the condition holds (from the data, else first seen)
    firing_since      timestamptz,           -- when it started firing; null while pending
    resolved_at       timestamptz,           -- when its condition cleared; null while open
    last_notified_at  timestamptz,           -- the latest webhook message queued about it
    CHECK (resolved_at IS NULL OR firing_since IS NOT NULL)
);

-- at most one open episode per rule and subject
CREATE UNIQUE INDEX alerts_open_key ON alerts (rule, subject) WHERE resolved_at IS NULL;
-- the recently resolved ones, newest first
CREATE INDEX alerts_resolved_at_idx ON alerts (resolved_at DESC) WHERE resolved_at IS NOT NULL;

-- runs that collapsed missed slots, for the rule that watches them (few rows: no scan of a busy window)
CREATE INDEX job_execution_logs_missed_slots_idx ON job_execution_logs (started_at) WHERE missed_slots > 0;

-- The outbox: one webhook message per evaluation and kind of change (alerts that fired together
-- are one message). Delivered in order, one at a time across the deployment: a process takes the
-- oldest undelivered message for a lease, posts it without holding a transaction, then records
-- the outcome. A failed post is tried again with backoff; after a day it is given up.
CREATE TABLE alert_notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('firing', 'resolved', 'reminder')),
    body            jsonb       NOT NULL,  -- the JSON posted to the webhook, rendered when queued
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,           -- a process is posting it until then
    delivered_at    timestamptz,
    given_up_at     timestamptz,
    last_error      text                   -- why the latest attempt failed (never the webhook's URL)
);

CREATE INDEX alert_notifications_undelivered_idx ON alert_notifications (id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
