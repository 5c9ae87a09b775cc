"""Authentication and authorization: JWTs, API keys, roles, sessions, rate limits."""

from .api_keys import ApiKeyEntry, ApiKeyStore, ApiKeyStoreError
from .authenticator import AUTH_TYPES, Authenticator
from .jwt_auth import HMAC_ALGORITHMS, Claims, JwtVerifier
from .rate_limit import TokenBucket
from .roles import LEVEL_NAMES, PERMISSIONS, ROLE_LEVELS, role_level
from .secrets import JwtSecret, JwtSecretError, resolve_jwt_secret
from .sessions import AuthenticationFailed, Session

__all__ = [
    "AUTH_TYPES",
    "HMAC_ALGORITHMS",
    "LEVEL_NAMES",
    "PERMISSIONS",
    "ROLE_LEVELS",
    "ApiKeyEntry",
    "ApiKeyStore",
    "ApiKeyStoreError",
    "AuthenticationFailed",
    "Authenticator",
    "Claims",
    "JwtSecret",
    "JwtSecretError",
    "JwtVerifier",
    "Session",
    "TokenBucket",
    "resolve_jwt_secret",
    "role_level",
]
