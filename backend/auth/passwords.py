"""Argon2 password hashing, run off the event loop (hashing is deliberately slow), and a cap on how
many logins are checked at once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# verified against when the email is unknown, so both failures take the same time
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 8


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches; with no hash, spend the same time and say no."""
    try:
        return await asyncio.to_thread(_hasher.verify, password_hash or _DUMMY_HASH, password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


class VerifierBusyError(Exception):
    """Every verification slot stayed taken while this login waited for one."""


class PasswordVerifier:
    """Checks passwords ``concurrent`` at a time (each check keeps a few cores busy for tens of
    milliseconds), so a burst of logins cannot starve the rest of the process. A login waits up to
    ``wait_seconds`` for a slot, then gives up (:class:`VerifierBusyError`). Logins from trusted
    devices have one slot of their own, which a burst from elsewhere cannot take."""

    def __init__(self, *, concurrent: int, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(concurrent)
        self._trusted_slot = asyncio.Semaphore(1)

    @asynccontextmanager
    async def slot(self, *, trusted: bool) -> AsyncIterator[None]:
        """One verification slot, held while the block runs (:class:`VerifierBusyError` after
        ``wait_seconds`` without one)."""
        slots = self._trusted_slot if trusted else self._slots
        try:
            async with asyncio.timeout(self.wait_seconds):
                await slots.acquire()
        except TimeoutError:
            raise VerifierBusyError from None
        try:
            yield
        finally:
            slots.release()

    async def verify(self, password: str, password_hash: str | None, *, trusted: bool = False) -> bool:
        """:func:`verify_password` in a slot; :class:`VerifierBusyError` when none came free in time."""
        async with self.slot(trusted=trusted):
            return await verify_password(password, password_hash)


def generate_password() -> str:
    return secrets.token_urlsafe(18)
