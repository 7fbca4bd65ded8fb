"""JWT bearer tokens (HS256) through Litestar's JWT auth."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from backend.auth.schemas import User
from backend.auth.user_cache import UserCache
from backend.settings import Settings
from backend.web.params import BIGINT_MAX

PUBLIC_PATHS = ["/health", "/schema", "/docs", "/api/v1/auth/login"]
# routes that check their token themselves (a guard): /metrics also takes METRICS_TOKEN
OWN_TOKEN_PATHS = ["/metrics$"]
MAX_VERIFIED_TOKENS = 1024  # a few clients poll with a few tokens each


class VerifiedToken(Token):
    """A token whose signature and claims were checked once per process: checking it again (every
    request of a polling client sends the same one) costs a dict lookup and the expiry check."""

    _verified: dict[tuple[str, str, str], Token] = {}

    @classmethod
    def decode(
        cls,
        encoded_token: str,
        secret: str,
        algorithm: str,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        require_claims: Sequence[str] | None = None,
        verify_exp: bool = True,
        verify_nbf: bool = True,
        strict_audience: bool = False,
    ) -> Self:
        """As :meth:`Token.decode` (which this app calls with a secret and an algorithm only)."""
        key = (secret, algorithm, encoded_token)
        token = cls._verified.get(key)
        if isinstance(token, cls):
            if token.exp > datetime.now(UTC):
                return token
            del cls._verified[key]
            raise NotAuthorizedException("Invalid token")
        token = super().decode(
            encoded_token, secret, algorithm, audience, issuer, require_claims, verify_exp, verify_nbf, strict_audience
        )
        if len(cls._verified) >= MAX_VERIFIED_TOKENS:
            del cls._verified[next(iter(cls._verified))]
        cls._verified[key] = token
        return token


async def retrieve_user(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
    """The token's user while it is active (from this process's cache, which forgets a user that changes)."""
    try:
        user_id = int(token.sub)
    except ValueError:
        return None
    if not 1 <= user_id <= BIGINT_MAX:
        return None
    users: UserCache = connection.app.state.user_cache
    return await users.active_user(user_id)


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (the scheme word in any case, RFC 9110)."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


class BearerAuthenticationMiddleware(JWTAuthenticationMiddleware):
    """``Authorization: Bearer <token>``: the scheme word must be ``Bearer`` (any case, RFC 9110)."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        token = bearer_token(connection.headers.get(self.auth_header, ""))
        if token is None:
            raise NotAuthorizedException("Send the access token as 'Authorization: Bearer <access_token>'")
        return await self.authenticate_token(encoded_token=token, connection=connection)


def create_jwt_auth(settings: Settings) -> JWTAuth[User]:
    return JWTAuth[User](
        retrieve_user_handler=retrieve_user,
        token_secret=settings.secret_key,
        algorithm="HS256",
        token_cls=VerifiedToken,
        default_token_expiration=timedelta(minutes=settings.access_token_expire_minutes),
        exclude=PUBLIC_PATHS + OWN_TOKEN_PATHS,
        description="Paste the access_token from POST /api/v1/auth/login.",
        authentication_middleware_class=BearerAuthenticationMiddleware,
    )
