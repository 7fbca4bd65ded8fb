"""The execution log of collection runs: the write side of ``job_execution_logs``."""
