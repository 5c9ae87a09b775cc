"""The session rules of a connection (PROTOCOL 4.2, 4.5): `authenticate`, who may call what
(sessions, tokens passed with a single call, expiry, roles), the failure limit, and ending
sessions whose API key was revoked.

The dispatcher (rpc/_jsonrpc.pyx) calls `SessionGate.authorize` for protected calls; its fast
path for the commonest requests only reads what these rules stored on the connection's
context (role level and expiry): one integer and one clock compare per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from camera_service.auth.authenticator import AUTH_TYPES, Authenticator
from camera_service.auth.roles import LEVEL_NAMES
from camera_service.auth.sessions import AuthenticationFailed, Session
from camera_service.core.component import Passive
from camera_service.rpc._jsonrpc import CallContext
from camera_service.rpc.errors import (
    PERMISSION_DENIED,
    RpcError,
    auth_failed,
    auth_required,
    invalid_params,
)

if TYPE_CHECKING:
    from camera_service.config import Config

log = logging.getLogger("camera_service.auth")

# Close code when the failure limit is reached (RFC 6455 policy violation).
CLOSE_POLICY_VIOLATION = 1008


def bind_session(ctx: CallContext, session: Session) -> None:
    """Make `session` the connection's session."""
    valid_until = session.valid_until
    ctx.set_session(session, session.role_level, 0.0 if valid_until is None else valid_until)


def token_param(params: dict[str, Any]) -> str:
    """`auth_token`, or its alias `token`: present and a string, else -32602 naming it."""
    name = "auth_token" if "auth_token" in params else "token"
    if name not in params:
        raise invalid_params("auth_token (or token) is required: a JWT or an API key string")
    token = params[name]
    if not isinstance(token, str):
        got = "null" if token is None else type(token).__name__
        raise invalid_params(f"{name} must be a string, got {got}")
    return token


class SessionGate(Passive):
    """Authentication for connections: the `authenticate` method and per-request tokens."""

    def __init__(self, authenticator: Authenticator, max_auth_failures: int):
        self.authenticator = authenticator
        self.max_auth_failures = max_auth_failures

    def apply(self, config: Config) -> None:
        """Live `[security]` keys: secret, algorithms, leeway, key file, failure limit."""
        self.max_auth_failures = config.security.max_auth_failures
        if config.security == self.authenticator.security:
            return
        try:
            self.authenticator.apply_settings(config.security)
        except Exception as exc:  # keep the running auth settings; the rest still applies
            log.error("security settings not applied: %s", exc)

    def authenticate(self, ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        """The `authenticate` method: a new session, or -32001 and the old one stays."""
        token = token_param(params)
        auth_type = params.get("auth_type", "auto")
        if auth_type not in AUTH_TYPES:
            raise invalid_params(f"auth_type must be one of {', '.join(AUTH_TYPES)}")
        if ctx.auth_failures >= self.max_auth_failures:
            # The close is on its way; attempts already received are not even checked.
            raise auth_failed("too many failed authentication attempts")
        try:
            session = self.authenticator.authenticate(token, auth_type, client_id=ctx.client_id)
        except AuthenticationFailed as exc:
            ctx.auth_failures += 1
            if ctx.auth_failures >= self.max_auth_failures:
                # Right after this response; messages already received are not handled.
                ctx.close_after_response = (
                    CLOSE_POLICY_VIOLATION,
                    "too many failed authentication attempts",
                )
            raise auth_failed(exc.reason) from None
        ctx.auth_failures = 0
        bind_session(ctx, session)
        return session.to_result()

    def authorize(
        self, ctx: CallContext, required_level: int, method: str, params: dict[str, Any]
    ) -> int:
        """May this call of `method` run? Returns the role level it runs with, or raises
        -32001 (no session, bad per-request token, expired session: cleared) or -32003."""
        if "auth_token" in params or "token" in params:
            level = self.authorize_request(ctx, params)
        elif ctx.role_level == 0:
            raise auth_required()
        elif ctx.expires_at and time.time() >= ctx.expires_at:
            ctx.clear_session()
            raise auth_failed("token expired")
        else:
            level = ctx.role_level
        if level < required_level:
            required = LEVEL_NAMES[required_level]
            raise RpcError(
                PERMISSION_DENIED,
                data={
                    "reason": f"{method} needs the {required} role",
                    "required_role": required,
                    "role": LEVEL_NAMES.get(level),
                },
            )
        return level

    def authorize_request(self, ctx: CallContext, params: dict[str, Any]) -> int:
        """Validate a token passed inside a protected call's params; returns the role level
        that call runs with. It becomes the session when the connection has none (or only an
        expired one)."""
        token = token_param(params)
        try:
            session = self.authenticator.authenticate(token, "auto", client_id=ctx.client_id)
        except AuthenticationFailed as exc:
            raise auth_failed(exc.reason) from None
        current = ctx.session
        if current is None or current.is_expired():
            bind_session(ctx, session)
        return session.role_level

    def end_revoked_sessions(self, contexts: Iterable[CallContext]) -> int:
        """A revoked or expired key also ends the sessions it opened, not just new logins.
        Returns how many sessions ended."""
        store = self.authenticator.api_keys
        now = time.time()
        ended = 0
        for ctx in contexts:
            session = ctx.session
            if session is None or session.key_id is None:
                continue
            entry = store.get(session.key_id)
            if entry is None or not entry.active or entry.is_expired(now):
                ctx.clear_session()
                ended += 1
                log.info(
                    "session ended: its API key was revoked",
                    extra={"client_id": ctx.client_id, "user_id": session.user_id},
                )
        return ended
