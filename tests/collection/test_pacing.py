"""Requests wait for the exchange's budget as ccxt's rate limiter makes them wait: the paced limiter
keeps ccxt's bucket, costs and order, and only wakes less often (its CPU: ``make bench``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from backend.collection.exchanges import ExchangeClients
from backend.collection.pacing import PacedThrottler, pace_requests

RATE_LIMIT_MS = 20
COSTS = [1, 2, 1, 1, 3]
# a request goes once the bucket holds no debt: after the costs before it, at RATE_LIMIT_MS a token
EARLIEST_MS = [0, 20, 60, 80, 100]
CLOCK_SLACK_MS = 1


async def _granted_after_ms(exchange: Any) -> list[float]:
    """When each of COSTS' requests was let go, counted from the first, asked all at once."""
    granted: list[float] = []

    async def request(cost: int) -> None:
        await exchange.throttle(cost)
        granted.append(time.monotonic())

    await asyncio.gather(*(request(cost) for cost in COSTS))
    return [1000 * (moment - granted[0]) for moment in granted]


@pytest.mark.parametrize("paced", [True, False], ids=["paced", "ccxt's own"])
async def test_each_request_waits_for_the_tokens_its_cost_needs(paced: bool) -> None:
    exchange = ccxt_async.binance({"rateLimit": RATE_LIMIT_MS})
    if paced:
        pace_requests(exchange)
    try:
        after_ms = await _granted_after_ms(exchange)
    finally:
        await exchange.close()

    assert isinstance(exchange.throttler, PacedThrottler) is paced
    assert len(after_ms) == len(COSTS)
    for moment, earliest in zip(after_ms, EARLIEST_MS, strict=True):
        assert moment >= earliest - CLOCK_SLACK_MS, (after_ms, EARLIEST_MS)


def test_every_client_paces_its_requests_within_ccxts_budget(exchanges: ExchangeClients) -> None:
    client = exchanges.get("binance")

    assert isinstance(client.ccxt.throttler, PacedThrottler)
    assert client.ccxt.throttler.config["refillRate"] == 1 / client.ccxt.rateLimit
