"""Request and response bodies of the config routes, with their validation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import ccxt
import msgspec

Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
KNOWN_EXCHANGES = frozenset(ccxt.exchanges)

Symbol = Annotated[
    str,
    msgspec.Meta(
        # "(?!\n)": Python's "$" also matches before a final newline, ECMA-262's (the schema's) does not
        pattern=r"^[A-Za-z0-9]{1,20}/[A-Za-z0-9]{1,20}$(?!\n)",
        description="BASE/QUOTE as ccxt writes it, e.g. BTC/USDT (upper-cased on save)",
        examples=["BTC/USDT"],
    ),
]
ExchangeId = Annotated[
    str,
    msgspec.Meta(
        description="A ccxt exchange id (lower case)",
        examples=["binance"],
        extra_json_schema={"enum": sorted(KNOWN_EXCHANGES)},
    ),
]
Timeframes = Annotated[
    list[Timeframe],
    msgspec.Meta(
        min_length=1,
        description="Distinct candle timeframes",
        examples=[["1m", "1h"]],
        extra_json_schema={"uniqueItems": True},
    ),
]
IntervalMinutes = Annotated[int, msgspec.Meta(ge=1, le=1440, description="Minutes between runs")]
Description = Annotated[str, msgspec.Meta(max_length=200)]
BackfillDays = Annotated[
    int, msgspec.Meta(ge=1, le=3650, description="Days of history the first run fetches and gap repair watches")
]


def _normalize_symbol(symbol: str) -> str:
    return symbol.upper()


def _check_exchange(exchange: str) -> None:
    if exchange not in KNOWN_EXCHANGES:
        hint = f" (ids are lower case: {exchange.lower()!r})" if exchange.lower() in KNOWN_EXCHANGES else ""
        raise ValueError(f"exchange: {exchange[:40]!r} is not an exchange ccxt knows{hint}")


def _check_timeframes(timeframes: list[Timeframe]) -> None:
    if len(set(timeframes)) != len(timeframes):
        raise ValueError("timeframes: must not contain duplicates")


class ConfigWarning(msgspec.Struct, kw_only=True, frozen=True):
    """Something the config asks for that it will not fully get (``backend.configs.warnings``)."""

    field: str  # the config's field it is about, e.g. "backfill_days"
    message: str


class Config(msgspec.Struct, kw_only=True):
    """A data-collection config as the API shows it."""

    id: int
    symbol: str
    exchange: str
    timeframes: list[str]
    interval_minutes: int
    enabled: bool
    job_id: str
    created_at: datetime
    updated_at: datetime | None = None
    description: str | None = None
    created_by: int | None = None
    backfill_days: int = 7
    next_run_at: datetime | None = None  # the next slot of the schedule; null while disabled
    last_run_at: datetime | None = None  # start of the latest run
    # whether the exchange's answers are proven by tests; an unverified one's answers never confirm,
    # by themselves, that a stretch had no trades or where its history begins
    exchange_verified: bool = True
    warnings: list[ConfigWarning] = msgspec.field(default_factory=list)


class TriggerAccepted(msgspec.Struct, kw_only=True):
    """``POST /configs/{id}/trigger``: a message, the config_id, and the run to follow."""

    message: str
    config_id: int
    run_id: int  # the execution log of this run: GET /execution-logs/{run_id}
    arq_job_id: str | None = None  # the worker's job when SCHEDULER_BACKEND=arq


class ConfigCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    symbol: Symbol
    timeframes: Timeframes
    interval_minutes: IntervalMinutes
    exchange: ExchangeId = "binance"
    enabled: bool = True
    description: Description | None = None
    backfill_days: BackfillDays = 7

    def __post_init__(self) -> None:
        self.symbol = _normalize_symbol(self.symbol)
        _check_exchange(self.exchange)
        _check_timeframes(self.timeframes)


class ConfigUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Partial update: only the fields sent change."""

    symbol: Symbol | msgspec.UnsetType = msgspec.UNSET
    exchange: ExchangeId | msgspec.UnsetType = msgspec.UNSET
    timeframes: Timeframes | msgspec.UnsetType = msgspec.UNSET
    interval_minutes: IntervalMinutes | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    backfill_days: BackfillDays | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if self.symbol is not msgspec.UNSET:
            self.symbol = _normalize_symbol(self.symbol)
        if self.exchange is not msgspec.UNSET:
            _check_exchange(self.exchange)
        if self.timeframes is not msgspec.UNSET:
            _check_timeframes(self.timeframes)

    def changes(self) -> dict[str, object]:
        """The fields the client sent, by column name."""
        return {name: value for name in self.__struct_fields__ if (value := getattr(self, name)) is not msgspec.UNSET}
