"""Scheduling: every enabled config runs on its interval, once per slot, in-process or on arq workers."""
