"""What a config asks for that it will not fully get: warnings shown with the config, never refusals.

Each rule looks at a config and answers the warnings it has (``ConfigWarning``: the field and a
sentence); :func:`config_warnings` gathers every rule's. A new concern is a new rule in ``RULES``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from backend.collection.profiles import profile_for
from backend.collection.timeframes import FIXED_STEPS
from backend.configs.schemas import Config, ConfigWarning

MONTH_STEP = timedelta(days=31)  # a calendar month at its longest


def backfill_beyond_reach(config: Config) -> list[ConfigWarning]:
    """``backfill_days`` reaches further back than the exchange serves for some timeframes."""
    profile = profile_for(config.exchange)
    if profile.reach is None:
        return []
    wanted = timedelta(days=config.backfill_days)
    short = [tf for tf in config.timeframes if wanted > (profile.reach - 1) * FIXED_STEPS.get(tf, MONTH_STEP)]
    if not short:
        return []
    reaches = "; ".join(f"{tf}: its latest {profile.reach:,} candles, {_span(profile.reach, tf)}" for tf in short)
    return [
        ConfigWarning(
            field="backfill_days",
            message=f"{config.backfill_days} days reach past what {config.exchange} serves ({reaches}): "
            "older candles are beyond reach and will not be collected",
        )
    ]


def _span(candles: int, timeframe: str) -> str:
    """How long ``candles`` candles of the timeframe last, in days or hours."""
    hours = (candles * FIXED_STEPS.get(timeframe, MONTH_STEP)).total_seconds() / 3600
    return f"{hours / 24:,.1f} days" if hours >= 48 else f"{hours:,.0f} hours"


RULES: tuple[Callable[[Config], list[ConfigWarning]], ...] = (backfill_beyond_reach,)


def config_warnings(config: Config) -> list[ConfigWarning]:
    """Every rule's warnings about ``config``, in the order of ``RULES``."""
    return [warning for rule in RULES for warning in rule(config)]
