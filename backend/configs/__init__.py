"""Data-collection configs: which symbol on which exchange, which timeframes, how often."""
