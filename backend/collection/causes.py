"""A failure in a few plain words: what an operator reads first, before the exception chain.

``cannot reach api.binance.com: name not resolved`` instead of ``binance GET https://…/exchangeInfo:
ClientConnectorDNSError: Cannot connect to host … [Name or service not known]: gaierror: [Errno -2] …``.
The words name the host or the exchange and what went wrong, never a URL with its query, so every
timeframe that failed the same way has the same cause.
"""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Iterator

import aiohttp
import ccxt

MAX_CAUSE_CHARS = 160
# ccxt's message for an HTTP error: "<exchange> <METHOD> <url> <status> <reason> <body>"
HTTP_ERROR = re.compile(r"^\S+ [A-Z]+ \S+ (?P<status>\d{3})\b")
# ccxt's message for an error the exchange wrote in its answer: "<exchange> <JSON body>"
JSON_ANSWER = re.compile(r"^\S+ (?P<body>\{.*\})$", re.DOTALL)
MESSAGE_KEYS = ("msg", "message", "error_message", "errorMessage", "error", "retMsg", "sMsg")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^\s/@]*@)?(?P<host>[^\s/:?#]+)\S*", re.IGNORECASE)
CONNECTION_PROBLEMS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _unreachable(exc: BaseException) -> str | None:
    """Why the host could not be reached, when a connection failure is in the chain."""
    for item in _chain(exc):
        if isinstance(item, aiohttp.ClientConnectorDNSError):
            return f"cannot reach {item.host}: name not resolved"
        if isinstance(item, aiohttp.ClientConnectorCertificateError | aiohttp.ClientConnectorSSLError):
            return f"cannot reach {item.host}: its TLS certificate or handshake was refused"
        if isinstance(item, aiohttp.ClientConnectorError):
            problem = CONNECTION_PROBLEMS.get(item.os_error.errno or 0) or item.os_error.strerror or "connection failed"
            return f"cannot reach {item.host}: {problem}"
        if isinstance(item, aiohttp.ServerDisconnectedError):
            return "the exchange closed the connection before answering"
    return None


def _said_in_answer(text: str) -> str | None:
    """The message an exchange wrote in its JSON error answer (``{"code": -1120, "msg": "Invalid interval."}``)."""
    match = JSON_ANSWER.match(text)
    if match is None:
        return None
    try:
        body = json.loads(match["body"])
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    return next((body[key] for key in MESSAGE_KEYS if isinstance(body.get(key), str) and body[key]), None)


def _one_line(text: str) -> str:
    """``text`` on one line, URLs reduced to their host, at most ``MAX_CAUSE_CHARS`` characters."""
    line = URL.sub(lambda match: match["host"], " ".join(text.split()))
    return line if len(line) <= MAX_CAUSE_CHARS else line[: MAX_CAUSE_CHARS - 1].rstrip() + "…"


def plain_cause(exc: BaseException, *, exchange: str) -> str:
    """One line saying why ``exc`` happened, for a run on ``exchange`` (a ccxt id)."""
    if (unreachable := _unreachable(exc)) is not None:
        return unreachable
    if isinstance(exc, ccxt.RequestTimeout | TimeoutError):
        return f"{exchange} did not answer in time"
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return f"{exchange} is limiting requests (rate limit)"
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return f"{exchange} refused the credentials"
    if isinstance(exc, ccxt.OnMaintenance):
        return f"{exchange} is under maintenance"
    status = HTTP_ERROR.match(str(exc))
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return f"{exchange} is unavailable" + (f" (HTTP {status['status']})" if status else "")
    if status is not None:
        return f"{exchange} answered HTTP {status['status']}"
    if (said := _said_in_answer(str(exc))) is not None:
        return _one_line(f"{exchange} says: {said}")
    return _one_line(str(exc)) or type(exc).__name__
