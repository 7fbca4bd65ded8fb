"""Domain errors, mapped to HTTP answers once, in ``backend.app``."""

from __future__ import annotations


class NotFoundError(Exception):
    """The thing asked for does not exist (404)."""


class ConflictError(Exception):
    """The request conflicts with the current state (409)."""


class UnavailableError(Exception):
    """A service this request needs is down or not wired (503); the message names it."""
