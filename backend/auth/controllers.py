"""Login and the current user."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotAuthorizedException, ServiceUnavailableException, TooManyRequestsException
from litestar.params import JSONBody
from litestar.security.jwt import JWTAuth

from backend.auth import repository
from backend.auth.devices import DeviceCookies
from backend.auth.passwords import PasswordVerifier, VerifierBusyError
from backend.auth.schemas import LoginRequest, LoginResponse, User
from backend.auth.throttle import LoginAttempt, LoginThrottle
from backend.web.openapi import documented_error

BAD_CREDENTIALS = "Incorrect email or password"
BUSY_RETRY_AFTER_SECONDS = 1


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
            429: documented_error(
                "Too many failed logins for this email, address or device: wait `Retry-After` seconds"
            ),
            503: documented_error("Too many logins are being checked at once: retry after `Retry-After` seconds"),
        },
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
    ) -> Response[LoginResponse]:
        """Exchange email and password for a bearer token, and a device cookie.

        Wrong email and wrong password answer the same 401. Every attempt is counted before its
        password is checked; too many answer 429 with `Retry-After`: for one email from one
        address, from one address for any emails, for one email from any address without a device
        cookie. A client that presents the device cookie of an earlier successful login for this
        email counts only its own attempts: guesses from elsewhere never lock it out.
        """
        state = request.app.state
        throttle: LoginThrottle = state.login_throttle
        verifier: PasswordVerifier = state.password_verifier
        devices: DeviceCookies = state.device_cookies
        jwt_auth: JWTAuth[User] = state.jwt_auth
        email = repository.normalize_email(data.email)
        attempt = LoginAttempt(
            email=email,
            address=request.client.host if request.client else "unknown",
            device=devices.trusted_device(request.cookies, email),
        )
        wait = await throttle.admit(attempt)
        if wait is not None:
            raise TooManyRequestsException(
                "Too many failed logins, try again later", headers={"Retry-After": str(wait)}
            )
        try:
            found = await repository.get_login(state.pool, email=email)
            user, password_hash = found if found is not None else (None, None)
            valid = await verifier.verify(data.password, password_hash, trusted=attempt.device is not None)
        except VerifierBusyError:
            await throttle.give_back(attempt)
            raise ServiceUnavailableException(
                "Too many logins are being checked right now, try again shortly",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
            ) from None
        except Exception:
            await throttle.give_back(attempt)  # the password was never checked (the database is away)
            raise
        if not valid or user is None or not user.is_active:
            raise NotAuthorizedException(BAD_CREDENTIALS)
        await throttle.succeeded(attempt)
        token = jwt_auth.create_token(identifier=str(user.id), token_extras={"role": user.role})
        expires_in = int(jwt_auth.default_token_expiration.total_seconds())
        return Response(
            LoginResponse(access_token=token, expires_in=expires_in, user=user), cookies=[devices.new_cookie(email)]
        )

    @get("/me", operation_id="getCurrentUser")
    async def me(self, request: Request[User, Any, Any]) -> User:
        """The user the bearer token belongs to."""
        return request.user
