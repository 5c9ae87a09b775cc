"""JWT verification and minting (PROTOCOL 4.3).

PyJWT's JWS layer checks the structure, the algorithm against our allow-list and the HMAC
signature. The claims are checked here instead of by PyJWT's JWT layer for two reasons: each
failure needs its own client-facing reason (PyJWT reports a future `iat` and a future `nbf` with
the same exception type), and all time checks must use one clock that tests can inject.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from jwt.algorithms import HMACAlgorithm
from jwt.api_jws import PyJWS
from jwt.exceptions import (
    InvalidAlgorithmError,
    InvalidKeyError,
    InvalidSignatureError,
    PyJWTError,
)

from camera_service.config import HMAC_ALGORITHMS

from .roles import ROLE_LEVELS
from .sessions import MAX_TIMESTAMP, AuthenticationFailed

log = logging.getLogger("camera_service.auth")

# HS256 -> SHA256 and so on, for exactly the algorithms the configuration accepts.
_HASHES = {name: getattr(HMACAlgorithm, "SHA" + name[2:]) for name in HMAC_ALGORITHMS}

# A real token is a few hundred bytes; refusing large ones keeps a hostile client from making
# us base64-decode and hash a megabyte per request.
MAX_TOKEN_LENGTH = 8192
_MAX_SHOWN_ROLE = 32


class _HmacKeyChecked(HMACAlgorithm):
    # The key length is checked once when the verifier is built; PyJWT would otherwise emit a
    # warning from inside every single verify call.
    def check_key_length(self, key: Any) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Claims:
    """The validated claims of a JWT that a session is built from."""

    user_id: str
    role: str
    exp: float
    iat: float | None = None
    nbf: float | None = None
    jti: str | None = None


def _number_claim(payload: dict[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    # bool is an int subclass, but `"exp": true` is a malformed token, not 1970-01-01T00:00:01.
    if type(value) not in (int, float):
        raise AuthenticationFailed(f"invalid claim: {name} (expected a number)")
    # orjson yields only finite floats and 64-bit ints, so float() cannot overflow here.
    number = float(value)
    if not -MAX_TIMESTAMP <= number <= MAX_TIMESTAMP:
        raise AuthenticationFailed(f"invalid claim: {name} (out of range)")
    return number


class JwtVerifier:
    """Verifies HMAC-signed JWTs with one secret; immutable, rebuilt on config reload."""

    __slots__ = ("_key", "_algorithms", "_leeway", "_jws")

    def __init__(
        self, secret: bytes | str, algorithms: Iterable[str] = ("HS256",), leeway: float = 0.0
    ) -> None:
        algs = tuple(algorithms)
        if not algs:
            raise ValueError("at least one JWT algorithm is required")
        bad = [a for a in algs if a not in _HASHES]
        if bad:
            # Asymmetric algorithms with a shared secret are the classic key-confusion hole, and
            # "none" is no signature at all.
            raise ValueError(
                f"JWT algorithm(s) {', '.join(map(repr, bad))} not supported; "
                f"only {', '.join(HMAC_ALGORITHMS)}"
            )
        leeway = float(leeway)
        if not math.isfinite(leeway) or leeway < 0:
            raise ValueError("JWT leeway must be a finite number >= 0")

        jws = PyJWS(algorithms=list(algs))
        for name in algs:
            jws.unregister_algorithm(name)
            jws.register_algorithm(name, _HmacKeyChecked(_HASHES[name]))
        try:
            key = _HmacKeyChecked(_HASHES[algs[0]]).prepare_key(secret)
        except (InvalidKeyError, TypeError) as exc:
            raise ValueError(f"JWT secret unusable: {exc}") from None
        longest = max(_HASHES[a]().digest_size for a in algs)
        if len(key) < longest:
            log.warning(
                "JWT secret is shorter than RFC 7518 requires for the configured algorithms",
                extra={"secret_bytes": len(key), "required_bytes": longest},
            )
        self._key = key
        self._algorithms = algs
        self._leeway = leeway
        self._jws = jws

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self._algorithms

    @property
    def leeway(self) -> float:
        return self._leeway

    def verify(self, token: Any, now: float | None = None) -> Claims:
        """Return the claims of a valid token or raise AuthenticationFailed(reason)."""
        if not isinstance(token, str):
            raise AuthenticationFailed("token must be a string")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationFailed("token too long")
        try:
            decoded = self._jws.decode_complete(token, self._key, algorithms=self._algorithms)
        except InvalidAlgorithmError:
            raise AuthenticationFailed("algorithm not allowed") from None
        except InvalidSignatureError:
            raise AuthenticationFailed("invalid signature") from None
        except (PyJWTError, ValueError, TypeError):
            # Bad base64, bad header JSON, wrong segment count, unsupported `crit`...: the
            # client gets one reason; the details would only help someone probing the parser.
            raise AuthenticationFailed("malformed token") from None

        try:
            payload = orjson.loads(decoded["payload"])
        except orjson.JSONDecodeError:
            raise AuthenticationFailed("malformed token") from None
        if type(payload) is not dict:
            raise AuthenticationFailed("malformed token")
        return self._check_claims(payload, time.time() if now is None else now)

    def _check_claims(self, payload: dict[str, Any], now: float) -> Claims:
        for name in ("user_id", "role", "exp"):
            if payload.get(name) is None:
                raise AuthenticationFailed(f"missing claim: {name}")
        user_id = payload["user_id"]
        if type(user_id) is not str or not user_id:
            raise AuthenticationFailed("invalid claim: user_id (expected a non-empty string)")
        role = payload["role"]
        if type(role) is not str:
            raise AuthenticationFailed("invalid claim: role (expected a string)")
        if role not in ROLE_LEVELS:
            shown = role if len(role) <= _MAX_SHOWN_ROLE and role.isprintable() else "(unprintable)"
            raise AuthenticationFailed(f"invalid role: {shown}")
        exp = _number_claim(payload, "exp")
        assert exp is not None  # presence checked above
        iat = _number_claim(payload, "iat")
        nbf = _number_claim(payload, "nbf")
        jti = payload.get("jti")
        if jti is not None and type(jti) is not str:
            raise AuthenticationFailed("invalid claim: jti (expected a string)")

        # Same boundaries as PyJWT: valid while now < exp + leeway, and from nbf - leeway on.
        leeway = self._leeway
        if iat is not None and iat > now + leeway:
            raise AuthenticationFailed("token issued in the future")
        if nbf is not None and nbf > now + leeway:
            raise AuthenticationFailed("token not yet valid")
        if exp <= now - leeway:
            raise AuthenticationFailed("token expired")
        return Claims(user_id, role, exp, iat, nbf, jti)

    def mint(
        self,
        user_id: str,
        role: str,
        ttl_seconds: float,
        now: float | None = None,
        *,
        algorithm: str | None = None,
    ) -> str:
        """Sign a token that this verifier accepts until `now + ttl_seconds`."""
        if type(user_id) is not str or not user_id:
            raise ValueError("user_id must be a non-empty string")
        if role not in ROLE_LEVELS:
            raise ValueError(f"unknown role: {role!r}")
        if not ttl_seconds > 0:
            raise ValueError("ttl_seconds must be > 0")
        algorithm = algorithm or self._algorithms[0]
        if algorithm not in self._algorithms:
            raise ValueError(f"algorithm {algorithm!r} is not among the accepted ones")
        issued = int(time.time() if now is None else now)
        exp = issued + math.ceil(ttl_seconds)
        if exp > MAX_TIMESTAMP:
            raise ValueError("ttl_seconds too large")
        claims = {
            "user_id": user_id,
            "role": role,
            "iat": issued,
            "exp": exp,
            "jti": str(uuid.uuid4()),
        }
        return self._jws.encode(orjson.dumps(claims), self._key, algorithm=algorithm)
