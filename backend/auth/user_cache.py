"""The users that tokens name, kept in this process's memory while nothing can change them unseen.

Every authenticated request needs its user (is it still active? which role?). Reading it from the
database each time was most of the cost of a cheap request, so each process keeps the users it has
read. A change to a user (deactivation, role, deletion, the table emptied) is announced by a
trigger on channel ``users_changed`` at commit (migration 0007); this process's LISTEN connection
(:mod:`backend.monitoring.events`) passes it to :meth:`UserCache.forget_user`, so the next request
reads the user again: a deactivated user loses access as soon as the notification arrives,
milliseconds after the commit.

The cache is trusted only while that connection listens (``listening``): before it connects,
while it is down, and for a read that overlapped a change, users come from the database.
"""

from __future__ import annotations

from backend.auth import repository
from backend.auth.schemas import User
from backend.db.pool import Pool

USERS_CHANNEL = "users_changed"
MAX_CACHED_USERS = 10_000  # past this, start again from empty: users are few, tokens name fewer


def changed_user_id(payload: str) -> int | None:
    """The user a ``users_changed`` payload names; ``None`` for every user (``*``, or anything else)."""
    return int(payload) if payload.isdigit() else None


class UserCache:
    """Active-or-not users by id, as the database last said while this process listened."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._users: dict[int, User] = {}
        # moves on every change heard, so a read that overlapped one is not kept
        self._generation = 0
        self.listening = False

    async def active_user(self, user_id: int) -> User | None:
        """The user with this id if it exists and is active, else ``None``."""
        user = self._users.get(user_id) if self.listening else None
        if user is None:
            user = await self._read(user_id)
        return user if user is not None and user.is_active else None

    async def _read(self, user_id: int) -> User | None:
        generation = self._generation
        user = await repository.get_user(self._pool, user_id=user_id)
        if user is not None and self.listening and generation == self._generation:
            if len(self._users) >= MAX_CACHED_USERS:
                self._users.clear()
            self._users[user_id] = user
        return user

    def forget_user(self, user_id: int | None) -> None:
        """A ``users_changed`` notification: the user with this id (``None``: every user) changed."""
        self._generation += 1
        if user_id is None:
            self._users.clear()
        else:
            self._users.pop(user_id, None)

    def start_listening(self) -> None:
        """LISTEN has begun: changes from now on are heard; what was kept before may be stale."""
        self.forget_user(None)
        self.listening = True

    def stop_listening(self) -> None:
        """The LISTEN connection is gone: changes may go unheard, so read every user again."""
        self.listening = False
        self.forget_user(None)
