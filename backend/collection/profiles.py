"""How each exchange answers a candle request, declared rather than guessed from its answers.

A profile says, for one exchange (and ccxt's variants of it, which subclass its class):

- how it answers ``fetch_ohlcv(since, limit)``: the candles **from** ``since`` on, a fixed
  **window** ``[since, since + limit candles)`` (an empty answer then says nothing about what comes
  after the window), or only its **latest** N candles whatever ``since`` asks;
- its page: candles per request, the same for every timeframe (ccxt's ``features`` for spot);
- its reach: how far back it serves, counted in candles of the timeframe back from the open one
  (None: its whole history). Kraken answers its latest 720 candles, Gate refuses a start more than
  10,000 candles back; OKX serves its latest 1,440 on one endpoint and the rest on another, so it
  reaches its whole history;
- its dialect (:mod:`backend.collection.dialects`): the page requests and the answers' shape.

Every profile but :data:`UNVERIFIED` is proven by a fake server speaking the exchange's REST API
(``tests/collection/fake_*.py``). Any other ccxt id is read the default way and is *unverified*:
what it answers is used, but never taken alone as proof that a stretch had no trades or that the
exchange's history begins somewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import ccxt

from backend.collection.dialects import Binance, Bybit, Coinbase, Dialect, Gate, Kraken, Kucoin, Okx, Windowed
from backend.collection.timeframes import floor_open, shift_open

Answers = Literal["from since", "window", "latest"]

REACH_MARGIN_CANDLES = 5  # asked no closer than this to the edge of the reach (clocks, a slow request)


@dataclass(frozen=True)
class ExchangeProfile:
    name: str  # the ccxt class; its subclasses (ccxt's variants) share the profile
    answers: Answers
    page: int | None  # candles per request (None: ccxt's ``features`` for the market's type)
    reach: int | None = None  # the latest N candles of a timeframe it serves; None: its whole history
    verified: bool = True
    dialect: Dialect = field(default_factory=Dialect)

    def __post_init__(self) -> None:
        if (self.answers == "window") != isinstance(self.dialect, Windowed):
            raise ValueError(f"{self.name}: a windowed exchange needs a windowed dialect, and only it")
        if self.answers == "latest" and self.reach is None:
            raise ValueError(f"{self.name}: an exchange answering its latest candles has a reach")

    def reach_start(self, now: datetime, timeframe: str) -> datetime | None:
        """The oldest open time a request may start at and still be answered from there (None:
        anywhere); ``REACH_MARGIN_CANDLES`` inside the exchange's own edge."""
        if self.reach is None:
            return None
        return shift_open(floor_open(now, timeframe), timeframe, -(self.reach - 1 - REACH_MARGIN_CANDLES))

    def describe_reach(self, timeframe: str) -> str | None:
        """How far back it serves, "the latest 720 1m candles" (None: the whole history)."""
        return None if self.reach is None else f"the latest {self.reach:,} {timeframe} candles"

    def beyond_reach(self, exchange: str, timeframe: str) -> str | None:
        """What a run says of older candles, "beyond what kraken serves: the latest 720 1m candles"
        (None: the whole history)."""
        reach = self.describe_reach(timeframe)
        return None if reach is None else f"beyond what {exchange} serves: {reach}"


PROFILES: dict[str, ExchangeProfile] = {
    profile.name: profile
    for profile in (
        # the first 1,000 candles from startTime on
        ExchangeProfile(
            "binance",
            "from since",
            page=1000,
            dialect=Binance(),
        ),
        # a window [since, since + limit), newest first: its latest 1,440 candles 300 a page, older ones
        # from the history endpoint 100 a page
        ExchangeProfile(
            "okx",
            "window",
            page=300,
            dialect=Okx(),
        ),
        # its latest 720 candles from since on; never older ones, whatever since asks
        ExchangeProfile(
            "kraken",
            "latest",
            page=720,
            reach=720,
            dialect=Kraken(),
        ),
        # up to 1,000 candles from start on, newest first
        ExchangeProfile(
            "bybit",
            "from since",
            page=1000,
            dialect=Bybit(),
        ),
        # a window [startAt, endAt) of at most 1,500 candles, newest first, no candle for a quiet one
        ExchangeProfile(
            "kucoin",
            "window",
            page=1500,
            dialect=Kucoin(),
        ),
        # a window [start, end) of at most 300 candles (ccxt's), newest first, no candle for a quiet one
        ExchangeProfile(
            "coinbase",
            "window",
            page=300,
            dialect=Coinbase(),
        ),
        # a window [from, to] of at most 1,000 candles; refuses a from more than 10,000 candles back
        ExchangeProfile(
            "gate",
            "window",
            page=1000,
            reach=10_000,
            dialect=Gate(),
        ),
    )
}
# read as the candles from since on, at ccxt's page size; not proven
UNVERIFIED = ExchangeProfile(
    "unverified",
    "from since",
    page=None,
    verified=False,
)


def profile_for(exchange_id: str) -> ExchangeProfile:
    """The profile of a ccxt exchange id: its class's, or that of the class it derives from
    (``binanceus`` speaks ``binance``); :data:`UNVERIFIED` for any other (or unknown) id."""
    exchange_class = getattr(ccxt, exchange_id) if exchange_id in ccxt.exchanges else None
    for cls in getattr(exchange_class, "__mro__", ()):
        if cls.__name__ in PROFILES:
            return PROFILES[cls.__name__]
    return UNVERIFIED
