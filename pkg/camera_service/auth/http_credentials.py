"""Credentials for the HTTP endpoints (PROTOCOL 7): the same JWTs, API keys and roles as the
WebSocket API, sent as `Authorization: Bearer <token>` or, for `<img>`/`<video>` tags and
links that cannot set headers, as `?token=<token>`.

`http_session` returns the caller's Session, or the response to send instead: 401 (no or bad
credentials, with `WWW-Authenticate: Bearer` as RFC 6750 has it) or 403 (role too low). The
token itself is never logged or echoed: the authenticator logs only the failure's reason, and
the HTTP layer logs paths without their query string.
"""

from __future__ import annotations

from camera_service.auth.authenticator import Authenticator
from camera_service.auth.roles import LEVEL_NAMES
from camera_service.auth.sessions import AuthenticationFailed, Session
from camera_service.web.responses import Request, Response, json_response

QUERY_PARAM = "token"
# Logged as the client of HTTP authentications (the WebSocket side logs connection ids).
HTTP_CLIENT_ID = "http"


def request_token(request: Request) -> str | None:
    """The token of `request`: the Authorization header's Bearer credentials, else the
    `token` query parameter; None when there is neither. A header with another scheme
    (e.g. Basic) gives "" so that it is refused rather than ignored."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credentials = header.strip().partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else ""
    return request.query.get(QUERY_PARAM)


def unauthorized(error: str, reason: str | None = None) -> Response:
    """401 with a JSON body and the challenge of RFC 6750."""
    body = {"error": error} if reason is None else {"error": error, "reason": reason}
    challenge = "Bearer" if reason is None else 'Bearer error="invalid_token"'
    return json_response(401, body, {"WWW-Authenticate": challenge})


def forbidden(required_level: int, session: Session) -> Response:
    return json_response(
        403,
        {
            "error": "insufficient permissions",
            "required_role": LEVEL_NAMES[required_level],
            "role": session.role,
        },
    )


def http_session(
    authenticator: Authenticator, request: Request, required_level: int
) -> Session | Response:
    """The Session of `request`'s credentials when its role level is at least
    `required_level`; else the 401 or 403 response to send."""
    token = request_token(request)
    if token is None:
        return unauthorized("authentication required")
    if not token:
        return unauthorized("authentication failed", "expected Bearer credentials")
    try:
        session = authenticator.authenticate(token, "auto", client_id=HTTP_CLIENT_ID)
    except AuthenticationFailed as exc:
        return unauthorized("authentication failed", exc.reason)
    if session.role_level < required_level:
        return forbidden(required_level, session)
    return session
