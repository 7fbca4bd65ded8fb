"""Shared exchange clients: options from EXCHANGE_OVERRIDES, markets, and the exchange-wide pause.

Through real ccxt against the fakes, on every fake where the behaviour is the exchange's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import ccxt
import pytest

from backend.collection.collector import Collector
from backend.collection.exchanges import THROTTLED, ExchangeClients, ExchangePause, deep_merge
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import EXCHANGES, Clock, NewConfig
from tests.collection.fake_binance import FakeBinance
from tests.collection.fake_exchange import FakeExchange


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_overrides_merge_deeply_over_the_defaults() -> None:
    merged = deep_merge(
        {"enableRateLimit": True, "options": {"a": 1, "b": {"c": 2}}},
        {"options": {"b": {"d": 3}}, "timeout": 500},
    )

    assert merged == {"enableRateLimit": True, "options": {"a": 1, "b": {"c": 2, "d": 3}}, "timeout": 500}


def test_one_client_per_exchange_with_rate_limiting_and_the_overrides(exchanges: ExchangeClients) -> None:
    client = exchanges.get("binance")

    assert exchanges.get("binance") is client
    assert client.ccxt.enableRateLimit is True
    assert client.ccxt.urls["api"]["public"].startswith("http://127.0.0.1:")


def test_unknown_exchange_is_not_supported(exchanges: ExchangeClients) -> None:
    with pytest.raises(ccxt.NotSupported, match="nowhere"):
        exchanges.get("nowhere")


async def test_markets_load_once_for_every_run(exchanges: ExchangeClients, fake: FakeBinance) -> None:
    client = exchanges.get("binance")

    await client.ensure_markets()
    fake.symbols.add("SOL/USDT")
    await client.ensure_markets()

    assert "BTC/USDT" in client.ccxt.markets
    assert "SOL/USDT" not in client.ccxt.markets


async def test_rate_limit_answer_pauses_the_whole_exchange_for_retry_after(
    exchanges: ExchangeClients, fake: FakeBinance
) -> None:
    client = exchanges.get("binance")
    await client.ensure_markets()
    fake.fail_candles(429, retry_after=30)

    with pytest.raises(ccxt.DDoSProtection):
        await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)

    assert 29 < exchanges.get("binance").pause.remaining_seconds <= 30


def test_repeated_bans_get_longer_until_an_answer_succeeds() -> None:
    pause = ExchangePause(FakeMonotonic())

    first = pause.ban(retry_after=10)
    second = pause.ban(retry_after=10)
    pause.clear_strikes()
    after_success = pause.ban(retry_after=10)

    assert (first, second, after_success) == (10, 20, 10)


def test_bans_far_apart_do_not_escalate() -> None:
    clock = FakeMonotonic()
    pause = ExchangePause(clock)

    pause.ban(retry_after=10)
    clock.now += 10 + 601
    second = pause.ban(retry_after=10)

    assert second == 10


def test_rate_limits_do_not_count_toward_a_ban() -> None:
    pause = ExchangePause(FakeMonotonic())

    for _ in range(10):
        pause.throttle(retry_after=None)
    ban = pause.ban(retry_after=1)

    assert ban == 1


def test_rate_limit_without_retry_after_pauses_one_second_each_time() -> None:
    pause = ExchangePause(FakeMonotonic())

    assert [pause.throttle(retry_after=None) for _ in range(3)] == [1.0, 1.0, 1.0]


def test_escalated_ban_is_capped_at_ten_minutes() -> None:
    pause = ExchangePause(FakeMonotonic())

    bans = [pause.ban(retry_after=None) for _ in range(6)]

    assert bans == [60, 120, 240, 480, 600, 600]
    assert pause.remaining_seconds == 600


def test_retry_after_longer_than_the_cap_is_honoured() -> None:
    pause = ExchangePause(FakeMonotonic())

    assert (pause.ban(retry_after=1200), pause.throttle(retry_after=3600)) == (1200, 3600)
    assert pause.remaining_seconds == 3600


async def test_error_messages_never_show_credentials() -> None:
    clients = ExchangeClients({"binance": {"apiKey": "key-1234567890", "secret": "s3cr3t-value"}})
    client = clients.get("binance")
    await clients.close()
    error = ccxt.ExchangeError("binance GET http://user:pw@proxy:8080/x?k=key-1234567890 failed: s3cr3t-value\nline2")

    message = client.safe_message(error)

    assert "key-1234567890" not in message
    assert "s3cr3t-value" not in message
    assert "user:pw" not in message
    assert "\n" not in message


EMPTY_MARKETS = {
    "binance": '{"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [], "symbols": []}',
    "okx": '{"code": "0", "msg": "", "data": []}',
    "kraken": '{"error": [], "result": {}}',
    "bybit": '{"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": []}, "retExtInfo": {}}',
    "kucoin": '{"code": "200000", "data": []}',
    "coinbase": '{"products": [], "num_products": 0}',
    "gate": "[]",
}


@pytest.mark.parametrize("exchange_id", EXCHANGES)
@pytest.mark.parametrize("answer", ["{}", "empty list"])
async def test_a_failed_or_empty_market_load_is_not_kept(
    exchanges: ExchangeClients, fake: FakeExchange, exchange_id: str, answer: str
) -> None:
    client = exchanges.get(exchange_id)
    fake.answer_markets("{}" if answer == "{}" else EMPTY_MARKETS[exchange_id])

    with pytest.raises(ccxt.BadResponse):
        await client.ensure_markets()
    await client.ensure_markets()

    assert "BTC/USDT" in client.ccxt.markets
    assert fake.market_requests == 2


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_run_after_an_empty_market_list_loads_the_markets_again(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, exchange_id: str
) -> None:
    config_id = await new_config()
    fake.answer_markets(EMPTY_MARKETS[exchange_id], times=100)
    first = await collector.collect_now(config_id)
    fake.clear_failures()

    second = await collector.collect_now(config_id)

    assert first is not None
    assert (first.status, first.error_type) == ("failed", "BadResponse")
    assert second is not None
    assert (second.status, second.records_collected) == ("success", 7 * 24)


async def test_unknown_symbol_reloads_markets_older_than_five_minutes_once(
    collection_settings: Settings, fake: FakeExchange
) -> None:
    clock = FakeMonotonic()
    clients = ExchangeClients(collection_settings.exchange_overrides, clock=clock)
    client = clients.get("binance")
    await client.ensure_markets()
    fake.symbols.add("SOL/USDT")

    clock.now += 60
    with pytest.raises(ccxt.BadSymbol):
        await client.check_can_fetch("SOL/USDT", "1h")
    requests_within_five_minutes = fake.market_requests
    clock.now += 300
    await client.check_can_fetch("SOL/USDT", "1h")
    with pytest.raises(ccxt.BadSymbol):
        await client.check_can_fetch("XRP/USDT", "1h")
    await clients.close()

    assert requests_within_five_minutes == 1
    assert fake.market_requests == 2


@pytest.fixture
async def still_clients(collection_settings: Settings) -> AsyncIterator[ExchangeClients]:
    """Exchange clients whose pauses are measured on a clock that does not move."""
    clients = ExchangeClients(collection_settings.exchange_overrides, clock=FakeMonotonic())
    yield clients
    await clients.close()


async def test_rate_limit_answers_do_not_lengthen_a_later_ban(
    still_clients: ExchangeClients, fake: FakeExchange
) -> None:
    client = still_clients.get("binance")
    await client.ensure_markets()
    fake.fail_candles(429, retry_after=0, times=10)
    fake.fail_candles(418, retry_after=1)

    for _ in range(11):
        with pytest.raises(ccxt.DDoSProtection):
            await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)

    assert client.pause.remaining_seconds == 1


@pytest.mark.parametrize("exchange_id", EXCHANGES)
@pytest.mark.parametrize("status", [400, 503])
async def test_rate_limit_signalled_in_the_body_pauses_the_exchange(
    still_clients: ExchangeClients, fake: FakeExchange, clock: Clock, exchange_id: str, status: int
) -> None:
    client = still_clients.get(exchange_id)
    await client.ensure_markets()
    fake.rate_limit_candles(status)

    with pytest.raises(THROTTLED):  # Kraken's "EAPI:Rate limit exceeded" is ccxt's DDoSProtection
        await client.fetch_ohlcv("BTC/USDT", "1h", clock.ms() - 10 * 3_600_000, 10)

    assert client.pause.remaining_seconds == 1


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_run_rides_out_rate_limits_signalled_in_the_body(
    collector: Collector, new_config: NewConfig, fake: FakeExchange
) -> None:
    fake.rate_limit_candles(400, times=2)

    outcome = await collector.collect_now(await new_config())

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", 7 * 24)
    assert outcome.metadata["by_timeframe"]["1h"]["retries"] == 2
