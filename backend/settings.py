"""Settings, read once from the environment into a typed object.

This is the only module that reads ``os.environ``. Every invalid value raises
:class:`SettingsError` whose message is one line that names the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from dotenv import dotenv_values

SchedulerBackend = Literal["inprocess", "arq", "off"]
LogFormat = Literal["text", "json"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SECRET_KEY_LENGTH = 32
MIN_METRICS_TOKEN_LENGTH = 24
WEAK_SECRET_KEYS = frozenset({"secret", "changeme", "change-me", "dev", "development", "password", "test"})
DOTENV_PATH = Path(".env")  # in the directory the command runs from, as env.example says
# keys that were ever written in this repository: never accepted, in any environment
PUBLISHED_SECRET_KEYS = frozenset({"dev-only-secret-key-not-for-production-use-0000"})
SECRET_KEY_HINT = "at least 32 random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105
# CANDLE_RETENTION_DAYS_<suffix> per timeframe (environment names ignore case, so the monthly 1M is 1MO)
CANDLE_RETENTION_SUFFIXES = {
    "1m": "1M",
    "3m": "3M",
    "5m": "5M",
    "15m": "15M",
    "30m": "30M",
    "1h": "1H",
    "2h": "2H",
    "4h": "4H",
    "6h": "6H",
    "8h": "8H",
    "12h": "12H",
    "1d": "1D",
    "3d": "3D",
    "1w": "1W",
    "1M": "1MO",
}


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    app_env: str = "development"
    database_url: str | None = None
    database_pool_min_size: int = 1
    database_pool_max_size: int = 5
    redis_url: str | None = None
    scheduler_backend: SchedulerBackend = "inprocess"
    secret_key: str | None = None  # unset: only `run` on a loopback address may supply one (.data/)
    access_token_expire_minutes: int = 60
    cors_allowed_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    admin_email: str | None = None
    admin_password: str | None = None
    login_max_failures_per_email_and_address: int = 5
    login_max_failures_per_address: int = 20
    login_max_failures_per_email: int = 50
    login_max_failures_per_device: int = 5
    login_failure_window_seconds: int = 900
    login_concurrent_password_checks: int = 1
    login_password_check_wait_seconds: int = 5
    forwarded_allow_ips: str = "127.0.0.1"
    http_max_header_bytes: int = 65_536
    http_header_timeout_seconds: int = 10
    exchange_overrides: Mapping[str, Any] = field(default_factory=dict)
    exchange_settle_seconds: Mapping[str, float] = field(default_factory=dict)  # exchange id -> seconds
    job_timeout_seconds: int = 600
    reverify_seconds: int = 20  # a re-verification answers within this, with where it stopped
    run_heartbeat_seconds: int = 10
    exchange_max_retries: int = 4
    exchange_retry_base_ms: int = 1000
    empty_range_max_age_hours: int = 24
    max_concurrent_jobs: int = 8
    shutdown_grace_seconds: int = 15
    stale_run_seconds: int = 60
    scheduler_heartbeat_seconds: int = 10
    scheduler_tick_seconds: int = 2
    interval_unit_seconds: int = 60
    log_retention_days: int = 30
    arq_queue_name: str = "arq:queue"
    candle_retention_days: Mapping[str, int] = field(default_factory=dict)  # timeframe -> days; absent: kept
    freshness_margin_seconds: int = 60
    metrics_token: str | None = None
    alert_webhook_url: str | None = field(default=None, repr=False)  # a secret: its path is the credential
    alert_evaluation_seconds: int = 60
    alert_failed_runs: int = 3
    alert_scheduler_silent_seconds: int = 120
    alert_exchange_paused_seconds: int = 600
    alert_missed_slots: int = 1
    alert_missed_slots_window_seconds: int = 900
    alert_reminder_seconds: int = 14400  # 0: no reminders
    alert_webhook_retry_max_seconds: int = 300

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (the process environment by default)."""
    env = os.environ if environ is None else environ
    app_env = _choice(env, "APP_ENV", ("development", "production", "test"), "development")
    settings = Settings(
        app_env=app_env,
        database_url=_database_url(env, "DATABASE_URL"),
        database_pool_min_size=_int(env, "DATABASE_POOL_MIN_SIZE", 1, minimum=0),
        database_pool_max_size=_int(env, "DATABASE_POOL_MAX_SIZE", 5, minimum=1),
        redis_url=_redis_url(env, "REDIS_URL"),
        scheduler_backend=_scheduler_backend(env),
        secret_key=_secret_key(env, production=app_env == "production"),
        access_token_expire_minutes=_int(env, "ACCESS_TOKEN_EXPIRE_MINUTES", 60, minimum=1),
        cors_allowed_origins=_list(env, "CORS_ALLOWED_ORIGINS"),
        log_level=_choice(env, "LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
        log_format="json" if _choice(env, "LOG_FORMAT", ("text", "json"), "text") == "json" else "text",
        admin_email=_optional(env, "ADMIN_EMAIL"),
        admin_password=_optional(env, "ADMIN_PASSWORD"),
        login_max_failures_per_email_and_address=_int(env, "LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS", 5, minimum=1),
        login_max_failures_per_address=_int(env, "LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1),
        login_max_failures_per_email=_int(env, "LOGIN_MAX_FAILURES_PER_EMAIL", 50, minimum=1),
        login_max_failures_per_device=_int(env, "LOGIN_MAX_FAILURES_PER_DEVICE", 5, minimum=1),
        login_failure_window_seconds=_int(env, "LOGIN_FAILURE_WINDOW_SECONDS", 900, minimum=1),
        login_concurrent_password_checks=_int(env, "LOGIN_CONCURRENT_PASSWORD_CHECKS", 1, minimum=1),
        login_password_check_wait_seconds=_int(env, "LOGIN_PASSWORD_CHECK_WAIT_SECONDS", 5, minimum=1),
        forwarded_allow_ips=_optional(env, "FORWARDED_ALLOW_IPS") or "127.0.0.1",
        http_max_header_bytes=_int(env, "HTTP_MAX_HEADER_BYTES", 65_536, minimum=1024),
        http_header_timeout_seconds=_int(env, "HTTP_HEADER_TIMEOUT_SECONDS", 10, minimum=1),
        exchange_overrides=_json_object(env, "EXCHANGE_OVERRIDES"),
        exchange_settle_seconds=_settle_seconds(env),
        job_timeout_seconds=_int(env, "JOB_TIMEOUT_SECONDS", 600, minimum=1),
        reverify_seconds=_int(env, "REVERIFY_SECONDS", 20, minimum=1),
        run_heartbeat_seconds=_int(env, "RUN_HEARTBEAT_SECONDS", 10, minimum=1),
        exchange_max_retries=_int(env, "EXCHANGE_MAX_RETRIES", 4, minimum=0),
        exchange_retry_base_ms=_int(env, "EXCHANGE_RETRY_BASE_MS", 1000, minimum=0),
        empty_range_max_age_hours=_int(env, "EMPTY_RANGE_MAX_AGE_HOURS", 24, minimum=1),
        max_concurrent_jobs=_int(env, "MAX_CONCURRENT_JOBS", 8, minimum=1),
        shutdown_grace_seconds=_int(env, "SHUTDOWN_GRACE_SECONDS", 15, minimum=0),
        stale_run_seconds=_int(env, "STALE_RUN_SECONDS", 60, minimum=1),
        scheduler_heartbeat_seconds=_int(env, "SCHEDULER_HEARTBEAT_SECONDS", 10, minimum=1),
        scheduler_tick_seconds=_int(env, "SCHEDULER_TICK_SECONDS", 2, minimum=1),
        interval_unit_seconds=_int(env, "INTERVAL_UNIT_SECONDS", 60, minimum=1),
        log_retention_days=_int(env, "LOG_RETENTION_DAYS", 30, minimum=1),
        arq_queue_name=_optional(env, "ARQ_QUEUE_NAME") or "arq:queue",
        candle_retention_days=_candle_retention_days(env),
        freshness_margin_seconds=_int(env, "FRESHNESS_MARGIN_SECONDS", 60, minimum=0),
        metrics_token=_metrics_token(env),
        alert_webhook_url=_webhook_url(env, "ALERT_WEBHOOK_URL"),
        alert_evaluation_seconds=_int(env, "ALERT_EVALUATION_SECONDS", 60, minimum=1),
        alert_failed_runs=_int(env, "ALERT_FAILED_RUNS", 3, minimum=1),
        alert_scheduler_silent_seconds=_int(env, "ALERT_SCHEDULER_SILENT_SECONDS", 120, minimum=1),
        alert_exchange_paused_seconds=_int(env, "ALERT_EXCHANGE_PAUSED_SECONDS", 600, minimum=0),
        alert_missed_slots=_int(env, "ALERT_MISSED_SLOTS", 1, minimum=1),
        alert_missed_slots_window_seconds=_int(env, "ALERT_MISSED_SLOTS_WINDOW_SECONDS", 900, minimum=60),
        alert_reminder_seconds=_int(env, "ALERT_REMINDER_SECONDS", 14400, minimum=0),
        alert_webhook_retry_max_seconds=_int(env, "ALERT_WEBHOOK_RETRY_MAX_SECONDS", 300, minimum=1),
    )
    if settings.database_pool_min_size > settings.database_pool_max_size:
        raise SettingsError("DATABASE_POOL_MIN_SIZE: must not exceed DATABASE_POOL_MAX_SIZE")
    if settings.is_production and settings.database_url is None:
        raise SettingsError("DATABASE_URL: required when APP_ENV=production")
    if settings.scheduler_backend == "arq" and settings.redis_url is None:
        raise SettingsError("REDIS_URL: required when SCHEDULER_BACKEND=arq")
    if settings.stale_run_seconds < 2 * settings.run_heartbeat_seconds:
        raise SettingsError("STALE_RUN_SECONDS: must be at least twice RUN_HEARTBEAT_SECONDS")
    if settings.alert_scheduler_silent_seconds < 2 * settings.scheduler_heartbeat_seconds:
        raise SettingsError("ALERT_SCHEDULER_SILENT_SECONDS: must be at least twice SCHEDULER_HEARTBEAT_SECONDS")
    if settings.scheduler_tick_seconds > 30:
        raise SettingsError(f"SCHEDULER_TICK_SECONDS: must be at most 30, got {settings.scheduler_tick_seconds}")
    return settings


def environment_with_dotenv(path: Path = DOTENV_PATH) -> dict[str, str]:
    """The process environment over the variables of ``path`` (a ``.env`` file) when it exists: a
    variable set in the real environment always wins. For the command line (``make run`` included)."""
    from_file = (
        {name: value for name, value in dotenv_values(path).items() if value is not None} if path.is_file() else {}
    )
    return {**from_file, **os.environ}


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _candle_retention_days(env: Mapping[str, str]) -> dict[str, int]:
    days = {
        timeframe: _int(env, f"CANDLE_RETENTION_DAYS_{suffix}", 0, minimum=1)
        for timeframe, suffix in CANDLE_RETENTION_SUFFIXES.items()
    }
    return {timeframe: value for timeframe, value in days.items() if value}


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str, *, upper: bool = False) -> str:
    raw = _optional(env, name)
    if raw is None:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in allowed:
        raise SettingsError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}")
    return value


