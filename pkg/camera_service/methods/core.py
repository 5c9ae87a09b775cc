"""`ping`, `authenticate`, and the per-request token check the dispatcher calls."""

from __future__ import annotations

from typing import Any

from camera_service.auth.authenticator import AUTH_TYPES, Authenticator
from camera_service.auth.sessions import AuthenticationFailed, Session
from camera_service.rpc._jsonrpc import CallContext, PreEncoded
from camera_service.rpc.errors import auth_failed, invalid_params
from camera_service.rpc.registry import MethodRegistry

PONG = PreEncoded(b'"pong"')


def bind_session(ctx: CallContext, session: Session) -> None:
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


class SessionGate:
    """Authentication for the connection: the `authenticate` method and per-request tokens."""

    def __init__(self, authenticator: Authenticator, max_auth_failures: int):
        self.authenticator = authenticator
        self.max_auth_failures = max_auth_failures

    def authenticate(self, ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
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
                ctx.close_after_response = (1008, "too many failed authentication attempts")
            raise auth_failed(exc.reason) from None
        ctx.auth_failures = 0
        bind_session(ctx, session)
        return session.to_result()

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


def register(registry: MethodRegistry, gate: SessionGate) -> None:
    registry.add("ping", PONG, "viewer", binds_context=False)
    registry.add("authenticate", gate.authenticate, None)
