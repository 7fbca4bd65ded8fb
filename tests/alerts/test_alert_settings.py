"""The alert settings: sensible defaults, one-line errors naming the variable, a webhook URL kept secret."""

from __future__ import annotations

import pytest

from backend.settings import SettingsError, load_settings

SECRET_URL = "https://hooks.slack.com/services/T0001/B0001/very-secret-token"


def test_alerts_have_defaults_and_no_webhook() -> None:
    settings = load_settings({})

    assert settings.alert_webhook_url is None
    assert settings.alert_evaluation_seconds == 60
    assert settings.alert_failed_runs == 3
    assert settings.alert_scheduler_silent_seconds == 120
    assert settings.alert_exchange_paused_seconds == 600
    assert (settings.alert_missed_slots, settings.alert_missed_slots_window_seconds) == (1, 900)
    assert settings.alert_reminder_seconds == 4 * 3600


def test_thresholds_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "ALERT_WEBHOOK_URL": SECRET_URL,
            "ALERT_FAILED_RUNS": "5",
            "ALERT_REMINDER_SECONDS": "0",
            "ALERT_EXCHANGE_PAUSED_SECONDS": "1800",
        }
    )

    assert settings.alert_webhook_url == SECRET_URL
    assert (settings.alert_failed_runs, settings.alert_reminder_seconds) == (5, 0)
    assert settings.alert_exchange_paused_seconds == 1800


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"ALERT_FAILED_RUNS": "0"}, "ALERT_FAILED_RUNS"),
        ({"ALERT_EVALUATION_SECONDS": "a minute"}, "ALERT_EVALUATION_SECONDS"),
        ({"ALERT_REMINDER_SECONDS": "-1"}, "ALERT_REMINDER_SECONDS"),
        ({"ALERT_MISSED_SLOTS_WINDOW_SECONDS": "30"}, "ALERT_MISSED_SLOTS_WINDOW_SECONDS"),
        ({"ALERT_SCHEDULER_SILENT_SECONDS": "15"}, "ALERT_SCHEDULER_SILENT_SECONDS"),
        ({"ALERT_WEBHOOK_RETRY_MAX_SECONDS": "0"}, "ALERT_WEBHOOK_RETRY_MAX_SECONDS"),
    ],
)
def test_an_invalid_threshold_names_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        load_settings(environ)


@pytest.mark.parametrize(
    "url",
    [
        "hooks.slack.com/services/T0001/B0001/very-secret-token",
        "ftp://hooks.slack.com/services/T0001/B0001/very-secret-token",
        "https:///services/T0001/B0001/very-secret-token",
        "https://hooks.slack.com:port/services/T0001/B0001/very-secret-token",
    ],
)
def test_an_invalid_webhook_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(SettingsError, match="^ALERT_WEBHOOK_URL:") as refused:
        load_settings({"ALERT_WEBHOOK_URL": url})

    assert "very-secret-token" not in str(refused.value)


def test_the_webhook_url_is_not_in_the_settings_repr() -> None:
    assert "very-secret-token" not in repr(load_settings({"ALERT_WEBHOOK_URL": SECRET_URL}))
