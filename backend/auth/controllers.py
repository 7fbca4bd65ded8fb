"""Login and the current user."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.params import JSONBody
from litestar.security.jwt import JWTAuth

from backend.auth import repository
from backend.auth.passwords import verify_password
from backend.auth.schemas import LoginRequest, LoginResponse, User
from backend.auth.throttle import LoginThrottle
from backend.web.openapi import documented_error

BAD_CREDENTIALS = "Incorrect email or password"


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/login",
        operation_id="login",
        status_code=200,
        security=[],
        responses={
            401: documented_error("Wrong email or password (the same answer for both)"),
            429: documented_error("Too many failed logins for this email or address: wait `Retry-After` seconds"),
        },
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
    ) -> LoginResponse:
        """Exchange email and password for a bearer token.

        Wrong email and wrong password answer the same 401. Repeated failures answer 429 with
        `Retry-After`: for one email from one address; from one address for emails it never logged
        in to; for one email from many addresses, on addresses it never logged in from.
        """
        state = request.app.state
        throttle: LoginThrottle = state.login_throttle
        jwt_auth: JWTAuth[User] = state.jwt_auth
        email = repository.normalize_email(data.email)
        address = request.client.host if request.client else "unknown"
        wait = await throttle.retry_after(email=email, address=address)
        if wait is not None:
            raise TooManyRequestsException(
                "Too many failed logins, try again later", headers={"Retry-After": str(wait)}
            )
        found = await repository.get_login(state.pool, email=email)
        user, password_hash = found if found is not None else (None, None)
        if not await verify_password(data.password, password_hash) or user is None or not user.is_active:
            await throttle.record_failure(email=email, address=address)
            raise NotAuthorizedException(BAD_CREDENTIALS)
        await throttle.record_success(email=email, address=address)
        token = jwt_auth.create_token(identifier=str(user.id), token_extras={"role": user.role})
        expires_in = int(jwt_auth.default_token_expiration.total_seconds())
        return LoginResponse(access_token=token, expires_in=expires_in, user=user)

    @get("/me", operation_id="getCurrentUser")
    async def me(self, request: Request[User, Any, Any]) -> User:
        """The user the bearer token belongs to."""
        return request.user
