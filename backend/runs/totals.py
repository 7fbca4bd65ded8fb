"""Cumulative run totals: every run that ended, counted by the statement that ended it.

``run_totals`` (runs, durations, lateness, missed slots, candles per job type, exchange, trigger
and status) and ``run_histogram_buckets`` (run duration and lateness histograms) only grow: they
are never recomputed from the logs, which retention deletes. Each statement that ends runs is
written as ``WITH ended AS (UPDATE ... RETURNING {ENDED_COLUMNS}), {COUNT_ENDED_RUNS} SELECT ...``:
one statement, no extra round trip.

A run closed as Interrupted (its process stopped beating) is counted then; if its own process
completes it later, only the candles it reports are added (``first_end`` false), so each run
counts once.
"""

from __future__ import annotations

import msgspec

from backend.db.pool import Connection, Pool

# What ``ended`` returns of each ended row (besides ``first_end``: true unless the row had ended before).
ENDED_COLUMNS = """
    job_type, coalesce(exchange, '') AS exchange, coalesce(trigger, '') AS trigger, status,
    coalesce(duration_seconds, 0) AS duration_seconds,
    CASE WHEN trigger = 'schedule' THEN extract(epoch FROM started_at - scheduled_for)::float8 END AS lateness_seconds,
    missed_slots, coalesce(records_collected, 0) AS candles_stored,
    run_candles(metadata, 'rejected_candles') AS candles_rejected, run_candles(metadata, 'revised') AS candles_revised
"""
# Keys in one order in both inserts, so that statements ending runs at once never deadlock.
COUNT_ENDED_RUNS = """
counted AS (
    INSERT INTO run_totals AS t
        (job_type, exchange, trigger, status, runs, duration_seconds, scheduled_runs, lateness_seconds,
         missed_slots, candles_stored, candles_rejected, candles_revised)
    SELECT job_type, exchange, trigger, status,
           count(*) FILTER (WHERE first_end),
           coalesce(sum(duration_seconds) FILTER (WHERE first_end), 0),
           count(lateness_seconds) FILTER (WHERE first_end),
           coalesce(sum(lateness_seconds) FILTER (WHERE first_end), 0),
           coalesce(sum(missed_slots) FILTER (WHERE first_end), 0),
           sum(candles_stored), sum(candles_rejected), sum(candles_revised)
    FROM ended
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (job_type, exchange, trigger, status) DO UPDATE
    SET runs = t.runs + excluded.runs, duration_seconds = t.duration_seconds + excluded.duration_seconds,
        scheduled_runs = t.scheduled_runs + excluded.scheduled_runs,
        lateness_seconds = t.lateness_seconds + excluded.lateness_seconds,
        missed_slots = t.missed_slots + excluded.missed_slots,
        candles_stored = t.candles_stored + excluded.candles_stored,
        candles_rejected = t.candles_rejected + excluded.candles_rejected,
        candles_revised = t.candles_revised + excluded.candles_revised
), bucketed AS (
    INSERT INTO run_histogram_buckets AS b (histogram, job_type, exchange, le, runs)
    SELECT histogram, job_type, exchange, le, count(*)
    FROM (
        SELECT 'duration' AS histogram, job_type, exchange,
               histogram_bucket(duration_seconds, run_duration_bounds()) AS le
        FROM ended WHERE first_end
        UNION ALL
        SELECT 'lateness', job_type, exchange, histogram_bucket(lateness_seconds, run_lateness_bounds())
        FROM ended WHERE first_end AND lateness_seconds IS NOT NULL
    ) AS observed
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (histogram, job_type, exchange, le) DO UPDATE SET runs = b.runs + excluded.runs
)
"""

READ_RUN_TOTALS = """
SELECT job_type, exchange, trigger, status, runs, duration_seconds, scheduled_runs, lateness_seconds,
       missed_slots, candles_stored, candles_rejected, candles_revised
FROM run_totals ORDER BY job_type, exchange, trigger, status
"""
# Per histogram and label set: every bound with the cumulative count of runs at or below it
# (Prometheus' buckets; the last bound is Infinity), the bounds being those of the migration.
READ_RUN_HISTOGRAMS = """
WITH bounds AS (
    SELECT 'duration' AS histogram, bound, position
    FROM unnest(run_duration_bounds() || 'Infinity'::float8) WITH ORDINALITY AS b(bound, position)
    UNION ALL
    SELECT 'lateness', bound, position
    FROM unnest(run_lateness_bounds() || 'Infinity'::float8) WITH ORDINALITY AS b(bound, position)
), label_sets AS (
    SELECT DISTINCT histogram, job_type, exchange FROM run_histogram_buckets
)
SELECT label_sets.histogram, label_sets.job_type, label_sets.exchange,
       array_agg(bounds.bound ORDER BY bounds.position) AS bounds,
       array_agg((SELECT coalesce(sum(runs), 0) FROM run_histogram_buckets AS b
                  WHERE (b.histogram, b.job_type, b.exchange) = (label_sets.histogram, label_sets.job_type,
                                                                 label_sets.exchange)
                    AND b.le <= bounds.bound)::bigint ORDER BY bounds.position) AS cumulative_runs
FROM label_sets JOIN bounds USING (histogram)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""


class RunTotals(msgspec.Struct, kw_only=True, frozen=True):
    """Runs of one job type, exchange ('' for none), trigger ('' for none) and final status, ever."""

    job_type: str
    exchange: str
    trigger: str
    status: str
    runs: int
    duration_seconds: float  # sum
    scheduled_runs: int
    lateness_seconds: float  # sum over the scheduled runs
    missed_slots: int
    candles_stored: int
    candles_rejected: int
    candles_revised: int


class RunHistogram(msgspec.Struct, kw_only=True, frozen=True):
    """Cumulative counts of one histogram (``duration`` or ``lateness``) for one job type and exchange."""

    histogram: str
    job_type: str
    exchange: str
    bounds: list[float]  # upper bounds, the last one infinite
    cumulative_runs: list[int]  # runs at or below each bound


async def read_run_totals(db: Pool | Connection) -> list[RunTotals]:
    return [msgspec.convert(dict(row), RunTotals) for row in await db.fetch(READ_RUN_TOTALS)]


async def read_run_histograms(db: Pool | Connection) -> list[RunHistogram]:
    return [msgspec.convert(dict(row), RunHistogram) for row in await db.fetch(READ_RUN_HISTOGRAMS)]