def _scheduler_backend(env: Mapping[str, str]) -> SchedulerBackend:
    backends: tuple[SchedulerBackend, ...] = ("inprocess", "arq", "off")
    value = _choice(env, "SCHEDULER_BACKEND", backends, "inprocess")
    return next(backend for backend in backends if backend == value)


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _optional(env, name)
    if raw is None:
        return ()
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _settle_seconds(env: Mapping[str, str]) -> dict[str, float]:
    """EXCHANGE_SETTLE_SECONDS: a JSON object of exchange ids and seconds (0 to 600)."""
    name = "EXCHANGE_SETTLE_SECONDS"
    raw = _optional(env, name)
    try:
        value = json.loads(raw) if raw is not None else {}
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name}: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{name}: expected a JSON object mapping exchange ids to seconds")
    for key, seconds in value.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
            raise SettingsError(f"{name}: the settle delay of {key!r} must be a number of seconds from 0 to 600")
    return {key: float(seconds) for key, seconds in value.items()}


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    """A JSON object whose keys are ccxt exchange ids and values objects of constructor options."""
    raw = _optional(env, name)
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name}: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{name}: expected a JSON object mapping exchange ids to ccxt options")
    for key, options in value.items():
        if not isinstance(options, dict):
            raise SettingsError(f"{name}: the options of {key!r} must be a JSON object")
    return value


