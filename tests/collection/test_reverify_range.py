"""The range a re-verification compares: read as the other ranges of the API are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from backend.collection.schemas import ReverifyRequest


def test_a_reverify_range_longer_than_10000_candles_is_compared_up_to_its_first_10000() -> None:
    body = {"symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-11T00:30:00Z", "end": "2027-01-10T00:00:00Z"}

    request = msgspec.convert(body, ReverifyRequest)

    assert request.start == datetime(2025, 1, 11, tzinfo=UTC)
    assert request.end == request.start + timedelta(hours=10_000)


def test_a_reverify_range_ending_before_its_start_is_empty() -> None:
    body = {"symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-11T00:00:00Z", "end": "2025-01-10T00:00:00"}

    request = msgspec.convert(body, ReverifyRequest)

    assert request.start == request.end == datetime(2025, 1, 11, tzinfo=UTC)
