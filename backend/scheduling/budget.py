"""Each exchange's request budget against what the enabled configs ask of it, and how far behind its runs are.

The budget is ccxt's own rate-limit model, which the service's shared client per exchange obeys
(``enableRateLimit``): one request of cost ``c`` takes ``c x rateLimit`` milliseconds, so one
process (one outbound address) gets ``1000 / (rateLimit x c)`` candle pages a second, ``c`` being
the cost of the exchange's recent-candles endpoint (``Dialect.candle_request_cost``). Processes
that share an outbound address share that budget.

The demand is what an up-to-date series asks for: a run asks for a page only when a candle closed
since the last one (a 1h series run every minute asks once an hour), and for as many pages as the
candles of one interval fill. Backfills, hole repairs and retries come on top; the demand is the
steady state.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, Literal

import ccxt
import msgspec

from backend.collection.exchanges import DEFAULT_OPTIONS, DEFAULT_PAGE_LIMIT, deep_merge
from backend.collection.profiles import profile_for
from backend.collection.timeframes import FIXED_STEPS
from backend.db.pool import Connection, Pool

MONTH_SECONDS = 31 * 86_400  # the longest month: the fewest requests a 1M series asks for
# runs are "behind" when a slot of the exchange's configs has waited this long to start
BEHIND_AFTER_SECONDS = 30.0

# Per exchange, per (timeframe, interval): how many enabled series; and per exchange how long
# the oldest slot waiting to start has waited (a due slot not claimed, or a claimed run not started).
# (of one exchange: $1; of all: null)
READ_DEMAND = """
SELECT exchange, timeframe, interval_minutes, count(*)::integer AS series
FROM data_collection_configs, unnest(timeframes) AS timeframe
WHERE enabled AND ($1::text IS NULL OR exchange = $1)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
READ_WAITING = """
SELECT exchange, greatest(0, extract(epoch FROM now() - min(waiting_since)))::double precision AS waiting_seconds
FROM (
    SELECT exchange, next_run_at AS waiting_since FROM data_collection_configs
    WHERE enabled AND next_run_at < now()
    UNION ALL
    SELECT exchange, coalesce(scheduled_for, started_at) FROM job_execution_logs
    WHERE status = 'running' AND heartbeat_at IS NULL AND exchange IS NOT NULL
) AS waiting
GROUP BY 1
"""

BudgetState = Literal["ok", "over_budget", "behind"]


class ExchangeBudget(msgspec.Struct, kw_only=True, frozen=True):
    """One exchange as ``GET /status`` shows it under ``exchanges``.

    - ``series``: timeframes of its enabled configs.
    - ``demand_requests_per_second``: candle pages those series ask for, up to date, a second.
    - ``budget_requests_per_second``: candle pages ccxt's rate limiter lets one process ask for a
      second (``rateLimit`` and the endpoint's cost); null when the limiter is off.
    - ``demand_share``: demand / budget (above 1: more than the exchange lets one address ask for).
    - ``behind_seconds``: how long the oldest slot of its configs has waited to start (0: none waits).
    - ``state``: ``behind`` when a slot waited over 30 s, else ``over_budget`` when the demand
      exceeds the budget, else ``ok``.
    """

    exchange: str
    series: int
    demand_requests_per_second: float
    budget_requests_per_second: float | None
    demand_share: float | None
    behind_seconds: float
    state: BudgetState


class RateLimit(msgspec.Struct, kw_only=True, frozen=True):
    """ccxt's model of one exchange, with the service's options."""

    requests_per_second: float | None  # candle pages a second; None when the limiter is off
    page_limit: int  # candles per page


@functools.cache
def _rate_limit(exchange_id: str, options_json: bytes) -> RateLimit:
    options: dict[str, Any] = msgspec.json.decode(options_json)
    exchange = getattr(ccxt, exchange_id)(options)  # ccxt's model only: no request is made
    profile = profile_for(exchange_id)
    section = (exchange.features or {}).get("spot") or {}
    limit = profile.page or (section.get("fetchOHLCV") or {}).get("limit")
    page_limit = int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_PAGE_LIMIT
    if not exchange.enableRateLimit or not exchange.rateLimit:
        return RateLimit(requests_per_second=None, page_limit=page_limit)
    cost = profile.dialect.candle_request_cost(exchange)
    return RateLimit(requests_per_second=1000.0 / (float(exchange.rateLimit) * cost), page_limit=page_limit)


