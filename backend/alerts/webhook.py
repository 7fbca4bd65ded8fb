"""Delivering the outbox to ``ALERT_WEBHOOK_URL``: in order, once across processes, with backoff.

Every process runs :class:`WebhookDelivery` when the URL is set. It takes the oldest undelivered
message for a lease, posts it (the stored body plus ``notification_id``, which a receiver may use
to drop a repeat), and records the outcome. A receiver that is down or answers an error is tried
again after 5 s, then twice as long each time, at most ``ALERT_WEBHOOK_RETRY_MAX_SECONDS``; later
messages wait behind it, so they arrive in order. A message is given up when the receiver refuses
it (a 4xx other than 408 and 429: it will never take it) or after a day of failures.

The URL is a secret (Slack's and Discord's carry their token in the path): it is never logged,
stored or shown; errors are described without it.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import aiohttp
import msgspec

from backend.alerts import repository
from backend.alerts.failures import FailureStreak
from backend.alerts.repository import ClaimedNotification
from backend.backoff import Backoff
from backend.db.pool import Pool
from backend.settings import Settings
from backend.waiting import wait_for_event

logger = logging.getLogger(__name__)

POST_TIMEOUT_SECONDS = 10.0
LEASE_SECONDS = POST_TIMEOUT_SECONDS * 3  # a process that died mid-post lets go of the message after this
FIRST_RETRY_SECONDS = 5.0
GIVE_UP_AFTER_SECONDS = 24 * 3600
MIN_RECHECK_SECONDS = 0.05  # another process just took or delivered the head: look again this soon
RETRIED_STATUSES = frozenset({408, 429})  # 4xx answers that may succeed later
REDACTED = "<webhook>"


def redact(text: str, url: str) -> str:
    """``text`` without the webhook's URL, or its path, query or credentials."""
    parts = urlsplit(url)
    secrets = [url, url.rstrip("/"), parts.path if len(parts.path) > 1 else "", parts.query]
    if "@" in parts.netloc:
        secrets.append(parts.netloc.rsplit("@", 1)[0])
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class WebhookDelivery:
    """This process's share of delivering the outbox; ``wake()`` when this process queued a message."""

    def __init__(self, pool: Pool, *, settings: Settings) -> None:
        assert settings.alert_webhook_url is not None
        self._pool = pool
        self._url = settings.alert_webhook_url
        self._idle_seconds = float(settings.alert_evaluation_seconds)
        self._retry_max_seconds = float(settings.alert_webhook_retry_max_seconds)
        self._wake = asyncio.Event()
        self._receiver = FailureStreak(logger, "alert webhook delivery")
        self._database = FailureStreak(logger, "alert webhook outbox")
        self._backoff = Backoff(first_seconds=1.0, max_seconds=self._idle_seconds)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            while True:
                self._wake.clear()
                try:
                    delay = await self._deliver_due(session)
                    self._database.succeeded()
                    self._backoff.reset()
                except Exception as exc:
                    self._database.failed(exc=exc)
                    delay = self._backoff.next_delay()
                await wait_for_event(self._wake, delay)

    async def _deliver_due(self, session: aiohttp.ClientSession) -> float:
        """Post every message that is due, oldest first; the seconds until the next one may be."""
        while True:
            message = await repository.claim_next_notification(self._pool, lease_seconds=LEASE_SECONDS)
            if message is None:
                seconds = await repository.seconds_until_next_notification(self._pool)
                if seconds is None:
                    return self._idle_seconds
                return min(max(seconds, MIN_RECHECK_SECONDS), self._idle_seconds)
            await self._post(session, message)

    async def _post(self, session: aiohttp.ClientSession, message: ClaimedNotification) -> None:
        payload = msgspec.json.encode({**message.body, "notification_id": message.id})
        permanent = False
        try:
            async with session.post(
                self._url, data=payload, headers={"Content-Type": "application/json"}, allow_redirects=False
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, self._url)
        else:
            if 200 <= status < 300:
                await repository.mark_delivered(self._pool, notification_id=message.id)
                self._receiver.succeeded()
                return
            error = f"the receiver answered HTTP {status}"
            permanent = 400 <= status < 500 and status not in RETRIED_STATUSES
        if permanent or message.age_seconds >= GIVE_UP_AFTER_SECONDS:
            await repository.mark_given_up(self._pool, notification_id=message.id, error=error)
            logger.warning(
                "alert webhook: gave up the %s message %d after %d attempts (%s)",
                message.kind,
                message.id,
                message.attempts,
                error,
            )
            return
        retry_in = min(self._retry_max_seconds, FIRST_RETRY_SECONDS * 2.0 ** (message.attempts - 1))
        await repository.mark_failed(self._pool, notification_id=message.id, error=error, retry_in_seconds=retry_in)
        self._receiver.failed(detail=error)
