"""Collecting OHLCV candles from exchanges through ccxt, storing them, and reading them back."""
