"""Each fake answers in the shape of the answers ccxt's repository recorded from the real exchange
(``ts/src/test/static/response/<id>.json``; the excerpts, with the commit they come from, are in
``recorded/<id>.json``): asked what the recording asked, through ccxt, the fake's answer has the same
fields, the same kinds of values (strings stay strings, numbers numbers), times in the same unit
(seconds or milliseconds) and its candles in the same order (oldest or newest first).

Where one exchange's recordings disagree with each other about a field of the envelope, either kind
is the exchange's: ccxt's recorder wrote Bybit's ``retCode`` and ``time`` as strings in some answers
and as numbers in others. The Coinbase answers ccxt's repository records hold no candles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from backend.collection.timeframes import to_ms
from tests.collection.conftest import FAKES, NOW, TEST_RATE_LIMIT_MS
from tests.collection.fake_exchange import INTERVAL_MS

RECORDED = Path(__file__).parent / "recorded"
ASKED = ("fetchOHLCV", "fetchTime", "fetchCurrencies")  # what the fakes serve, of what ccxt recorded
CASES = [
    (path.stem, method)
    for path in sorted(RECORDED.glob("*.json"))
    for method in json.loads(path.read_text())
    if method in ASKED
]


def _recording(exchange_id: str) -> dict[str, Any]:
    recording: dict[str, Any] = json.loads((RECORDED / f"{exchange_id}.json").read_text())
    return recording


def kind(value: Any) -> str:
    """A scalar's kind as a client reads it: its JSON type, and for a whole number (or a string of digits)
    in the range of times since 2001, its unit."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" + _unit(value)
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str" + (_unit(int(value)) if value.isdigit() else "")
    raise TypeError(f"not a JSON scalar: {value!r}")


def _unit(number: int) -> str:
    if 10**9 <= number < 10**10:
        return " in s"
    if 10**12 <= number < 10**13:
        return " in ms"
    return ""


def differences(
    answer: Any, recorded: Any, path: str = "answer", either: dict[str, set[str]] | None = None
) -> list[str]:
    """Where ``answer`` is shaped otherwise than ``recorded``. A list of scalars is a row, read by
    position; any other list is a collection whose every element is shaped as the recorded ones.
    ``either``: kinds accepted for the top-level fields, whatever ``recorded`` has."""
    if isinstance(recorded, dict):
        if not isinstance(answer, dict):
            return [f"{path}: {type(answer).__name__}, recorded an object"]
        found = (
            [f"{path}: fields {sorted(answer)}, recorded {sorted(recorded)}"] if set(answer) != set(recorded) else []
        )
        for key in answer.keys() & recorded.keys():
            scalar = not isinstance(answer[key], dict | list)
            if scalar and kind(answer[key]) in (either or {}).get(key, set()):
                continue
            found += differences(answer[key], recorded[key], f"{path}.{key}")
        return found
    if isinstance(recorded, list):
        if not isinstance(answer, list):
            return [f"{path}: {type(answer).__name__}, recorded a list"]
        if recorded and not any(isinstance(value, dict | list) for value in recorded):
            if len(answer) != len(recorded):
                return [f"{path}: {len(answer)} values, recorded {len(recorded)}"]
            return [
                problem
                for i, pair in enumerate(zip(answer, recorded, strict=True))
                for problem in differences(*pair, f"{path}[{i}]")
            ]
        if bool(answer) != bool(recorded):
            return [f"{path}: {len(answer)} elements, recorded {len(recorded)}"]
        found = [
            problem for i, value in enumerate(answer) for problem in differences(value, recorded[0], f"{path}[{i}]")
        ]
        if _order(answer) != _order(recorded):
            found.append(f"{path}: {_order(answer)}, recorded {_order(recorded)}")
        return found
    if kind(answer) != kind(recorded):
        return [f"{path}: {answer!r} ({kind(answer)}), recorded {recorded!r} ({kind(recorded)})"]
    return []


def _order(rows: list[Any]) -> str | None:
    """``oldest first`` or ``newest first`` for rows led by a time, None for fewer than two or others."""
    times = [int(row[0]) for row in rows if isinstance(row, list) and row and kind(row[0]).endswith(("in s", "in ms"))]
    if len(times) < 2 or len(times) != len(rows):
        return None
    return "oldest first" if times == sorted(times) else "newest first"


def envelope_kinds(recording: dict[str, Any]) -> dict[str, set[str]]:
    """Per top-level field of the exchange's recorded answers, the kinds its scalar values take."""
    kinds: dict[str, set[str]] = {}
    for entry in recording.values():
        answer = entry.get("httpResponse") if isinstance(entry, dict) else None
        for field, value in answer.items() if isinstance(answer, dict) else ():
            if not isinstance(value, dict | list):
                kinds.setdefault(field, set()).add(kind(value))
    return kinds


def _spot(inputs: list[Any]) -> list[Any]:
    """The recorded inputs on the spot market (the fakes serve spot markets only)."""
    return [inputs[0].split(":")[0], *inputs[1:]] if inputs and isinstance(inputs[0], str) else inputs


async def _ask(exchange: Any, method: str, inputs: list[Any]) -> Any:
    if method == "fetchOHLCV":
        return await exchange.fetch_ohlcv(*_spot(inputs))
    if method == "fetchTime":
        return await exchange.fetch_time()
    return await exchange.fetch_currencies()


@pytest.mark.parametrize(("exchange_id", "method"), CASES)
async def test_the_fake_answers_in_the_shape_ccxt_recorded_from_the_exchange(exchange_id: str, method: str) -> None:
    recording = _recording(exchange_id)
    recorded = recording[method]
    since = recorded["input"][2] if method == "fetchOHLCV" and len(recorded["input"]) > 2 else None
    now_ms = since + 10 * INTERVAL_MS["1h"] if since is not None else to_ms(NOW)
    async with FAKES[exchange_id](["BTC/USDT", "ETH/USDT"], now_ms=lambda: now_ms) as fake:
        options = {**fake.exchange_overrides()[exchange_id], "rateLimit": TEST_RATE_LIMIT_MS}
        exchange = getattr(ccxt_async, exchange_id)(options)
        try:
            await exchange.load_markets()
            parsed = await _ask(exchange, method, recorded["input"])
            answer = json.loads(exchange.last_http_response)
        finally:
            await exchange.close()

    assert parsed
    assert differences(answer, recorded["httpResponse"], either=envelope_kinds(recording)) == []
