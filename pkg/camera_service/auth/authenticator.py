"""One entry point for both credential kinds, rebuilt in place on config reload."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from .api_keys import ApiKeyStore
from .jwt_auth import JwtVerifier
from .secrets import resolve_jwt_secret
from .sessions import AuthenticationFailed, Session

log = logging.getLogger("camera_service.auth")

AUTH_TYPES = ("auto", "jwt", "api_key")


class Authenticator:
    """Turns a client's token or API key into a Session.

    `security` is the `[security]` config section or anything with the same attributes. The
    JWT secret is resolved at construction (JwtSecretError when the configured source is
    unusable) and the key file loaded (ApiKeyStoreError when it is corrupt), so start-up fails
    with a clear message instead of rejecting every client later.
    """

    def __init__(self, security: Any, env: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self.security = security
        self.verifier, self.secret_source = self._build_verifier(security)
        self.api_keys = ApiKeyStore(os.fspath(security.api_keys_file))

    def _build_verifier(self, security: Any) -> tuple[JwtVerifier, str]:
        secret = resolve_jwt_secret(security, self._env)
        verifier = JwtVerifier(
            secret.value,
            getattr(security, "jwt_algorithms", ("HS256",)),
            getattr(security, "jwt_leeway", 0.0),
        )
        log.info(
            "JWT verifier ready",
            extra={"secret_source": secret.source, "algorithms": list(verifier.algorithms)},
        )
        return verifier, secret.source

    def apply_settings(self, security: Any) -> None:
        """Adopt a reloaded `[security]` section; on any error nothing changes and it raises."""
        verifier, source = self._build_verifier(security)
        path = os.fspath(security.api_keys_file)
        store = self.api_keys if path == self.api_keys.path else ApiKeyStore(path)
        self.verifier, self.secret_source, self.api_keys = verifier, source, store
        self.security = security

    def authenticate(
        self,
        token: Any,
        auth_type: str = "auto",
        *,
        client_id: Any = None,
        now: float | None = None,
    ) -> Session:
        """Validate `token` and return a new Session, or raise AuthenticationFailed(reason).

        `auth_type` must be "jwt", "api_key" or "auto" (ValueError otherwise; the caller maps
        it to invalid params). "auto" tries JWT, then API key. Our keys never contain a dot, so
        a string shaped like a JWT gets the JWT's failure reason and anything else the API key
        reason: the reason always speaks about the credential the client meant to send.
        """
        if auth_type not in AUTH_TYPES:
            raise ValueError(f"auth_type must be one of {', '.join(AUTH_TYPES)}")
        now = time.time() if now is None else now
        method = auth_type
        try:
            if auth_type == "jwt":
                session = self._from_jwt(token, now)
            elif auth_type == "api_key":
                session = self._from_api_key(token, now)
            elif isinstance(token, str) and token.count(".") == 2:
                method = "jwt"
                try:
                    session = self._from_jwt(token, now)
                except AuthenticationFailed as jwt_failure:
                    try:
                        session = self._from_api_key(token, now)
                    except AuthenticationFailed:
                        raise jwt_failure from None
                    method = "api_key"
            else:
                method = "api_key"
                session = self._from_api_key(token, now)
        except AuthenticationFailed as exc:
            log.warning(
                "authentication failed",
                extra={"client_id": client_id, "auth_method": method, "reason": exc.reason},
            )
            raise
        log.info(
            "authenticated",
            extra={
                "client_id": client_id,
                "user_id": session.user_id,
                "role": session.role,
                "auth_method": session.auth_method,
                "session_id": session.session_id,
            },
        )
        return session

    def _from_jwt(self, token: Any, now: float) -> Session:
        verifier = self.verifier
        claims = verifier.verify(token, now)
        return Session(
            user_id=claims.user_id,
            role=claims.role,
            auth_method="jwt",
            expires_at=claims.exp,
            valid_until=claims.exp + verifier.leeway,
        )

    def _from_api_key(self, key: Any, now: float) -> Session:
        entry = self.api_keys.verify(key, now)
        # Key names are labels and need not be unique; the id is, so it names the user.
        return Session(
            user_id=f"api_key:{entry.key_id}",
            role=entry.role,
            auth_method="api_key",
            expires_at=entry.expires_ts,
            key_id=entry.key_id,
        )
