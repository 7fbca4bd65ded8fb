"""SQL for users."""

from __future__ import annotations

import asyncpg
import msgspec

from backend.auth.schemas import Role, User
from backend.db.pool import Connection, Pool

USER_COLUMNS = "id, email, role, is_active, created_at"

SELECT_USER_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
SELECT_LOGIN_BY_EMAIL = f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"
INSERT_USER = f"""
INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)
RETURNING {USER_COLUMNS}
"""
UPDATE_PASSWORD = f"""
UPDATE users SET password_hash = $2, updated_at = now() WHERE email = $1
RETURNING {USER_COLUMNS}
"""
ANY_ADMIN_EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND is_active)"


class UserExistsError(Exception):
    """A user with this email already exists."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def get_user(db: Pool | Connection, *, user_id: int) -> User | None:
    row = await db.fetchrow(SELECT_USER_BY_ID, user_id)
    return None if row is None else msgspec.convert(dict(row), User)


async def get_login(db: Pool | Connection, *, email: str) -> tuple[User, str] | None:
    """The user with this email and their password hash."""
    row = await db.fetchrow(SELECT_LOGIN_BY_EMAIL, normalize_email(email))
    if row is None:
        return None
    values = dict(row)
    password_hash = values.pop("password_hash")
    return msgspec.convert(values, User), password_hash


async def create_user(db: Pool | Connection, *, email: str, password_hash: str, role: Role) -> User:
    try:
        row = await db.fetchrow(INSERT_USER, normalize_email(email), password_hash, role)
    except asyncpg.UniqueViolationError:
        raise UserExistsError(normalize_email(email)) from None
    assert row is not None
    return msgspec.convert(dict(row), User)


async def set_password_hash(db: Pool | Connection, *, email: str, password_hash: str) -> User | None:
    row = await db.fetchrow(UPDATE_PASSWORD, normalize_email(email), password_hash)
    return None if row is None else msgspec.convert(dict(row), User)


async def any_admin_exists(db: Pool | Connection) -> bool:
    return bool(await db.fetchval(ANY_ADMIN_EXISTS))
