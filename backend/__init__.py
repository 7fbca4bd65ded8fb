"""Altar Trader Hub: scheduled OHLCV collection from crypto exchanges."""