def rate_limit(exchange_id: str, overrides: Mapping[str, Any]) -> RateLimit | None:
    """ccxt's rate-limit model of ``exchange_id`` with the service's ``EXCHANGE_OVERRIDES``; None
    for an exchange ccxt does not know."""
    if exchange_id not in ccxt.exchanges:
        return None
    options = deep_merge(DEFAULT_OPTIONS, overrides.get(exchange_id, {}))
    return _rate_limit(exchange_id, msgspec.json.encode(options))


def requests_per_second(*, timeframe: str, interval_seconds: float, page_limit: int) -> float:
    """Candle pages one up-to-date series asks for a second: a page per closed candle when candles
    are longer than the interval, else the pages the candles of one interval fill, every interval."""
    step = FIXED_STEPS[timeframe].total_seconds() if timeframe in FIXED_STEPS else MONTH_SECONDS
    candles_per_run = interval_seconds / step
    if candles_per_run <= 1:
        return 1 / step
    return math.ceil(candles_per_run / page_limit) / interval_seconds


def series_within_budget(exchange_id: str, *, timeframe: str, interval_minutes: int) -> int | None:
    """How many series of ``timeframe`` run every ``interval_minutes`` one address carries on
    ``exchange_id`` at ccxt's defaults; None when its limiter is off."""
    limit = rate_limit(exchange_id, {})
    if limit is None or limit.requests_per_second is None:
        return None
    each = requests_per_second(timeframe=timeframe, interval_seconds=interval_minutes * 60, page_limit=limit.page_limit)
    return math.floor(limit.requests_per_second / each + 1e-9)


async def read_exchange_budgets(
    db: Pool | Connection, *, overrides: Mapping[str, Any], interval_unit_seconds: int = 60
) -> list[ExchangeBudget]:
    """Every exchange with enabled configs, or runs waiting: demand, budget and how far behind."""
    series, demand = await _read_demand(
        db, exchange=None, overrides=overrides, interval_unit_seconds=interval_unit_seconds
    )
    waiting = {row["exchange"]: row["waiting_seconds"] for row in await db.fetch(READ_WAITING)}
    budgets = []
    for exchange in sorted(demand.keys() | waiting.keys()):
        limit = rate_limit(exchange, overrides)
        budget = None if limit is None else limit.requests_per_second
        asked = demand.get(exchange, 0.0)
        share = None if budget is None else asked / budget
        behind = waiting.get(exchange, 0.0)
        state: BudgetState = (
            "behind" if behind > BEHIND_AFTER_SECONDS else "over_budget" if share is not None and share > 1 else "ok"
        )
        budgets.append(
            ExchangeBudget(
                exchange=exchange,
                series=series.get(exchange, 0),
                demand_requests_per_second=round(asked, 4),
                budget_requests_per_second=None if budget is None else round(budget, 4),
                demand_share=None if share is None else round(share, 4),
                behind_seconds=round(behind, 3),
                state=state,
            )
        )
    return budgets


async def over_budget_message(
    db: Pool | Connection, *, exchange: str, overrides: Mapping[str, Any], interval_unit_seconds: int = 60
) -> str | None:
    """A sentence when the enabled configs ask ``exchange`` for more than its budget; else None."""
    limit = rate_limit(exchange, overrides)
    if limit is None or limit.requests_per_second is None:
        return None
    _, demand = await _read_demand(
        db, exchange=exchange, overrides=overrides, interval_unit_seconds=interval_unit_seconds
    )
    asked = demand.get(exchange, 0.0)
    if asked <= limit.requests_per_second:
        return None
    return (
        f"the enabled configs on {exchange} ask for {asked:.1f} candle pages a second, "
        f"{asked / limit.requests_per_second:.1f}x the {limit.requests_per_second:.1f} its rate limit allows from one "
        "address: their runs will start late and skip slots (counted in missed_slots)"
    )


async def _read_demand(
    db: Pool | Connection, *, exchange: str | None, overrides: Mapping[str, Any], interval_unit_seconds: int
) -> tuple[dict[str, int], dict[str, float]]:
    """Per exchange (one, or all): enabled series, and the candle pages they ask for a second."""
    series: dict[str, int] = {}
    demand: dict[str, float] = {}
    for row in await db.fetch(READ_DEMAND, exchange):
        limit = rate_limit(row["exchange"], overrides)
        page_limit = limit.page_limit if limit is not None else DEFAULT_PAGE_LIMIT
        each = requests_per_second(
            timeframe=row["timeframe"],
            interval_seconds=row["interval_minutes"] * interval_unit_seconds,
            page_limit=page_limit,
        )
        demand[row["exchange"]] = demand.get(row["exchange"], 0.0) + each * row["series"]
        series[row["exchange"]] = series.get(row["exchange"], 0) + row["series"]
    return series, demand
