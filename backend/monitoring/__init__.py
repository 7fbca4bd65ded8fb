"""Execution logs, stats, status and live events: the read side a polling dashboard needs."""
