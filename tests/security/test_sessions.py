"""Sessions and the Authenticator that produces them."""

import dataclasses
import json
import logging
import os
import re
import uuid

import jwt
import pytest

from camera_service.auth import (
    ApiKeyStoreError,
    AuthenticationFailed,
    Authenticator,
    JwtSecretError,
    Session,
)
from camera_service.auth.api_keys import hash_key
from camera_service.auth.secrets import ENV_VAR
from camera_service.config import SecuritySettings

SECRET = "session-tests-secret-" + "z" * 60
NOW = 1_800_000_000.0


@dataclasses.dataclass(frozen=True)
class Security:
    state_dir: str
    api_keys_file: str
    jwt_secret: str | None = SECRET
    jwt_secret_file: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_leeway: float = 0.0
    rate_limit_rpm: int = 1200
    rate_limit_burst: int = 200
    max_auth_failures: int = 5


@pytest.fixture
def security(tmp_path):
    state = tmp_path / "state"
    return Security(state_dir=str(state), api_keys_file=str(state / "api_keys.json"))


@pytest.fixture
def auth(security):
    return Authenticator(security, env={})


def mint(secret=SECRET, **over):
    claims = {"user_id": "alice", "role": "operator", "iat": int(NOW), "exp": int(NOW) + 600}
    claims.update(over)
    return jwt.encode(claims, secret, algorithm="HS256")


def fails(auth, token, auth_type="auto", now=NOW):
    with pytest.raises(AuthenticationFailed) as info:
        auth.authenticate(token, auth_type, now=now)
    return info.value.reason


# -- Session ------------------------------------------------------------------------------------


def test_session_result_exact_shape():
    s = Session(user_id="alice", role="operator", auth_method="jwt", expires_at=1768573800.0)
    result = s.to_result()
    assert list(result) == [
        "authenticated",
        "role",
        "permissions",
        "user_id",
        "expires_at",
        "session_id",
        "auth_method",
    ]
    assert result == {
        "authenticated": True,
        "role": "operator",
        "permissions": ["view", "control"],
        "user_id": "alice",
        "expires_at": "2026-01-16T14:30:00Z",
        "session_id": s.session_id,
        "auth_method": "jwt",
    }
    assert uuid.UUID(s.session_id).version == 4
    assert (s.role_level, s.permissions) == (2, ("view", "control"))


def test_session_expiry_formatting_and_none():
    assert Session("a", "admin", "jwt", expires_at=1768573800.999).to_result()["expires_at"] == (
        "2026-01-16T14:30:00Z"
    )
    assert Session("a", "admin", "jwt", expires_at=0).to_result()["expires_at"] == (
        "1970-01-01T00:00:00Z"
    )
    s = Session("k", "viewer", "api_key")
    assert s.to_result()["expires_at"] is None
    assert s.to_result()["permissions"] == ["view"]
    assert s.is_expired() is False and s.is_expired(1e12) is False


def test_session_expiry_boundary_and_grace():
    s = Session("a", "admin", "jwt", expires_at=100.0)
    assert s.valid_until == 100.0
    assert not s.is_expired(99.999)
    assert s.is_expired(100.0)
    g = Session("a", "admin", "jwt", expires_at=100.0, valid_until=105.0)
    assert not g.is_expired(104.0) and g.is_expired(105.0)
    assert g.to_result()["expires_at"] == "1970-01-01T00:01:40Z"


def test_session_uses_real_clock_by_default():
    assert Session("a", "admin", "jwt", expires_at=1.0).is_expired()


def test_session_ids_unique_and_sessions_immutable():
    a, b = Session("a", "admin", "jwt"), Session("a", "admin", "jwt")
    assert a.session_id != b.session_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.role = "viewer"


def test_session_refuses_unknown_role():
    with pytest.raises(ValueError, match="unknown role"):
        Session("a", "root", "jwt")


# -- Authenticator: JWT -------------------------------------------------------------------------


def test_jwt_session(auth):
    s = auth.authenticate(mint(role="admin"), "jwt", now=NOW)
    assert (s.user_id, s.role, s.role_level, s.auth_method) == ("alice", "admin", 3, "jwt")
    assert s.expires_at == NOW + 600
    assert s.to_result()["expires_at"] == "2027-01-15T08:10:00Z"
    assert auth.authenticate(mint(), now=NOW).auth_method == "jwt"
    assert auth.secret_source == "config"


def test_session_valid_until_includes_leeway(security):
    auth = Authenticator(dataclasses.replace(security, jwt_leeway=30), env={})
    s = auth.authenticate(mint(exp=int(NOW) - 10), now=NOW)
    assert s.expires_at == NOW - 10 and s.valid_until == NOW + 20
    # Accepted inside the leeway, so not expired on the next call either.
    assert not s.is_expired(NOW + 1)
    assert s.is_expired(NOW + 20)


