-- A failed or partial run's error in a few plain words ("cannot reach api.binance.com: name not
-- resolved"), each cause once for the whole run, beside the full message (error_message) that keeps
-- every timeframe's exception chain. Null for runs without an error, and for runs recorded before.
ALTER TABLE job_execution_logs ADD COLUMN error_cause text;
