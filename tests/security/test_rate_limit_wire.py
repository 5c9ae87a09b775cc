"""Per-connection rate limits and repeated authentication failures over the wire (PROTOCOL 4.5)."""

from __future__ import annotations

import asyncio
import time

import jwt
import orjson
import pytest

from camera_service.client import RpcCallError

LIMITED = {"security": {"rate_limit_rpm": 60, "rate_limit_burst": 5}}


@pytest.fixture
def token(test_overrides):
    secret = test_overrides["security"]["jwt_secret"]

    def make(role: str = "viewer", user: str = "alice", ttl: int = 3600, key: str | None = None):
        now = int(time.time())
        return jwt.encode(
            {"user_id": user, "role": role, "iat": now, "exp": now + ttl},
            key or secret,
            algorithm="HS256",
        )

    return make


def assert_rate_limited(err) -> float:
    assert isinstance(err, RpcCallError), err
    assert (err.code, err.message) == (-32002, "Rate limit exceeded")
    assert set(err.data) == {"reason", "retry_after"}
    assert isinstance(err.data["reason"], str) and err.data["reason"]
    retry_after = err.data["retry_after"]
    assert type(retry_after) in (int, float) and retry_after > 0
    return retry_after


async def call_or_error(client, method, params=None):
    try:
        return await client.call(method, params, timeout=5)
    except RpcCallError as exc:
        return exc


# -- token bucket ----------------------------------------------------------------------------------


async def test_burst_then_limited_then_refilled(start_app, connect, token):
    app = await start_app(LIMITED)
    client = await connect(target=app)
    await client.authenticate(token())  # request 1 of the burst of 5
    for _ in range(4):  # requests 2..5
        assert await client.call("ping") == "pong"
    retry_after = assert_rate_limited(await call_or_error(client, "ping"))
    assert retry_after <= 1.0  # 60 rpm: one token per second
    # A rejected request does not spend anything: still limited, with no longer a wait.
    again = assert_rate_limited(await call_or_error(client, "ping"))
    assert again <= retry_after
    await asyncio.sleep(again + 0.02)
    assert await client.call("ping") == "pong"
    assert_rate_limited(await call_or_error(client, "ping"))


async def test_per_request_token_call_counts(start_app, connect, token):
    app = await start_app(LIMITED)
    client = await connect(target=app)
    assert await client.call("ping", {"auth_token": token()}) == "pong"
    for _ in range(4):
        assert await client.call("ping") == "pong"
    assert_rate_limited(await call_or_error(client, "ping"))


async def test_failed_and_unknown_requests_count_and_authenticate_is_limited(
    start_app, connect, token
):
    app = await start_app(LIMITED)
    client = await connect(target=app)
    for method, code in (
        ("ping", -32001),
        ("get_metrics", -32001),
        ("ping", -32001),
        ("no_such_method", -32601),
    ):
        assert (await call_or_error(client, method)).code == code
    err = await call_or_error(client, "authenticate", {"auth_token": "x" * 40})
    assert (err.code, err.data) == (-32001, {"reason": "unknown API key"})  # request 5
    retry_after = assert_rate_limited(
        await call_or_error(client, "authenticate", {"auth_token": token("admin")})
    )
    await asyncio.sleep(retry_after + 0.02)
    # The refused authenticate did not log in.
    err = await call_or_error(client, "ping")
    assert (err.code, err.message) == (-32001, "Authentication required")
    retry_after = assert_rate_limited(
        await call_or_error(client, "authenticate", {"auth_token": token("admin")})
    )
    await asyncio.sleep(retry_after + 0.02)
    assert (await client.authenticate(token("admin")))["role"] == "admin"


async def test_batch_of_n_counts_as_n(start_app, connect, token):
    app = await start_app(LIMITED)
    client = await connect(target=app)
    await client.authenticate(token())  # 4 tokens left
    results = await client.batch([("ping", None)] * 6)
    assert len(results) == 6
    assert results.count("pong") == 4
    limited = [r for r in results if r != "pong"]
    assert len(limited) == 2
    for err in limited:
        assert_rate_limited(err)
    assert_rate_limited(await call_or_error(client, "ping"))


async def test_limits_are_per_connection(start_app, connect, token):
    app = await start_app(LIMITED)
    first = await connect(target=app)
    await first.authenticate(token())
    assert (await first.batch([("ping", None)] * 5)).count("pong") == 4
    assert_rate_limited(await call_or_error(first, "ping"))
    second = await connect(target=app)
    await second.authenticate(token())
    assert await second.batch([("ping", None)] * 4) == ["pong"] * 4


