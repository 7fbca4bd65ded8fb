"""JWT bearer tokens (HS256) through Litestar's JWT auth."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.security.jwt import JWTAuth, Token

from backend.auth.schemas import User
from backend.auth.user_cache import UserCache
from backend.settings import Settings

PUBLIC_PATHS = ["/health", "/schema", "/docs", "/api/v1/auth/login"]


async def retrieve_user(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
    """The token's user while it is active (from this process's cache, which forgets a user that changes)."""
    try:
        user_id = int(token.sub)
    except ValueError:
        return None
    users: UserCache = connection.app.state.user_cache
    return await users.active_user(user_id)


def create_jwt_auth(settings: Settings) -> JWTAuth[User]:
    return JWTAuth[User](
        retrieve_user_handler=retrieve_user,
        token_secret=settings.secret_key,
        algorithm="HS256",
        default_token_expiration=timedelta(minutes=settings.access_token_expire_minutes),
        exclude=PUBLIC_PATHS,
        description="Paste the access_token from POST /api/v1/auth/login.",
    )
