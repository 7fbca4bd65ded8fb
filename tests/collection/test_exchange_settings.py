"""EXCHANGE_OVERRIDES and the run settings come from the environment; bad values stop start-up."""

from __future__ import annotations

import pytest

from backend.settings import SettingsError, load_settings


def test_exchange_overrides_are_parsed_from_json() -> None:
    raw = '{"binance": {"urls": {"api": {"public": "http://127.0.0.1:9000/api/v3"}}}}'

    settings = load_settings({"EXCHANGE_OVERRIDES": raw})

    assert settings.exchange_overrides == {"binance": {"urls": {"api": {"public": "http://127.0.0.1:9000/api/v3"}}}}


def test_exchange_overrides_default_to_none() -> None:
    assert load_settings({}).exchange_overrides == {}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"binance"', '{"binance": 3}'])
def test_invalid_exchange_overrides_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="^EXCHANGE_OVERRIDES:"):
        load_settings({"EXCHANGE_OVERRIDES": raw})


@pytest.mark.parametrize("variable", ["JOB_TIMEOUT_SECONDS", "RUN_HEARTBEAT_SECONDS", "REVERIFY_SECONDS"])
def test_run_timings_must_be_positive(variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        load_settings({variable: "0"})
