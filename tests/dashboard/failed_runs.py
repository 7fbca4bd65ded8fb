"""Failed runs as the collector records them when the exchange's host does not resolve, for the
browser tests and the screenshots: the cause in a few words, the full chain of every timeframe."""

from __future__ import annotations

import json

import asyncpg

DNS_CAUSE = "cannot reach api.binance.com: name not resolved"
DNS_TYPE = "ExchangeNotAvailable"


# the error of each timeframe, as ``ExchangeClient.safe_message`` writes it (loading the markets failed)
DNS_CHAIN = (
    "binance GET https://api.binance.com/api/v3/exchangeInfo: ClientConnectorDNSError: Cannot connect to host "
    "api.binance.com:443 ssl:default [Name or service not known]: gaierror: [Errno -2] Name or service not known"
)


def dns_metadata(timeframes: list[str]) -> dict[str, object]:
    return {
        "timeframes_collected": 0,
        "timeframes_failed": len(timeframes),
        "timeframes": timeframes,
        "by_timeframe": {
            timeframe: {
                "records": 0,
                "first_candle": None,
                "last_candle": None,
                "pages": 0,
                "retries": 2,
                "holes_repaired": 0,
                "duration_seconds": 1.2,
                "error_type": DNS_TYPE,
                "error": DNS_CHAIN,
                "cause": DNS_CAUSE,
            }
            for timeframe in timeframes
        },
    }


# a failed run of config $1 that ended now, with its message, cause (null: recorded without one) and metadata
INSERT_FAILED_RUN = """
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, finished_at, duration_seconds,
     records_collected, error_type, error_message, error_cause, metadata)
SELECT 'collect_data_' || id, 'data_collection', id, symbol, exchange, 'failed', 'schedule', now(), 2.41, 0,
       $2, $3, $4, $5::jsonb
FROM data_collection_configs WHERE id = $1
RETURNING id
"""


async def insert_dns_failure(
    database_url: str, config_id: int, timeframes: list[str], *, with_cause: bool = True
) -> int:
    """A failed run of ``config_id`` whose every timeframe could not resolve the exchange's host;
    ``with_cause=False``: a run recorded without its cause (its message alone)."""
    message = "; ".join(f"{timeframe}: {DNS_CHAIN}" for timeframe in timeframes)
    conn = await asyncpg.connect(database_url)
    try:
        run_id: int = await conn.fetchval(
            INSERT_FAILED_RUN,
            config_id,
            DNS_TYPE,
            message,
            DNS_CAUSE if with_cause else None,
            json.dumps(dns_metadata(timeframes)),
        )
        return run_id
    finally:
        await conn.close()