async def test_default_burst_is_200(app, connect, token):
    client = await connect()
    start = time.monotonic()
    await client.authenticate(token())
    results = await client.batch([("ping", None)] * 100) + await client.batch(
        [("ping", None)] * 100
    )
    elapsed = time.monotonic() - start
    ok = results.count("pong")
    refilled = int(elapsed * 1200 / 60) + 1  # 20 tokens/s at the default 1200 rpm
    assert 199 <= ok <= 199 + refilled
    assert ok < 200  # the 201st request inside the burst window is refused
    for err in results:
        if err != "pong":
            assert_rate_limited(err)


@pytest.mark.parametrize(
    "security",
    [{"rate_limit_rpm": 0}, {"rate_limit_burst": 0}, {"rate_limit_rpm": 0, "rate_limit_burst": 0}],
)
async def test_zero_disables_rate_limit(start_app, connect, token, security):
    app = await start_app({"security": security})
    client = await connect(target=app)
    await client.authenticate(token())
    results = await asyncio.gather(*(client.call("ping", timeout=10) for _ in range(1000)))
    assert results == ["pong"] * 1000
    assert await client.batch([("ping", None)] * 100) == ["pong"] * 100


# -- repeated authentication failures --------------------------------------------------------------


def auth_request(request_id, token):
    return {
        "jsonrpc": "2.0",
        "method": "authenticate",
        "id": request_id,
        "params": {"auth_token": token},
    }


def bad_tokens(token):
    return [
        ("x" * 40, "unknown API key"),
        (token(key="wrong-secret-" + "q" * 40), "invalid signature"),
        (token(ttl=-5), "token expired"),
        ("short", "malformed API key"),
        ("a.b.c", "malformed token"),
    ]


async def test_five_failed_authentications_close_with_1008(raw_connect, token):
    client = await raw_connect()
    for i, (bad, reason) in enumerate(bad_tokens(token)):
        reply = await client.request(auth_request(i, bad))
        assert reply == {
            "jsonrpc": "2.0",
            "id": i,
            "error": {
                "code": -32001,
                "message": "Authentication failed",
                "data": {"reason": reason},
            },
        }
        if i < 4:
            assert not client.listener.disconnected.is_set()
    assert await client.wait_closed(3) == 1008


async def test_failures_in_one_batch_are_all_answered_then_closed(raw_connect):
    client = await raw_connect()
    replies = await client.request([auth_request(i, "x" * 40) for i in range(5)])
    assert sorted(r["id"] for r in replies) == list(range(5))
    for r in replies:
        assert r["error"] == {
            "code": -32001,
            "message": "Authentication failed",
            "data": {"reason": "unknown API key"},
        }
    assert await client.wait_closed(3) == 1008


async def test_failures_as_notifications_also_close(raw_connect):
    client = await raw_connect()
    for _ in range(5):
        client.send(
            orjson.dumps(
                {"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": "x" * 40}}
            )
        )
    assert await client.wait_closed(3) == 1008
    assert client.listener.messages.empty()


async def test_success_resets_the_failure_count(raw_connect, token):
    client = await raw_connect()
    bad = bad_tokens(token)[:4]
    for round_ in range(2):
        for i, (tok, reason) in enumerate(bad):
            reply = await client.request(auth_request(f"{round_}-{i}", tok))
            assert reply["error"]["data"] == {"reason": reason}
        if round_ == 0:
            reply = await client.request(auth_request("ok", token("operator")))
            assert reply["result"]["role"] == "operator"
    # 8 failures in all, never 5 in a row: still open, and the session from the success holds.
    reply = await client.request({"jsonrpc": "2.0", "method": "ping", "id": "p"})
    assert reply == {"jsonrpc": "2.0", "result": "pong", "id": "p"}
    await client.expect_silence(0.2)
    assert not client.listener.disconnected.is_set()


async def test_failure_counts_are_per_connection(raw_connect):
    clients = [await raw_connect(), await raw_connect()]
    for _ in range(4):
        for client in clients:
            reply = await client.request(auth_request(1, "x" * 40))
            assert reply["error"]["code"] == -32001
    for client in clients:
        reply = await client.request({"jsonrpc": "2.0", "method": "ping", "id": 2})
        assert reply["error"]["message"] == "Authentication required"
        assert not client.listener.disconnected.is_set()
