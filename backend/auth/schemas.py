"""Request and response bodies of the auth routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Role = Literal["admin", "viewer"]


class User(msgspec.Struct, frozen=True):
    """A user as the API shows it (never with the password hash)."""

    id: int
    email: str
    role: Role
    is_active: bool
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320, examples=["admin@example.com"])]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class LoginResponse(msgspec.Struct):
    access_token: str
    expires_in: int
    user: User
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
