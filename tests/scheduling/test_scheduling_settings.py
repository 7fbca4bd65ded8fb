"""The scheduling settings: defaults, and start-up errors that name the variable."""

from __future__ import annotations

import pytest

from backend.settings import SettingsError, load_settings


def test_defaults_suit_one_small_dyno() -> None:
    settings = load_settings({})

    assert settings.scheduler_backend == "inprocess"
    assert settings.max_concurrent_jobs == 32
    assert settings.shutdown_grace_seconds == 15
    assert settings.stale_run_seconds == 60
    assert settings.log_retention_days == 30
    assert settings.interval_unit_seconds == 60
    assert settings.scheduler_tick_seconds == 2


def test_the_scheduler_can_be_switched_off() -> None:
    assert load_settings({"SCHEDULER_BACKEND": "off"}).scheduler_backend == "off"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"SCHEDULER_BACKEND": "celery"}, "SCHEDULER_BACKEND"),
        ({"MAX_CONCURRENT_JOBS": "0"}, "MAX_CONCURRENT_JOBS"),
        ({"LOG_RETENTION_DAYS": "many"}, "LOG_RETENTION_DAYS"),
        ({"STALE_RUN_SECONDS": "15", "RUN_HEARTBEAT_SECONDS": "10"}, "STALE_RUN_SECONDS"),
        ({"SCHEDULER_TICK_SECONDS": "45"}, "SCHEDULER_TICK_SECONDS"),
        ({"SHUTDOWN_GRACE_SECONDS": "-1"}, "SHUTDOWN_GRACE_SECONDS"),
    ],
)
def test_invalid_values_stop_start_up_naming_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        load_settings(environ)
