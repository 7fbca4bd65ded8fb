"""JWT bearer tokens (HS256) through Litestar's JWT auth."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from backend.auth import repository
from backend.auth.schemas import User
from backend.settings import Settings

PUBLIC_PATHS = ["/health", "/schema", "/docs", "/api/v1/auth/login"]
BIGINT_MAX = 2**63 - 1  # user ids are PostgreSQL bigints


async def retrieve_user(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
    """The token's user, read again so that a deactivated user loses access at once."""
    try:
        user_id = int(token.sub)
    except ValueError:
        return None
    if not 1 <= user_id <= BIGINT_MAX:
        return None
    user = await repository.get_user(connection.app.state.pool, user_id=user_id)
    return user if user is not None and user.is_active else None


class BearerAuthenticationMiddleware(JWTAuthenticationMiddleware):
    """``Authorization: Bearer <token>``: the scheme word must be ``Bearer`` (any case, RFC 9110)."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        scheme, _, credentials = connection.headers.get(self.auth_header, "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise NotAuthorizedException("Send the access token as 'Authorization: Bearer <access_token>'")
        return await self.authenticate_token(encoded_token=credentials.strip(), connection=connection)


def create_jwt_auth(settings: Settings) -> JWTAuth[User]:
    return JWTAuth[User](
        retrieve_user_handler=retrieve_user,
        token_secret=settings.secret_key,
        algorithm="HS256",
        default_token_expiration=timedelta(minutes=settings.access_token_expire_minutes),
        exclude=PUBLIC_PATHS,
        description="Paste the access_token from POST /api/v1/auth/login.",
        authentication_middleware_class=BearerAuthenticationMiddleware,
    )
