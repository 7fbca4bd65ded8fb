"""Device cookies: a browser or client that logged in before is known by the cookie it got then.

The scheme is OWASP's "Slow Down Online Guessing Attacks with Device Cookies". Every successful
login sets a cookie for that email: a random device id and an expiry, signed (HMAC-SHA256 with a
key derived from ``SECRET_KEY``) together with the email, so it is worth nothing for another
email and cannot be made or altered without the key. A login that presents a valid one is a
*trusted device* for :class:`backend.auth.throttle.LoginThrottle`: only its own failures count
against it, and guesses from anywhere else never lock it out.

Each email has a cookie of its own name (one browser may be trusted for several users), sent only
to the login route (``Path``), never readable by scripts (``HttpOnly``), never sent by another
site's page (``SameSite=Strict``), and in production only over HTTPS (``Secure``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from litestar.datastructures import Cookie

from backend.settings import Settings, signing_key

DEVICE_COOKIE_DAYS = 180
LOGIN_PATH = "/api/v1/auth/login"
COOKIE_PREFIX = "device_"


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class DeviceCookies:
    key: bytes
    secure: bool

    @classmethod
    def for_settings(cls, settings: Settings) -> DeviceCookies:
        key = hmac.new(signing_key(settings).encode(), b"login device cookies", hashlib.sha256).digest()
        return cls(key=key, secure=settings.is_production)

    def cookie_name(self, email: str) -> str:
        """The name of ``email``'s cookie (it tells nothing of the email)."""
        return COOKIE_PREFIX + _sign(self.key, f"name|{email}")[:20]

    def trusted_device(self, cookies: Mapping[str, str], email: str) -> str | None:
        """The device id of a valid, unexpired cookie for ``email`` among ``cookies``; else None."""
        value = cookies.get(self.cookie_name(email), "")
        expires, _, rest = value.partition(".")
        device, _, signature = rest.partition(".")
        if not (expires.isdigit() and device and signature):
            return None
        expected = _sign(self.key, f"device|{email}|{device}|{expires}")
        if not hmac.compare_digest(signature, expected) or int(expires) <= time.time():
            return None
        return device

    def new_cookie(self, email: str) -> Cookie:
        """A new device cookie for ``email`` (a new device id each successful login)."""
        device = secrets.token_urlsafe(16)
        expires = int(time.time()) + DEVICE_COOKIE_DAYS * 86_400
        signature = _sign(self.key, f"device|{email}|{device}|{expires}")
        return Cookie(
            key=self.cookie_name(email),
            value=f"{expires}.{device}.{signature}",
            path=LOGIN_PATH,
            max_age=DEVICE_COOKIE_DAYS * 86_400,
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )
