"""Bodies of the market-data routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

from backend.collection.timeframes import candles_in, floor_open, shift_open
from backend.configs.schemas import KNOWN_EXCHANGES, ExchangeId, Symbol, Timeframe
from backend.web.params import BODY_DATE_TIME

CandleRow = tuple[int, float, float, float, float, float]
"""``[open time in ms, open, high, low, close, volume]``, as ccxt and charting libraries take it."""


class Gap(msgspec.Struct, kw_only=True):
    """Candles missing between two stored ones."""

    start: datetime  # open time of the first missing candle
    end: datetime  # open time of the next stored candle
    missing_candles: int


class SeriesCoverage(msgspec.Struct, kw_only=True):
    """What is stored of one series, where it has holes, and how fresh it is (see ``GET .../freshness``)."""

    exchange: str
    symbol: str
    timeframe: str
    first_candle: datetime
    last_candle: datetime
    candles: int
    expected_candles: int  # candles from first to last at this timeframe, had none been missing
    missing_candles: int  # not stored, neither confirmed empty nor beyond reach (rejected ones included)
    confirmed_empty_candles: int  # not stored: the exchange confirmed it has none (no trades)
    rejected_candles: int  # the exchange kept sending them broken: never stored
    gap_count: int
    largest_gaps: list[Gap]
    revised_candles: int  # stored candles the exchange changed afterwards: rewritten with its new values
    lag_seconds: float  # since the newest candle (last_candle) closed
    stale_after_seconds: float | None  # the lag beyond which the series is stale; null: no enabled config collects it
    stale: bool | None  # null: no enabled config collects it
    exchange_verified: bool  # the exchange's answers are proven by tests (else they confirm nothing alone)
    reach: str | None  # how far back the exchange serves, "the latest 720 1m candles"; null: its whole history
    reach_start: datetime | None  # the oldest open time it serves now; null: its whole history
    # not stored and older than the reach, from the oldest candle a config asks for (or
    # the first stored one) on: neither missing (nothing can fetch them) nor confirmed empty
    beyond_reach_candles: int


class ConfirmationsCleared(msgspec.Struct, kw_only=True):
    """What was forgotten of what the exchange had confirmed it does not have."""

    exchange: str
    symbol: str
    timeframe: str | None  # null: every timeframe of the market
    empty_ranges_cleared: int  # stretches confirmed empty (no trades)
    history_starts_cleared: int  # "nothing before this time" marks


MAX_REVERIFY_CANDLES = 10_000  # candles one re-verification may cover


class ReverifyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A stored range of one series to compare with the exchange: open times from ``start`` to before ``end``."""

    symbol: Symbol
    timeframe: Timeframe
    start: Annotated[
        datetime,
        msgspec.Meta(
            description="First open time (RFC 3339, UTC if no zone)", extra_json_schema={"pattern": BODY_DATE_TIME}
        ),
    ]
    end: Annotated[
        datetime,
        msgspec.Meta(
            description=f"Open times before this one (at most {MAX_REVERIFY_CANDLES} candles after start are compared)",
            extra_json_schema={"pattern": BODY_DATE_TIME},
        ),
    ]
    exchange: ExchangeId = "binance"

    def __post_init__(self) -> None:
        self.symbol = self.symbol.upper()
        self.exchange = self.exchange.lower()
        if self.exchange not in KNOWN_EXCHANGES:
            raise ValueError(f"exchange: {self.exchange!r} is not an exchange ccxt knows")
        self.start = floor_open(_utc(self.start), self.timeframe)
        # as the other ranges of the API: an end before the start asks for nothing, and a range is
        # read up to its first MAX_REVERIFY_CANDLES candles (the answer's `end` says where it stopped)
        self.end = max(_utc(self.end), self.start)
        if candles_in(self.start, self.end, self.timeframe) > MAX_REVERIFY_CANDLES:
            self.end = shift_open(self.start, self.timeframe, MAX_REVERIFY_CANDLES)


class Reverified(msgspec.Struct, kw_only=True):
    """What comparing a stored range with the exchange found, and repaired."""

    exchange: str
    symbol: str
    timeframe: str
    start: datetime
    end: datetime  # where the comparison stopped: the request's end, or earlier (10,000 candles, REVERIFY_SECONDS)
    exchange_candles: int  # final candles the exchange sent for the range
    revised: int  # stored candles whose values differed: rewritten with the exchange's
    inserted: int  # candles the exchange has that were not stored: stored now
    not_at_exchange: int  # stored candles the exchange did not send: kept
    rejected: int  # candles the exchange sent that break the rules: not stored
    error_type: str | None  # the comparison stopped there (what came before is repaired)
    error: str | None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
