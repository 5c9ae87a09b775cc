"""What a successful authentication produces, and the error a failed one raises.

The failure type lives here, next to the success type, so that the JWT verifier, the API key
store and the authenticator can share it without importing each other.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .roles import PERMISSIONS, role_level

# Largest epoch second that datetime can format; expiry claims beyond it are refused up front so
# that building the `authenticate` result can never fail.
MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z


class AuthenticationFailed(Exception):
    """A token or key was rejected; `reason` is safe to show to the client and to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def format_utc(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC with a `Z` suffix and no fraction (PROTOCOL 4.2)."""
    return datetime.fromtimestamp(math.floor(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> float:
    """Inverse of format_utc; also accepts an explicit `+00:00` offset. Naive times are refused
    because guessing a zone is how local time ends up labelled as UTC."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return dt.timestamp()


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated identity bound to one connection.

    `expires_at` is what the client is told (the token's `exp`); `valid_until` is when the
    server actually stops honouring it, which is later by the configured clock leeway, so that
    a token accepted at `exp + leeway/2` is not declared expired on the very next call.
    """

    user_id: str
    role: str
    auth_method: str
    expires_at: float | None = None
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    valid_until: float | None = None
    key_id: str | None = None  # the API key behind an api_key session, to honour revocation
    role_level: int = field(init=False, default=0)
    permissions: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        # Derived fields are filled here so that no caller can build a session whose level or
        # permissions disagree with its role.
        object.__setattr__(self, "role_level", role_level(self.role))
        object.__setattr__(self, "permissions", PERMISSIONS[self.role])
        if self.valid_until is None:
            object.__setattr__(self, "valid_until", self.expires_at)

    def is_expired(self, now: float | None = None) -> bool:
        if self.valid_until is None:
            return False
        return (time.time() if now is None else now) >= self.valid_until

    def to_result(self) -> dict[str, Any]:
        """The `authenticate` success result, keys in the order PROTOCOL 4.2 shows."""
        return {
            "authenticated": True,
            "role": self.role,
            "permissions": list(self.permissions),
            "user_id": self.user_id,
            "expires_at": None if self.expires_at is None else format_utc(self.expires_at),
            "session_id": self.session_id,
            "auth_method": self.auth_method,
        }