def _database_url(env: Mapping[str, str], name: str) -> str | None:
    """Accept Heroku's ``postgres://`` scheme; keep the query (``sslmode``) as it is."""
    raw = _optional(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme == "postgres":
        raw = "postgresql" + raw[len("postgres") :]
    elif parts.scheme != "postgresql":
        raise SettingsError(f"{name}: expected a postgresql:// or postgres:// URL")
    sslmode = parse_qs(parts.query).get("sslmode", [None])[0]
    allowed = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
    if sslmode is not None and sslmode not in allowed:
        raise SettingsError(f"{name}: unknown sslmode {sslmode!r}")
    return raw


def _redis_url(env: Mapping[str, str], name: str) -> str | None:
    raw = _optional(env, name)
    if raw is None:
        return None
    if urlsplit(raw).scheme not in {"redis", "rediss"}:
        raise SettingsError(f"{name}: expected a redis:// or rediss:// URL")
    return raw


def _metrics_token(env: Mapping[str, str]) -> str | None:
    """A bearer token that reads ``/metrics`` only; long enough not to be guessed."""
    raw = _optional(env, "METRICS_TOKEN")
    if raw is not None and (len(raw) < MIN_METRICS_TOKEN_LENGTH or len(set(raw)) < 8):
        raise SettingsError(
            f"METRICS_TOKEN: too weak, use at least {MIN_METRICS_TOKEN_LENGTH} random characters "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return raw


def _webhook_url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) URL with a host. The message of an invalid one never repeats it: it is a secret."""
    raw = _optional(env, name)
    if raw is None:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise SettingsError(f"{name}: not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(f"{name}: expected an http:// or https:// URL with a host")
    return raw


def _secret_key(env: Mapping[str, str], *, production: bool) -> str | None:
    raw = _optional(env, "SECRET_KEY")
    if raw is None:
        if production:
            raise SettingsError(f"SECRET_KEY: required when APP_ENV=production ({SECRET_KEY_HINT})")
        return None
    if raw in PUBLISHED_SECRET_KEYS:
        raise SettingsError(f"SECRET_KEY: this key is published, anyone could sign tokens with it ({SECRET_KEY_HINT})")
    weak = raw.lower() in WEAK_SECRET_KEYS or len(set(raw)) < 8
    if production and (len(raw) < MIN_SECRET_KEY_LENGTH or weak):
        raise SettingsError(f"SECRET_KEY: too weak, use {SECRET_KEY_HINT}")
    return raw


def signing_key(settings: Settings) -> str:
    """The key that signs login tokens; without one, a :class:`SettingsError` naming SECRET_KEY."""
    if settings.secret_key is None:
        raise SettingsError(f"SECRET_KEY: required to sign login tokens ({SECRET_KEY_HINT})")
    return settings.secret_key