@pytest.mark.parametrize(
    "token,expected",
    [
        (mint(exp=int(NOW) - 1), "token expired"),
        (mint(secret="x" * 70), "invalid signature"),
        (mint(role="god"), "invalid role: god"),
        ("a.b.c", "malformed token"),
        ("not-a-jwt-at-all", "malformed token"),
    ],
)
def test_jwt_mode_reasons(auth, token, expected):
    assert fails(auth, token, "jwt") == expected


# -- Authenticator: API keys --------------------------------------------------------------------


def test_api_key_session(auth):
    key, entry = auth.api_keys.create("viewer", "dashboard", expires_days=1, now=NOW)
    s = auth.authenticate(key, "api_key", now=NOW)
    assert (s.user_id, s.role, s.auth_method) == (f"api_key:{entry.key_id}", "viewer", "api_key")
    assert s.expires_at == NOW + 86400
    assert s.to_result()["expires_at"] == "2027-01-16T08:00:00Z"
    assert auth.authenticate(key, now=NOW).auth_method == "api_key"
    assert fails(auth, key, now=NOW + 86400) == "API key expired"


def test_api_key_without_expiry_reports_null(auth):
    key, _ = auth.api_keys.create("admin", "forever")
    assert auth.authenticate(key).to_result()["expires_at"] is None


def test_api_key_mode_reasons(auth):
    assert fails(auth, "k" * 40, "api_key") == "unknown API key"
    assert fails(auth, "short", "api_key") == "malformed API key"
    assert fails(auth, mint(), "api_key") == "unknown API key"


def test_cli_revocation_reaches_the_server_authenticator(auth, security):
    from camera_service.auth.api_keys import ApiKeyStore

    key, entry = ApiKeyStore(security.api_keys_file).create("operator", "n")
    auth.api_keys.reload_if_changed()
    assert auth.authenticate(key).role == "operator"
    ApiKeyStore(security.api_keys_file).revoke(entry.key_id)
    auth.api_keys.reload_if_changed()
    assert fails(auth, key) == "API key revoked"


# -- auto mode and argument checks --------------------------------------------------------------


def test_auto_mode_reason_follows_token_shape(auth):
    assert fails(auth, mint(exp=int(NOW) - 1)) == "token expired"
    assert fails(auth, "x.y.z" + "w" * 40) == "malformed token"
    assert fails(auth, "w" * 40) == "unknown API key"
    assert fails(auth, "short") == "malformed API key"
    assert fails(auth, "a.b") == "malformed API key"


def test_auto_mode_falls_back_to_api_key_for_jwt_shaped_key(security):
    # A hand-made key that happens to contain two dots still authenticates in auto mode.
    odd_key = "legacy.key.with-two-dots-and-enough-length"
    os.makedirs(security.state_dir)
    with open(security.api_keys_file, "w") as fh:
        json.dump(
            {
                "version": 1,
                "keys": [
                    {
                        "key_id": "legacy",
                        "name": "old",
                        "role": "viewer",
                        "hash": hash_key(odd_key),
                        "created_at": "2026-01-01T00:00:00Z",
                        "expires_at": None,
                        "active": True,
                    }
                ],
            },
            fh,
        )
    auth = Authenticator(security, env={})
    s = auth.authenticate(odd_key)
    assert (s.auth_method, s.user_id) == ("api_key", "api_key:legacy")


@pytest.mark.parametrize("value", [None, 42, ["t"], {"t": 1}, b"x.y.z"])
def test_non_string_token(auth, value):
    assert fails(auth, value) == "API key must be a string"
    assert fails(auth, value, "jwt") == "token must be a string"
    assert fails(auth, value, "api_key") == "API key must be a string"


@pytest.mark.parametrize("auth_type", ["JWT", "apikey", "", None, 1])
def test_bad_auth_type_is_value_error(auth, auth_type):
    with pytest.raises(ValueError, match="auth_type must be one of auto, jwt, api_key"):
        auth.authenticate(mint(), auth_type)


# -- logging ------------------------------------------------------------------------------------


def test_logs_have_context_and_never_the_token(auth, caplog):
    key, _ = auth.api_keys.create("admin", "n")
    good, bad = mint(), mint(secret="q" * 70)
    with caplog.at_level(logging.INFO, logger="camera_service.auth"):
        auth.authenticate(good, client_id="c-1", now=NOW)
        auth.authenticate(key, client_id="c-2", now=NOW)
        for token in (bad, key + "x", "a-typo"):
            with pytest.raises(AuthenticationFailed):
                auth.authenticate(token, client_id="c-3", now=NOW)
    ok = [r for r in caplog.records if r.message == "authenticated"]
    assert [(r.client_id, r.user_id, r.role, r.auth_method) for r in ok] == [
        ("c-1", "alice", "operator", "jwt"),
        ("c-2", ok[1].user_id, "admin", "api_key"),
    ]
    failed = [r for r in caplog.records if r.message == "authentication failed"]
    assert [(r.client_id, r.auth_method, r.reason, r.levelname) for r in failed] == [
        ("c-3", "jwt", "invalid signature", "WARNING"),
        ("c-3", "api_key", "unknown API key", "WARNING"),
        ("c-3", "api_key", "malformed API key", "WARNING"),
    ]
    dumped = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    for secret in (good, bad, key, SECRET, good.split(".")[2], key[4:20]):
        assert secret not in dumped


