"""Authentication over the wire (PROTOCOL 3, 4.2-4.5, 9.1/9.3/9.5/9.6).

Real server, real picows clients, real JWTs and real API key files: nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from camera_service.auth.api_keys import ApiKeyStore
from camera_service.client import RpcCallError, RpcClient

AUTH_FAILED = (-32001, "Authentication failed")
AUTH_REQUIRED = (-32001, "Authentication required")
PERMISSIONS = {
    "viewer": ["view"],
    "operator": ["view", "control"],
    "admin": ["view", "control", "admin"],
}
RESULT_KEYS = {
    "authenticated",
    "role",
    "permissions",
    "user_id",
    "expires_at",
    "session_id",
    "auth_method",
}
OTHER_SECRET = "another-secret-" + "y" * 60


# -- helpers -------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def hmac_sign(header: str, payload: str, key: str, digest=hashlib.sha256) -> str:
    sig = hmac.new(key.encode(), f"{header}.{payload}".encode(), digest).digest()
    return f"{header}.{payload}.{b64(sig)}"


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def secret(test_overrides) -> str:
    return test_overrides["security"]["jwt_secret"]


_DROP = object()


@pytest.fixture
def claims():
    def make(role: str = "viewer", user: str = "alice", ttl: float = 3600, **extra: Any):
        now = int(time.time())
        out = {"user_id": user, "role": role, "iat": now, "exp": now + ttl, **extra}
        return {k: v for k, v in out.items() if v is not _DROP}

    return make


@pytest.fixture
def mint(secret, claims):
    """`mint(role, user, ttl, key=secret, **claims)`: an HS256 JWT; claim=_DROP removes it."""

    def make(
        role: str = "viewer",
        user: str = "alice",
        ttl: float = 3600,
        *,
        key: str | None = None,
        **extra: Any,
    ) -> str:
        return jwt.encode(claims(role, user, ttl, **extra), key or secret, algorithm="HS256")

    return make


def key_path(app) -> str:
    return app.authenticator.api_keys.path


async def rpc_error(client: RpcClient, method: str, params: dict | None = None) -> RpcCallError:
    with pytest.raises(RpcCallError) as info:
        await client.call(method, params, timeout=5)
    return info.value


async def expect_auth_failed(client, method, params, reason):
    err = await rpc_error(client, method, params)
    assert (err.code, err.message, err.data) == (*AUTH_FAILED, {"reason": reason})


async def expect_auth_required(client, method="ping", params=None):
    err = await rpc_error(client, method, params)
    assert (err.code, err.message) == AUTH_REQUIRED
    assert set(err.data) == {"reason"} and err.data["reason"]


async def expect_denied(client, method, params, role, required="admin"):
    err = await rpc_error(client, method, params)
    assert (err.code, err.message) == (-32003, "Insufficient permissions")
    assert set(err.data) == {"reason", "required_role", "role"}
    assert (err.data["required_role"], err.data["role"]) == (required, role)


def assert_session_result(result, *, role, user_id, expires_at, auth_method):
    assert set(result) == RESULT_KEYS
    assert result["authenticated"] is True
    assert result["role"] == role
    assert result["permissions"] == PERMISSIONS[role]
    assert result["user_id"] == user_id
    assert result["expires_at"] == expires_at
    assert result["auth_method"] == auth_method
    sid = uuid.UUID(result["session_id"])
    assert sid.version == 4 and str(sid) == result["session_id"]


# -- authenticate (4.2) --------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["auth_token", "token"])
@pytest.mark.parametrize("auth_type", [None, "auto", "jwt"])
@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
async def test_authenticate_jwt_result_exact(connect, mint, param, auth_type, role):
    client = await connect()
    exp = int(time.time()) + 3600
    params = {param: mint(role, user="carol", exp=exp)}
    if auth_type is not None:
        params["auth_type"] = auth_type
    result = await client.call("authenticate", params)
    assert_session_result(
        result, role=role, user_id="carol", expires_at=utc(exp), auth_method="jwt"
    )
    assert await client.call("ping") == "pong"


async def test_each_authenticate_gets_a_fresh_session_id(connect, mint):
    a, b = await connect(), await connect()
    ids = {(await c.authenticate(mint()))["session_id"] for c in (a, b, a)}
    assert len(ids) == 3


async def test_failed_reauthentication_keeps_previous_session(connect, mint):
    client = await connect()
    first = await client.authenticate(mint("admin", user="root"))
    await expect_auth_failed(
        client,
        "authenticate",
        {"auth_token": mint("viewer", key=OTHER_SECRET)},
        "invalid signature",
    )
    await expect_auth_failed(client, "authenticate", {"auth_token": "x" * 40}, "unknown API key")
    # Still the admin session it was.
    assert await client.call("ping") == "pong"
    metrics = await client.call("get_metrics")
    assert isinstance(metrics, dict) and "uptime" in metrics
    assert first["role"] == "admin"


async def test_reauthentication_replaces_session_up_and_down(connect, mint):
    client = await connect()
    viewer1 = await client.authenticate(mint("viewer", user="v1"))
    await expect_denied(client, "get_metrics", None, "viewer")
    admin = await client.authenticate(mint("admin", user="a1"))
    assert (admin["role"], admin["user_id"]) == ("admin", "a1")
    assert admin["session_id"] != viewer1["session_id"]
    assert isinstance(await client.call("get_metrics"), dict)
    viewer2 = await client.authenticate(mint("viewer", user="v2"))
    assert viewer2["session_id"] not in (viewer1["session_id"], admin["session_id"])
    await expect_denied(client, "get_metrics", None, "viewer")
    assert await client.call("ping") == "pong"


@pytest.mark.parametrize(
    "params, names",
    [
        ({"auth_token": 12345}, "auth_token"),
        ({"auth_token": ["a.b.c"]}, "auth_token"),
        ({"auth_token": None}, "auth_token"),
        ({"auth_token": {"t": 1}}, "auth_token"),
        ({"auth_token": True}, "auth_token"),
        ({"token": 7}, "token"),
        ({}, "auth_token"),
        ({"auth_type": "jwt"}, "auth_token"),
    ],
)
async def test_authenticate_token_param_wrong_type(raw_connect, params, names):
    client = await raw_connect()
    reply = await client.request(
        {"jsonrpc": "2.0", "method": "authenticate", "id": 1, "params": params}
    )
    assert reply["id"] == 1 and "result" not in reply
    err = reply["error"]
    assert (err["code"], err["message"]) == (-32602, "Invalid parameters")
    assert names in err["data"]["reason"]
    # Not an authentication failure, and no session.
    await client.request({"jsonrpc": "2.0", "method": "ping", "id": 2})


@pytest.mark.parametrize("auth_type", ["password", "JWT", "", "api-key", 1, ["jwt"]])
async def test_authenticate_unknown_auth_type(connect, mint, auth_type):
    client = await connect()
    err = await rpc_error(client, "authenticate", {"auth_token": mint(), "auth_type": auth_type})
    assert (err.code, err.message) == (-32602, "Invalid parameters")
    assert "auth_type" in err.data["reason"]
    await expect_auth_required(client)


async def test_authenticate_array_params_is_invalid_params(connect, mint):
    client = await connect()
    err = await rpc_error(client, "authenticate", [mint()])
    assert (err.code, err.message) == (-32602, "Invalid parameters")


# -- JWT attacks over the wire (4.3) -------------------------------------------------------------


def _forged(case: str, secret: str, claims) -> str:
    good = claims("viewer")
    if case == "alg_none":
        return f"{seg({'alg': 'none', 'typ': 'JWT'})}.{seg(good)}."
    if case == "alg_None_capitalised":
        return f"{seg({'alg': 'None', 'typ': 'JWT'})}.{seg(good)}."
    if case == "alg_missing":
        return hmac_sign(seg({"typ": "JWT"}), seg(good), secret)
    if case in ("RS256", "ES256", "PS256"):
        return f"{seg({'alg': case, 'typ': 'JWT'})}.{seg(good)}.{b64(os.urandom(256))}"
    if case == "rs256_header_hmac_signed":
        return hmac_sign(seg({"alg": "RS256", "typ": "JWT"}), seg(good), secret)
    if case == "hs512_not_allowed":
        return hmac_sign(seg({"alg": "HS512", "typ": "JWT"}), seg(good), secret, hashlib.sha512)
    header = seg({"alg": "HS256", "typ": "JWT"})
    if case == "other_secret":
        return hmac_sign(header, seg(good), OTHER_SECRET)
    if case == "tampered_payload":
        signed = hmac_sign(header, seg(good), secret)
        return f"{header}.{seg(claims('admin'))}.{signed.split('.')[2]}"
    if case == "tampered_signature":
        h, p, s = hmac_sign(header, seg(good), secret).split(".")
        # The first character: the last one carries unused padding bits.
        return f"{h}.{p}.{('B' if s[0] == 'A' else 'A') + s[1:]}"
    if case == "empty_signature":
        return f"{header}.{seg(good)}."
    if case == "malformed":
        return "abc.def.ghi"
    payloads = {
        "expired": claims("viewer", ttl=-10),
        "exp_now": claims("viewer", ttl=0),
        "missing_user_id": claims("viewer", user_id=_DROP),
        "missing_role": claims(_DROP),
        "missing_exp": claims("viewer", exp=_DROP),
        "null_role": claims(None),
        "unknown_role": claims("superuser"),
        "role_wrong_type": claims(3),
        "empty_user_id": claims("viewer", user=""),
        "exp_string": claims("viewer", exp="9999999999"),
        "nbf_future": claims("viewer", nbf=int(time.time()) + 60),
        "iat_future": claims("viewer", iat=int(time.time()) + 60),
    }
    return hmac_sign(header, seg(payloads[case]), secret)


JWT_CASES = {
    "alg_none": "algorithm not allowed",
    "alg_None_capitalised": "algorithm not allowed",
    "alg_missing": "algorithm not allowed",
    "RS256": "algorithm not allowed",
    "ES256": "algorithm not allowed",
    "PS256": "algorithm not allowed",
    "rs256_header_hmac_signed": "algorithm not allowed",
    "hs512_not_allowed": "algorithm not allowed",
    "other_secret": "invalid signature",
    "tampered_payload": "invalid signature",
    "tampered_signature": "invalid signature",
    "empty_signature": "invalid signature",
    "malformed": "malformed token",
    "expired": "token expired",
    "exp_now": "token expired",
    "missing_user_id": "missing claim: user_id",
    "missing_role": "missing claim: role",
    "missing_exp": "missing claim: exp",
    "null_role": "missing claim: role",
    "unknown_role": "invalid role: superuser",
    "role_wrong_type": "invalid claim: role (expected a string)",
    "empty_user_id": "invalid claim: user_id (expected a non-empty string)",
    "exp_string": "invalid claim: exp (expected a number)",
    "nbf_future": "token not yet valid",
    "iat_future": "token issued in the future",
}


@pytest.mark.parametrize("case", list(JWT_CASES))
async def test_bad_jwt_rejected_over_the_wire(connect, secret, claims, case):
    token = _forged(case, secret, claims)
    reason = JWT_CASES[case]
    client = await connect()
    await expect_auth_failed(client, "authenticate", {"auth_token": token}, reason)
    await expect_auth_failed(client, "authenticate", {"token": token, "auth_type": "jwt"}, reason)
    # As a per-request token too, and no session was created by any of it.
    await expect_auth_failed(client, "ping", {"auth_token": token}, reason)
    await expect_auth_failed(client, "get_server_info", {"token": token}, reason)
    await expect_auth_required(client)


async def test_bad_jwt_does_not_replace_admin_session(connect, secret, claims):
    client = await connect("admin")
    await expect_auth_failed(
        client,
        "authenticate",
        {"auth_token": _forged("tampered_payload", secret, claims)},
        "invalid signature",
    )
    assert isinstance(await client.call("get_server_info"), dict)


# -- expiry during a session (4.5, 9.5) ----------------------------------------------------------


async def test_session_expires_mid_connection(connect, mint):
    client = await connect()
    exp = time.time() + 1.5
    result = await client.authenticate(mint("admin", user="short", exp=exp))
    assert result["expires_at"] == utc(int(exp))
    assert await client.call("ping") == "pong"
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    await expect_auth_failed(client, "ping", None, "token expired")
    # The session is gone now: not "expired" forever (9.5), just unauthenticated.
    await expect_auth_required(client)
    await expect_auth_required(client, "get_metrics")
    again = await client.authenticate(mint("viewer", user="renewed"))
    assert (again["role"], again["user_id"]) == ("viewer", "renewed")
    assert await client.call("ping") == "pong"


async def test_expired_session_reports_expiry_before_role(connect, mint):
    """An expired viewer calling an admin method is told the token expired, not -32003."""
    client = await connect()
    exp = time.time() + 1.0
    await client.authenticate(mint("viewer", exp=exp))
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    await expect_auth_failed(client, "get_metrics", None, "token expired")
    await expect_auth_required(client, "get_metrics")


async def test_leeway_extends_acceptance_and_session(start_app, connect, mint):
    app = await start_app({"security": {"jwt_leeway": 2}})
    client = await connect(target=app)
    exp = int(time.time()) - 1  # expired a second ago, inside the 2 s leeway
    result = await client.authenticate(mint("viewer", exp=exp))
    assert result["expires_at"] == utc(exp)  # the token's exp, without the leeway
    assert await client.call("ping") == "pong"
    await asyncio.sleep(max(0.0, exp + 2 - time.time()) + 0.05)
    await expect_auth_failed(client, "ping", None, "token expired")
    await expect_auth_required(client)


# -- per-request tokens (4.5, 9.6) ---------------------------------------------------------------


@pytest.mark.parametrize("param", ["auth_token", "token"])
async def test_per_request_token_becomes_session(connect, mint, param):
    client = await connect()
    assert await client.call("ping", {param: mint("viewer")}) == "pong"
    assert await client.call("ping") == "pong"
    await expect_denied(client, "get_metrics", None, "viewer")


async def test_per_request_admin_token_on_viewer_session_is_for_that_call_only(connect, mint):
    client = await connect("viewer")
    metrics = await client.call("get_metrics", {"auth_token": mint("admin", user="boss")})
    assert isinstance(metrics, dict) and "uptime" in metrics
    await expect_denied(client, "get_metrics", None, "viewer")
    await expect_denied(client, "get_server_info", None, "viewer")
    assert await client.call("ping") == "pong"


async def test_invalid_per_request_token_on_authenticated_connection(connect, mint):
    client = await connect("admin")
    await expect_auth_failed(
        client, "ping", {"auth_token": mint(key=OTHER_SECRET)}, "invalid signature"
    )
    await expect_auth_failed(
        client, "get_metrics", {"auth_token": mint("admin", ttl=-5)}, "token expired"
    )
    await expect_auth_failed(client, "ping", {"token": "not-a-key-" + "z" * 30}, "unknown API key")
    # The session itself is untouched.
    assert isinstance(await client.call("get_metrics"), dict)


async def test_per_request_token_of_wrong_type_is_invalid_params(connect):
    client = await connect("viewer")
    err = await rpc_error(client, "ping", {"auth_token": 42})
    assert (err.code, err.message) == (-32602, "Invalid parameters")
    assert "auth_token" in err.data["reason"]


@pytest.mark.parametrize("param", ["auth_token", "token"])
async def test_per_request_null_token_is_invalid_params(connect, param):
    client = await connect("viewer")
    err = await rpc_error(client, "ping", {param: None})
    assert (err.code, err.message) == (-32602, "Invalid parameters")
    assert param in err.data["reason"]


async def test_per_request_token_is_not_sticky(connect, mint):
    """PROTOCOL 9.6: every later token is validated and used for its call."""
    client = await connect()
    assert await client.call("ping", {"auth_token": mint("viewer", user="first")}) == "pong"
    # A later, different, valid token is honoured (not ignored in favour of the first).
    assert isinstance(await client.call("get_metrics", {"auth_token": mint("admin")}), dict)
    # A later invalid token is rejected (not waved through on the first one's strength).
    await expect_auth_failed(
        client, "ping", {"auth_token": mint(key=OTHER_SECRET)}, "invalid signature"
    )
    await expect_auth_failed(
        client, "ping", {"auth_token": mint("viewer", ttl=-1)}, "token expired"
    )
    # A later lower token gets its own role for its call.
    await expect_denied(client, "get_metrics", {"auth_token": mint("operator")}, "operator")
    # The session is still the first token's.
    await expect_denied(client, "get_metrics", None, "viewer")
    assert await client.call("ping") == "pong"


async def test_per_request_token_does_not_replace_existing_session(connect, mint):
    client = await connect()
    first = await client.authenticate(mint("admin", user="root"))
    assert await client.call("ping", {"auth_token": mint("viewer")}) == "pong"
    assert isinstance(await client.call("get_status"), dict)
    assert first["role"] == "admin"


# -- API keys over the wire (4.4, 9.3) -----------------------------------------------------------


async def poll(predicate, timeout: float = 3.0, interval: float = 0.05) -> float:
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@pytest.mark.parametrize("auth_type", ["auto", "api_key"])
@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
async def test_api_key_created_before_start(start_app, connect, test_overrides, role, auth_type):
    path = os.path.join(test_overrides["security"]["state_dir"], "api_keys.json")
    key, entry = ApiKeyStore(path).create(role, f"{role} key")
    app = await start_app()
    assert key_path(app) == path
    client = await connect(target=app)
    result = await client.authenticate(key, auth_type)
    assert_session_result(
        result, role=role, user_id=f"api_key:{entry.key_id}", expires_at=None, auth_method="api_key"
    )
    assert await client.call("ping") == "pong"
    if role == "admin":
        assert isinstance(await client.call("get_server_info"), dict)
    else:
        await expect_denied(client, "get_server_info", None, role)


async def test_api_key_with_expiry_reports_it(app, connect):
    key, entry = ApiKeyStore(key_path(app)).create("operator", "temp", expires_days=2)
    assert entry.expires_at is not None

    async def accepted():
        client = await connect()
        try:
            result = await client.authenticate(key)
        except RpcCallError:
            return False
        assert_session_result(
            result,
            role="operator",
            user_id=f"api_key:{entry.key_id}",
            expires_at=entry.expires_at,
            auth_method="api_key",
        )
        assert result["expires_at"] == utc(entry.expires_ts)
        return True

    await poll(accepted)


async def test_api_key_created_after_start_is_picked_up_without_restart(app, connect):
    store = ApiKeyStore(key_path(app))
    key, entry = store.create("admin", "late")

    async def accepted():
        client = await connect()
        try:
            return (await client.authenticate(key))["role"] == "admin"
        except RpcCallError as exc:
            assert exc.data == {"reason": "unknown API key"}
            return False

    assert await poll(accepted, timeout=3.0) < 2.0


async def test_api_key_as_per_request_token(app, connect):
    key, _ = ApiKeyStore(key_path(app)).create("admin", "per-request")
    client = await connect()

    async def accepted():
        try:
            return isinstance(await client.call("get_metrics", {"auth_token": key}), dict)
        except RpcCallError as exc:
            assert (exc.code, exc.data) == (-32001, {"reason": "unknown API key"})
            return False

    await poll(accepted)
    assert await client.call("ping") == "pong"  # became the session


async def test_api_key_wrong_auth_type(start_app, connect, test_overrides, mint):
    path = os.path.join(test_overrides["security"]["state_dir"], "api_keys.json")
    key, _ = ApiKeyStore(path).create("viewer", "k")
    app = await start_app()
    client = await connect(target=app)
    await expect_auth_failed(
        client, "authenticate", {"auth_token": key, "auth_type": "jwt"}, "malformed token"
    )
    await expect_auth_failed(
        client, "authenticate", {"auth_token": mint(), "auth_type": "api_key"}, "unknown API key"
    )
    await expect_auth_required(client)


async def test_random_strings_rejected_while_real_keys_exist(start_app, connect, test_overrides):
    """PROTOCOL 9.3: the reference took any 32-character string once a key existed."""
    path = os.path.join(test_overrides["security"]["state_dir"], "api_keys.json")
    store = ApiKeyStore(path)
    real = [store.create(role, f"real {role}")[0] for role in ("viewer", "operator", "admin")]
    app = await start_app({"security": {"max_auth_failures": 1000, "rate_limit_rpm": 0}})
    client = await connect(target=app)
    for candidates in (
        [secrets.token_urlsafe(24) for _ in range(100)],  # 32 url-safe characters
        ["csk_" + secrets.token_urlsafe(32) for _ in range(100)],  # shaped like a real key
        [k[:-1] + ("A" if k[-1] != "A" else "B") for k in real],  # one character off
        [k[:32] for k in real],  # a real key's prefix
    ):
        assert all(c not in real for c in candidates)
        calls = [
            ("authenticate", {"auth_token": c, "auth_type": a})
            for c in candidates
            for a in ("auto", "api_key")
        ]
        results = []
        for i in range(0, len(calls), 100):  # server.max_batch
            results += await client.batch(calls[i : i + 100], timeout=10)
        assert len(results) == 2 * len(candidates)
        for res in results:
            assert isinstance(res, RpcCallError), res
            assert (res.code, res.message, res.data) == (
                *AUTH_FAILED,
                {"reason": "unknown API key"},
            )
    await expect_auth_required(client)
    assert (await client.authenticate(real[2]))["role"] == "admin"


async def test_short_strings_rejected(app, connect):
    ApiKeyStore(key_path(app)).create("viewer", "k")
    client = await connect()
    await expect_auth_failed(client, "authenticate", {"auth_token": "x" * 31}, "malformed API key")
    await expect_auth_failed(client, "authenticate", {"auth_token": ""}, "malformed API key")


async def test_revocation_applies_without_restart(start_app, connect, test_overrides):
    path = os.path.join(test_overrides["security"]["state_dir"], "api_keys.json")
    key, entry = ApiKeyStore(path).create("operator", "to revoke")
    other_key, _ = ApiKeyStore(path).create("viewer", "stays")
    app = await start_app()
    client = await connect(target=app)
    assert (await client.authenticate(key))["role"] == "operator"

    # A separate store on the same file, as the CLI in another process would do it.
    assert ApiKeyStore(path).revoke(entry.key_id) is True
    last_reason: list[str] = []

    async def rejected():
        probe = await connect(target=app)
        try:
            await probe.authenticate(key)
        except RpcCallError as exc:
            assert (exc.code, exc.message) == AUTH_FAILED
            last_reason.append(exc.data["reason"])
            return True
        return False

    assert await poll(rejected, timeout=3.0) < 2.0
    assert last_reason == ["API key revoked"]
    # It stays rejected, per-request too, while the other key still works.
    fresh = await connect(target=app)
    await expect_auth_failed(fresh, "authenticate", {"auth_token": key}, "API key revoked")
    await expect_auth_failed(fresh, "ping", {"auth_token": key}, "API key revoked")
    assert (await fresh.authenticate(other_key))["role"] == "viewer"


async def test_expired_api_key_rejected(start_app, connect, test_overrides):
    path = os.path.join(test_overrides["security"]["state_dir"], "api_keys.json")
    key, entry = ApiKeyStore(path).create(
        "admin", "old", expires_days=1, now=time.time() - 2 * 86400
    )
    assert entry.expires_ts < time.time()
    app = await start_app()
    client = await connect(target=app)
    await expect_auth_failed(client, "authenticate", {"auth_token": key}, "API key expired")
    await expect_auth_failed(
        client, "authenticate", {"auth_token": key, "auth_type": "api_key"}, "API key expired"
    )
    await expect_auth_failed(client, "get_metrics", {"auth_token": key}, "API key expired")
    await expect_auth_required(client)


# -- the session belongs to the caller (9.1) -----------------------------------------------------


async def test_concurrent_authentication_binds_each_caller(start_app, mint):
    app = await start_app({"security": {"rate_limit_rpm": 0}})
    url = f"ws://127.0.0.1:{app.port}{app.config.server.websocket_path}"
    roles = ["viewer", "operator", "admin"]
    n = 200
    clients = await asyncio.gather(*(RpcClient.connect(url) for _ in range(n)))
    try:
        tokens = [mint(roles[i % 3], user=f"user-{i}") for i in range(n)]
        # Connect everybody first, then authenticate all at once: the last socket to connect
        # must not receive anybody else's session.
        results = await asyncio.gather(*(c.authenticate(t) for c, t in zip(clients, tokens)))
        for i, result in enumerate(results):
            assert (result["user_id"], result["role"]) == (f"user-{i}", roles[i % 3])
        assert len({r["session_id"] for r in results}) == n

        async def server_info(client):
            try:
                return await client.call("get_server_info", timeout=10)
            except RpcCallError as exc:
                return exc

        answers = await asyncio.gather(*(server_info(c) for c in clients))
        for i, answer in enumerate(answers):
            role = roles[i % 3]
            if role == "admin":
                assert isinstance(answer, dict) and answer["name"] == "Camera Service", answer
            else:
                assert isinstance(answer, RpcCallError), (i, answer)
                assert (answer.code, answer.message) == (-32003, "Insufficient permissions")
                assert (answer.data["role"], answer.data["required_role"]) == (role, "admin")
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
