"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backend.app import create_app
from backend.settings import SettingsError, load_settings

STRONG_KEY = "k3Y-" + "abcdefghijklmnopqrstuvwxyz0123456789"


def test_defaults_without_environment() -> None:
    settings = load_settings({})

    assert settings.database_url is None
    assert settings.database_pool_max_size == 5
    assert settings.scheduler_backend == "inprocess"
    assert settings.secret_key is None
    assert not settings.is_production


def test_heroku_postgres_scheme_becomes_postgresql_and_keeps_sslmode() -> None:
    settings = load_settings({"DATABASE_URL": "postgres://u:p@db.example.com:5432/d?sslmode=require"})

    assert settings.database_url == "postgresql://u:p@db.example.com:5432/d?sslmode=require"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://x/y?sslmode=sometimes"}, "DATABASE_URL"),
        ({"DATABASE_POOL_MAX_SIZE": "five"}, "DATABASE_POOL_MAX_SIZE"),
        ({"DATABASE_POOL_MAX_SIZE": "0"}, "DATABASE_POOL_MAX_SIZE"),
        ({"DATABASE_POOL_MIN_SIZE": "9"}, "DATABASE_POOL_MIN_SIZE"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"SCHEDULER_BACKEND": "celery"}, "SCHEDULER_BACKEND"),
        ({"SCHEDULER_BACKEND": "arq"}, "REDIS_URL"),
        ({"ACCESS_TOKEN_EXPIRE_MINUTES": "-1"}, "ACCESS_TOKEN_EXPIRE_MINUTES"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"FRESHNESS_MARGIN_SECONDS": "-5"}, "FRESHNESS_MARGIN_SECONDS"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"METRICS_TOKEN": "a" * 40}, "METRICS_TOKEN"),
        ({"LOGIN_MAX_FAILURES_PER_DEVICE": "0"}, "LOGIN_MAX_FAILURES_PER_DEVICE"),
        ({"HTTP_MAX_HEADER_BYTES": "100"}, "HTTP_MAX_HEADER_BYTES"),
        ({"HTTP_HEADER_TIMEOUT_SECONDS": "0"}, "HTTP_HEADER_TIMEOUT_SECONDS"),
        ({"LOGIN_CONCURRENT_PASSWORD_CHECKS": "0"}, "LOGIN_CONCURRENT_PASSWORD_CHECKS"),
        ({"LOGIN_PASSWORD_CHECK_WAIT_SECONDS": "soon"}, "LOGIN_PASSWORD_CHECK_WAIT_SECONDS"),
    ],
)
def test_invalid_value_names_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        load_settings(environ)


def test_production_refuses_to_start_without_secret_key() -> None:
    with pytest.raises(SettingsError, match="^SECRET_KEY: required"):
        load_settings({"APP_ENV": "production", "DATABASE_URL": "postgresql://x/y"})


@pytest.mark.parametrize("weak", ["secret", "changeme", "short-key", "a" * 40])
def test_production_refuses_a_weak_secret_key(weak: str) -> None:
    with pytest.raises(SettingsError, match="^SECRET_KEY: too weak"):
        load_settings({"APP_ENV": "production", "DATABASE_URL": "postgresql://x/y", "SECRET_KEY": weak})


@pytest.mark.parametrize("app_env", ["development", "test", "production"])
def test_a_key_once_written_in_the_repository_is_refused_everywhere(app_env: str) -> None:
    environ = {"APP_ENV": app_env, "DATABASE_URL": "postgresql://x/y"}

    with pytest.raises(SettingsError, match="^SECRET_KEY: this key is published"):
        load_settings({**environ, "SECRET_KEY": "dev-only-secret-key-not-for-production-use-0000"})


def test_an_app_without_a_secret_key_is_never_built() -> None:
    with pytest.raises(SettingsError, match="^SECRET_KEY: required to sign login tokens"):
        create_app(load_settings({"DATABASE_URL": "postgresql://x/y"}))


def test_production_accepts_a_strong_secret_key() -> None:
    settings = load_settings({"APP_ENV": "production", "DATABASE_URL": "postgres://x/y", "SECRET_KEY": STRONG_KEY})

    assert settings.is_production
    assert settings.secret_key == STRONG_KEY


@pytest.mark.parametrize(("raw", "expected"), [(None, "text"), ("json", "json"), ("JSON", "json"), ("text", "text")])
def test_log_format_is_text_or_json(raw: str | None, expected: str) -> None:
    assert load_settings({} if raw is None else {"LOG_FORMAT": raw}).log_format == expected


def test_cors_origins_are_a_comma_separated_list() -> None:
    settings = load_settings({"CORS_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com"})

    assert settings.cors_allowed_origins == ("https://a.example.com", "https://b.example.com")


def test_invalid_setting_stops_the_command_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend", "migrate"],
        env={"DATABASE_POOL_MAX_SIZE": "lots", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_POOL_MAX_SIZE: expected a whole number, got 'lots'"
    ]


def test_candle_retention_is_off_by_default_and_set_per_timeframe() -> None:
    assert load_settings({}).candle_retention_days == {}

    settings = load_settings({"CANDLE_RETENTION_DAYS_1M": "30", "CANDLE_RETENTION_DAYS_1MO": "3650"})

    assert settings.candle_retention_days == {"1m": 30, "1M": 3650}


def test_candle_retention_of_zero_days_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="^CANDLE_RETENTION_DAYS_1H:"):
        load_settings({"CANDLE_RETENTION_DAYS_1H": "0"})


def test_metrics_have_no_scrape_token_and_a_minute_of_freshness_margin_by_default() -> None:
    settings = load_settings({})

    assert (settings.metrics_token, settings.freshness_margin_seconds) == (None, 60)


def test_a_strong_metrics_token_is_taken() -> None:
    assert load_settings({"METRICS_TOKEN": STRONG_KEY}).metrics_token == STRONG_KEY


def test_exchange_settle_seconds_are_read_per_exchange() -> None:
    settings = load_settings({"EXCHANGE_SETTLE_SECONDS": '{"kraken": 10, "gate": 2.5}'})

    assert settings.exchange_settle_seconds == {"kraken": 10.0, "gate": 2.5}
    assert load_settings({}).exchange_settle_seconds == {}


@pytest.mark.parametrize("raw", ['{"kraken": -1}', '{"kraken": "10"}', '{"kraken": 601}', "[10]", "{"])
def test_an_exchange_settle_delay_that_is_not_0_to_600_seconds_stops_start_up(raw: str) -> None:
    with pytest.raises(SettingsError, match="EXCHANGE_SETTLE_SECONDS"):
        load_settings({"EXCHANGE_SETTLE_SECONDS": raw})