# -- construction and live reload ---------------------------------------------------------------


def test_env_secret_wins(security):
    auth = Authenticator(security, env={ENV_VAR: "e" * 64})
    assert auth.secret_source == "env"
    assert auth.authenticate(mint(secret="e" * 64), now=NOW).user_id == "alice"
    assert fails(auth, mint()) == "invalid signature"


def test_default_env_is_process_environment(security, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "p" * 64)
    assert Authenticator(security).secret_source == "env"


def test_generated_secret_shared_with_a_second_authenticator(security):
    gen = dataclasses.replace(security, jwt_secret=None)
    first = Authenticator(gen, env={})
    assert first.secret_source == "generated"
    token = first.verifier.mint("bob", "viewer", 60)
    second = Authenticator(gen, env={})
    assert second.secret_source == "state"
    assert second.authenticate(token).user_id == "bob"


def test_api_keys_path_defaults_to_state_dir(tmp_path):
    sec = SecuritySettings(state_dir=str(tmp_path / "st"), jwt_secret=SECRET)
    auth = Authenticator(sec, env={})
    assert auth.api_keys.path == str(tmp_path / "st" / "api_keys.json")


def test_apply_settings_swaps_secret_leeway_and_keys(auth, security, tmp_path):
    old_key, _ = auth.api_keys.create("viewer", "old")
    old_token = mint()
    new_keys = str(tmp_path / "other" / "keys.json")
    from camera_service.auth.api_keys import ApiKeyStore

    new_key, _ = ApiKeyStore(new_keys).create("admin", "new")
    auth.apply_settings(
        dataclasses.replace(
            security,
            jwt_secret="n" * 64,
            jwt_leeway=5.0,
            api_keys_file=new_keys,
            jwt_algorithms=("HS256", "HS512"),
        )
    )
    assert fails(auth, old_token) == "invalid signature"
    assert auth.authenticate(mint(secret="n" * 64, exp=int(NOW) - 3), now=NOW).role == "operator"
    assert fails(auth, old_key) == "unknown API key"
    assert auth.authenticate(new_key).role == "admin"
    assert auth.security.jwt_secret == "n" * 64
    assert auth.verifier.algorithms == ("HS256", "HS512")


def test_apply_settings_same_key_path_keeps_store(auth, security):
    store = auth.api_keys
    auth.apply_settings(dataclasses.replace(security, jwt_leeway=1.0))
    assert auth.api_keys is store
    assert auth.verifier.leeway == 1.0


@pytest.mark.parametrize(
    "change,error",
    [
        ({"jwt_secret": ""}, JwtSecretError),
        ({"jwt_algorithms": ("RS256",)}, ValueError),
        ({"jwt_secret_file": "/nonexistent/secret"}, JwtSecretError),
        ({"api_keys_file": "CORRUPT"}, ApiKeyStoreError),
    ],
)
def test_invalid_reload_changes_nothing(auth, security, tmp_path, change, error):
    if change.get("api_keys_file") == "CORRUPT":
        bad = tmp_path / "corrupt.json"
        bad.write_text("{")
        change = {"api_keys_file": str(bad)}
    store, verifier = auth.api_keys, auth.verifier
    with pytest.raises(error):
        auth.apply_settings(dataclasses.replace(security, **change))
    assert auth.api_keys is store and auth.verifier is verifier and auth.security is security
    assert auth.authenticate(mint(), now=NOW).user_id == "alice"


def test_construction_fails_clearly(security, tmp_path):
    with pytest.raises(JwtSecretError, match=re.escape(ENV_VAR)):
        Authenticator(security, env={ENV_VAR: ""})
    bad = tmp_path / "corrupt.json"
    bad.write_text("[]")
    with pytest.raises(ApiKeyStoreError, match="expected an object"):
        Authenticator(dataclasses.replace(security, api_keys_file=str(bad)), env={})


def test_real_config_section_is_accepted(tmp_path):
    config = pytest.importorskip("camera_service.config")
    section = config.SecuritySettings(state_dir=str(tmp_path / "var"), jwt_secret="c" * 64)
    auth = Authenticator(section, env={})
    assert auth.api_keys.path == str(tmp_path / "var" / "api_keys.json")
    assert auth.authenticate(mint(secret="c" * 64), now=NOW).role == "operator"
