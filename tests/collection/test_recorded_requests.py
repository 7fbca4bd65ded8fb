"""Each fake is asked what ccxt's recorded real requests ask (ccxt's repository keeps them in
``ts/src/test/static/request/<id>.json``): the same inputs to ``fetch_ohlcv`` reach the fake at the
recorded path with the recorded parameters, in the recorded order, and ccxt reads the answer.
Binance's are its spot ones (``request/binance.json`` at commit
0094a48beb788f92ae50d788bf957e49c07dac6f): with since and limit, with neither, with since and until."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt.async_support as ccxt_async
import pytest

from tests.collection.conftest import FAKES, TEST_RATE_LIMIT_MS


@dataclass(frozen=True)
class Recorded:
    """One recorded fetchOHLCV call: ccxt's inputs and the URL ccxt sent to the real exchange."""

    inputs: tuple[Any, ...]
    url: str
    differs: dict[str, str]  # parameters today's ccxt sends otherwise, and what it sends


RECORDED = [
    (
        "binance",
        Recorded(
            ("BTC/USDT", "1m", 1699381234000, 5),
            "https://api.binance.com/api/v3/klines?interval=1m&limit=5&symbol=BTCUSDT&startTime=1699381234000",
            {},
        ),
    ),
    (
        "binance",
        Recorded(("BTC/USDT",), "https://api.binance.com/api/v3/klines?interval=1m&limit=500&symbol=BTCUSDT", {}),
    ),
    (
        "binance",
        Recorded(
            ("BTC/USDT", "1h", 1714921949000, None, {"until": 1725549149000}),
            "https://api.binance.com/api/v3/klines?interval=1h&limit=1000&symbol=BTCUSDT&startTime=1714921949000"
            "&endTime=1725549149000",
            {},
        ),
    ),
    (
        "okx",
        Recorded(
            ("BTC/USDT", "1h", 1699931781033, 500),
            "https://www.okx.com/api/v5/market/history-candles?instId=BTC-USDT&bar=1H&limit=300&before=1699931781032"
            "&after=1701011781033",
            {},
        ),
    ),
    (
        "kraken",
        Recorded(
            ("BTC/USDT", "1h", 1716523348000),
            "https://api.kraken.com/0/public/OHLC?pair=XBTUSDT&interval=60&since=1716523348",
            {"since": "1716519748"},  # ccxt now asks from one interval earlier: Kraken answers after `since`
        ),
    ),
    (
        "bybit",
        Recorded(
            ("BTC/USDT", "1m", 1704067200000, None, {"until": 1704067800000}),
            "https://api.bybit.com/v5/market/kline?symbol=BTCUSDT&start=1704067200000&limit=200&end=1704067800000"
            "&interval=1&category=spot",
            {},
        ),
    ),
    (
        "kucoin",
        Recorded(
            ("BTC/USDT", "1h", 1706628191000, 3),
            "https://api.kucoin.com/api/v1/market/candles?symbol=BTC-USDT&type=1hour&startAt=1706628191&endAt=1706638991",
            {},
        ),
    ),
    (
        "coinbase",
        Recorded(
            ("BTC/USDT", "1m", 1678012344389, 20),
            "https://api.coinbase.com/api/v3/brokerage/products/BTC-USDT/candles?granularity=ONE_MINUTE"
            "&start=1678012344&end=1678013544",
            {},
        ),
    ),
    (
        "gate",
        Recorded(
            ("BTC/USDT", "1d", 1540000000000),
            "https://api.gateio.ws/api/v4/spot/candlesticks?currency_pair=BTC_USDT&interval=1d&from=1540000000"
            "&to=1626313600",
            {},
        ),
    ),
]
# the recorded Coinbase call went to the authenticated copy of the endpoint; ccxt asks the public one
PUBLIC_PATHS = {"/api/v3/brokerage/products/": "/api/v3/brokerage/market/products/"}


def _path(url: str) -> str:
    path = urlsplit(url).path
    for recorded, public in PUBLIC_PATHS.items():
        path = path.replace(recorded, public)
    return path


@pytest.mark.parametrize(("exchange_id", "recorded"), RECORDED, ids=[exchange for exchange, _ in RECORDED])
async def test_ccxt_asks_the_fake_what_it_asked_the_real_exchange(exchange_id: str, recorded: Recorded) -> None:
    async with FAKES[exchange_id](["BTC/USDT", "ETH/USDT"]) as fake:
        options = {**fake.exchange_overrides()[exchange_id], "rateLimit": TEST_RATE_LIMIT_MS}
        exchange = getattr(ccxt_async, exchange_id)(options)
        try:
            await exchange.load_markets()
            fake.received.clear()
            candles = await exchange.fetch_ohlcv(*recorded.inputs)
        finally:
            await exchange.close()

    (sent,) = fake.received
    expected = [(name, recorded.differs.get(name, value)) for name, value in parse_qsl(urlsplit(recorded.url).query)]
    assert urlsplit(sent).path == _path(recorded.url)
    assert parse_qsl(urlsplit(sent).query) == expected
    assert candles
    assert all(len(candle) == 6 for candle in candles)
