"""Hostile input over real connections (PROTOCOL.md sections 1, 2 and 4.5).

Each test asserts the exact outcome for the hostile client AND that a second, authenticated
client ("bystander") keeps getting exact answers during and after the attack. Known product
bugs are kept as `xfail(strict=True)` tests with the input, the observed and the expected
outcome in the reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import re
import string
import time

import orjson
import pytest
from conftest import RawClient, fd_count, mint_token, wait_until, ws_url

PARSE_ERROR = {"code": -32700, "message": "Parse error"}

UPGRADE = (
    "GET /ws HTTP/1.1\r\n"
    "Host: 127.0.0.1:{port}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def ping(request_id) -> dict:
    return {"jsonrpc": "2.0", "method": "ping", "id": request_id}


def pong(request_id) -> dict:
    return {"jsonrpc": "2.0", "result": "pong", "id": request_id}


def auth(request_id, token: str) -> dict:
    return {
        "jsonrpc": "2.0",
        "method": "authenticate",
        "id": request_id,
        "params": {"auth_token": token},
    }


_alive_ids = iter(range(10**9))


async def assert_alive(client: RawClient) -> None:
    """One exact ping round trip on an authenticated connection."""
    request_id = f"alive-{next(_alive_ids)}"
    assert await client.request(ping(request_id), timeout=10) == pong(request_id)


@contextlib.asynccontextmanager
async def keeps_answering(client: RawClient, interval: float = 0.05):
    """Ping `client` in a loop while the body runs; every reply must be exact and at least
    one must have come back during the body."""
    stats = {"pings": 0}
    stop = asyncio.Event()

    async def loop():
        while not stop.is_set():
            await assert_alive(client)
            stats["pings"] += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    task = asyncio.create_task(loop())
    try:
        yield stats
    finally:
        stop.set()
        await task  # re-raises a failed round trip
    assert stats["pings"] >= 1, stats


@pytest.fixture
async def bystander(raw_connect):
    return await raw_connect(role="viewer")


# ---------------------------------------------------------------------------------------
# A minimal WebSocket client on raw streams, for what picows' client will not do
# (read the refusal's headers, abort without a close frame, never finish a handshake)


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    assert not b1 & 0x80, "server frames are never masked"
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


async def raw_upgrade(port: int):
    """(status, headers, body, reader, writer, key) of one raw upgrade request."""
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE.format(port=port, key=key).encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head[:-4].decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.1 (\d{3})(?: .*)?", lines[0])
    assert match, lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return int(match.group(1)), headers, body, reader, writer, key


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


# ---------------------------------------------------------------------------------------
# Frames: size, encoding, type


async def test_ten_megabyte_message_closes_1009(app, raw_connect, bystander):
    victim = await raw_connect(role="viewer")
    victim.send(
        b'{"jsonrpc":"2.0","method":"ping","id":1,"params":{"x":"'
        + b"a" * (10 * 1024 * 1024)
        + b'"}}'
    )
    await assert_alive(bystander)  # during
    assert await victim.wait_closed(10) == 1009
    assert victim.listener.messages.empty()  # never answered
    await assert_alive(bystander)
    await wait_until(lambda: len(app.table) == 1, 5, "the victim to be gone")


async def test_invalid_utf8_closes_1007(app, raw_connect, bystander):
    victim = await raw_connect(role="viewer")
    victim.send(b'{"jsonrpc":"2.0","method":"ping","id":"\xff\xfe"}')
    await assert_alive(bystander)
    assert await victim.wait_closed(5) == 1007
    assert victim.listener.messages.empty()
    await assert_alive(bystander)


async def test_binary_frame_closes_1003(app, raw_connect, bystander):
    victim = await raw_connect(role="viewer")
    victim.send_binary(orjson.dumps(ping(1)))
    await assert_alive(bystander)
    assert await victim.wait_closed(5) == 1003
    assert victim.listener.messages.empty()
    await assert_alive(bystander)


# ---------------------------------------------------------------------------------------
# Deep nesting: a parse error with a reason, and the connection stays open

DEEP = {
    "arrays": b"[" * 100_000 + b"]" * 100_000,
    "objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "inside-params": b'{"jsonrpc":"2.0","method":"ping","id":5,"params":{"x":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}}",
    "unclosed": b"[" * 500_000,
}


@pytest.mark.parametrize("name", list(DEEP))
async def test_deep_nesting_is_a_parse_error_and_the_connection_stays_open(
    raw_connect, bystander, name
):
    payload = DEEP[name]
    assert len(payload) < 1024 * 1024  # under max_message_bytes: the parser sees it
    victim = await raw_connect(role="viewer")
    victim.send(payload)
    await assert_alive(bystander)
    reply = await victim.recv_json(10)
    assert set(reply) == {"jsonrpc", "error", "id"} and reply["jsonrpc"] == "2.0"
    assert reply["id"] is None
    error = reply["error"]
    assert {k: error[k] for k in ("code", "message")} == PARSE_ERROR
    assert set(error) == {"code", "message", "data"} and set(error["data"]) == {"reason"}
    assert isinstance(error["data"]["reason"], str) and error["data"]["reason"].strip()
    await victim.expect_silence(0.1)
    await assert_alive(victim)  # still open and working
    await assert_alive(bystander)


# ---------------------------------------------------------------------------------------
# Ids beyond 64 bits and huge strings: echoed exactly

BIG_IDS = {
    "2**64": 2**64,
    "2**64+1": 2**64 + 1,
    "-(2**64)-1": -(2**64) - 1,
    "10**100": 10**100,
    "-(10**300)": -(10**300),
    "4000-digits": int("7" * 4000),
}


def huge_string(size: int, seed: int) -> str:
    """`size` characters: mostly ASCII, one in 50 a character JSON escapes or encodes in
    several bytes (quote, backslash, controls, U+2028, 2-, 3- and 4-byte UTF-8)."""
    rng = random.Random(seed)
    plain = string.ascii_letters + string.digits + " /"
    special = '"\\\t\n\x00é日😀\u2028'
    return "".join(
        rng.choice(special) if rng.random() < 0.02 else rng.choice(plain) for _ in range(size)
    )


@pytest.mark.parametrize("method,expected_code", [("ping", None), ("no_such_method", -32601)])
@pytest.mark.parametrize("name", list(BIG_IDS))
async def test_big_integer_ids_are_echoed_exactly(
    raw_connect, bystander, name, method, expected_code
):
    request_id = BIG_IDS[name]
    victim = await raw_connect(role="viewer")
    victim.send(
        b'{"jsonrpc":"2.0","method":"%s","id":%s}' % (method.encode(), str(request_id).encode())
    )
    raw = await victim.recv(10)
    reply = json.loads(raw)  # the standard library decodes big integers exactly
    assert type(reply["id"]) is int and reply["id"] == request_id
    assert str(request_id).encode() in raw
    if expected_code is None:
        assert reply == pong(request_id)
    else:
        assert reply["error"]["code"] == expected_code
    await assert_alive(bystander)


@pytest.mark.parametrize("method", ["ping", "no_such_method"])
async def test_900_kb_string_id_is_echoed_exactly(raw_connect, bystander, method):
    request_id = huge_string(900_000, seed=1)
    payload = json.dumps(
        {"jsonrpc": "2.0", "method": method, "id": request_id}, ensure_ascii=False
    ).encode()
    assert 900_000 < len(payload) < 1024 * 1024
    victim = await raw_connect(role="viewer")
    victim.send(payload)
    await assert_alive(bystander)
    reply = json.loads(await victim.recv(10))
    assert reply["id"] == request_id
    if method == "ping":
        assert reply == pong(request_id)
    else:
        assert reply["error"]["code"] == -32601
    await assert_alive(victim)
    await assert_alive(bystander)


async def test_huge_strings_in_method_and_params_are_not_echoed_back(raw_connect, bystander):
    victim = await raw_connect(role="viewer")
    method = huge_string(900_000, seed=2)
    reply = await victim.request({"jsonrpc": "2.0", "method": method, "id": 1}, timeout=10)
    assert reply["error"]["code"] == -32601 and reply["id"] == 1
    assert len(json.dumps(reply)) < 1000  # the reason quotes at most a short prefix
    device = huge_string(900_000, seed=3)
    reply = await victim.request(
        {"jsonrpc": "2.0", "method": "get_camera_status", "id": 2, "params": {"device": device}},
        timeout=10,
    )
    assert reply == {
        "jsonrpc": "2.0",
        "id": 2,
        "error": {
            "code": -1000,
            "message": "Camera not found",
            "data": {
                "reason": "no camera with this device path or stream name",
                "device": device[:256],
            },
        },
    }
    await assert_alive(bystander)


async def test_5000_digit_integer_id_is_echoed_exactly(raw_connect, bystander):
    victim = await raw_connect(role="viewer")
    digits = "9" * 5000
    victim.send(b'{"jsonrpc":"2.0","method":"ping","id":' + digits.encode() + b"}")
    raw = await victim.recv(10)
    await assert_alive(bystander)
    assert raw == b'{"jsonrpc":"2.0","result":"pong","id":' + digits.encode() + b"}"


@pytest.mark.parametrize("method", ["get_camera_status", "get_camera_capabilities"])
async def test_device_with_5000_digits_is_camera_not_found(raw_connect, bystander, method):
    victim = await raw_connect(role="viewer")
    device = "camera" + "1" * 5000
    reply = await victim.request(
        {"jsonrpc": "2.0", "method": method, "id": 1, "params": {"device": device}}
    )
    await assert_alive(bystander)
    assert reply == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {
            "code": -1000,
            "message": "Camera not found",
            "data": {
                "reason": "no camera with this device path or stream name",
                "device": device[:256],
            },
        },
    }


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
async def test_utf16_encoded_json_is_a_parse_error(raw_connect, bystander, encoding):
    victim = await raw_connect(role="viewer")
    victim.send('{"jsonrpc":"2.0","method":"ping","id":1}'.encode(encoding))
    reply = await victim.recv_json()
    await assert_alive(bystander)
    assert reply["id"] is None and reply["error"]["code"] == -32700, reply


# ---------------------------------------------------------------------------------------
# Batches and pipelining


async def test_batch_of_10000_gets_one_max_batch_error(app, raw_connect, bystander):
    victim = await raw_connect(role="viewer")
    before = app.dispatcher.total_requests
    payload = orjson.dumps([ping(i) for i in range(10_000)])
    assert len(payload) < 1024 * 1024
    victim.send(payload)
    await assert_alive(bystander)
    reply = await victim.recv_json(10)
    assert reply == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32600,
            "message": "Invalid Request",
            "data": {"reason": "batch of 10000 requests exceeds the limit of 100"},
        },
    }
    await victim.expect_silence(0.2)  # one reply, none of the 10,000 ran
    assert app.dispatcher.total_requests - before == 2  # the batch, the alive ping
    await assert_alive(victim)
    await assert_alive(bystander)


async def pipeline(app, client: RawClient, count: int) -> tuple[list[dict], float]:
    """Send `count` pings without reading (the client's socket reading is paused until the
    server has handled them all), then read every reply."""
    dispatcher = app.dispatcher
    client.transport.underlying_transport.pause_reading()
    started = time.monotonic()
    before = dispatcher.total_requests
    for i in range(count):
        client.send(b'{"jsonrpc":"2.0","method":"ping","id":%d}' % i)
    await wait_until(
        lambda: dispatcher.total_requests - before >= count,
        30,
        "the server to handle every pipelined request",
    )
    client.transport.underlying_transport.resume_reading()
    replies = [await client.recv_json(10) for _ in range(count)]
    elapsed = time.monotonic() - started
    await client.expect_silence(0.1)
    return replies, elapsed


async def test_10000_pipelined_requests_with_the_default_rate_limit(app, raw_connect, bystander):
    assert (app.config.security.rate_limit_rpm, app.config.security.rate_limit_burst) == (1200, 200)
    dispatcher = app.dispatcher
    victim = await raw_connect(role="viewer")  # its authenticate took one token of 200
    limited_before = dispatcher.error_counts.get(-32002, 0)
    async with keeps_answering(bystander):
        replies, elapsed = await pipeline(app, victim, 10_000)
    assert [r["id"] for r in replies] == list(range(10_000))  # all answered, in order
    answered = [r for r in replies if "result" in r]
    limited = [r for r in replies if "error" in r]
    assert all(r == pong(r["id"]) for r in answered)
    for r in limited:
        assert set(r) == {"jsonrpc", "error", "id"}
        assert r["error"]["code"] == -32002 and r["error"]["message"] == "Rate limit exceeded"
        assert set(r["error"]["data"]) == {"reason", "retry_after"}
        # seconds until the next token at 20/s, rounded to ms (so 0.0 just before a refill)
        assert 0 <= r["error"]["data"]["retry_after"] <= 0.05
    assert replies[:199] == [pong(i) for i in range(199)]  # the rest of the burst first
    # The burst, plus what 1200/min refills while this ran; everything else refused.
    assert 199 <= len(answered) <= 199 + int(20 * elapsed) + 1, (len(answered), elapsed)
    assert len(answered) + len(limited) == 10_000
    assert dispatcher.error_counts.get(-32002, 0) - limited_before == len(limited)
    await assert_alive(bystander)


async def test_10000_pipelined_requests_all_answered_without_rate_limit(start_app, raw_connect):
    app = await start_app({"security": {"rate_limit_rpm": 0}})
    bystander = await raw_connect(target=app, role="viewer")
    victim = await raw_connect(target=app, role="viewer")
    async with keeps_answering(bystander):
        replies, _ = await pipeline(app, victim, 10_000)
    assert replies == [pong(i) for i in range(10_000)]
    await assert_alive(victim)
    await assert_alive(bystander)


# ---------------------------------------------------------------------------------------
# Connections: slowloris, over the limit, dropped without a close frame


async def test_slowloris_handshakes_are_dropped(start_app, raw_connect):
    app = await start_app({"server": {"handshake_timeout": 1}})
    request = UPGRADE.format(port=app.port, key="dGhlIHNhbXBsZSBub25jZQ==").encode()

    async def slow_client() -> tuple[float, bytes, int]:
        opened = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        received = bytearray()
        sent = 0

        async def read_until_dropped():
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(4096):
                    received.extend(chunk)

        reading = asyncio.create_task(read_until_dropped())
        try:
            while not reading.done() and sent < len(request):
                writer.write(request[sent : sent + 1])  # one byte every 0.2 s
                sent += 1
                await asyncio.wait([reading], timeout=0.2)
            await asyncio.wait_for(reading, 10)
            return time.monotonic() - opened, bytes(received), sent
        finally:
            writer.transport.abort()

    attackers = [asyncio.create_task(slow_client()) for _ in range(50)]
    await asyncio.sleep(0.4)
    during = await raw_connect(target=app, role="viewer")  # a normal client gets in meanwhile
    await assert_alive(during)
    results = await asyncio.gather(*attackers)
    for elapsed, received, sent in results:
        assert received == b""  # dropped without an answer
        assert 0.9 <= elapsed <= 2.5, elapsed
        assert sent < len(request)
    assert len(app.table) == 1  # none of them ever became a connection
    await assert_alive(during)
    after = await raw_connect(target=app, role="viewer")
    await assert_alive(after)


async def test_twice_max_connections_concurrent_upgrades(start_app):
    app = await start_app({"server": {"max_connections": 50}})
    server = app.server
    refused_before = server.table.refused
    results = await asyncio.gather(*(raw_upgrade(app.port) for _ in range(100)))
    try:
        accepted = [r for r in results if r[0] == 101]
        refused = [r for r in results if r[0] != 101]
        assert len(accepted) == 50, sorted(r[0] for r in results)
        assert [r[0] for r in refused] == [503] * 50
        for _, headers, body, reader, _, _ in refused:
            assert headers["retry-after"] == "1"
            assert "sec-websocket-accept" not in headers and "upgrade" not in headers
            assert orjson.loads(body) == {"error": "too many connections", "retry_after": 1}
            assert await asyncio.wait_for(reader.read(), 5) == b""  # then closed
        for _, headers, _, _, _, key in accepted:
            assert headers["sec-websocket-accept"] == accept_value(key)
        assert server.table.refused - refused_before == 50
        assert len(server.table) == 50
        # The 50 keep working: authenticate and ping on each, over the raw streams.
        token = mint_token("viewer")
        for n, (_, _, _, _, writer, _) in enumerate(accepted):
            writer.write(
                client_frame(orjson.dumps(auth(n, token))) + client_frame(orjson.dumps(ping(n)))
            )
        for n, (_, _, _, reader, _, _) in enumerate(accepted):
            opcode, data = await asyncio.wait_for(read_frame(reader), 5)
            assert opcode == 1 and orjson.loads(data)["result"]["role"] == "viewer"
            opcode, data = await asyncio.wait_for(read_frame(reader), 5)
            assert (opcode, orjson.loads(data)) == (1, pong(n))
        assert len(server.table) == 50
    finally:
        for result in results:
            result[4].transport.abort()
    await wait_until(lambda: len(server.table) == 0, 5, "the table to empty")


async def test_1000_connections_dropped_without_close_frame(app, raw_connect, bystander):
    server = app.server
    await asyncio.sleep(0.1)
    baseline = fd_count()
    total_before = server.table.total_connections
    token = mint_token("viewer")

    async def open_and_abort(n: int) -> None:
        status, headers, _, _, writer, key = await raw_upgrade(app.port)
        assert status == 101 and headers["sec-websocket-accept"] == accept_value(key)
        if n % 3 == 1:  # a request in flight whose answer will find the socket gone
            writer.write(client_frame(orjson.dumps(ping(n))))
        elif n % 3 == 2:  # a session and a pending request
            writer.write(
                client_frame(orjson.dumps(auth(n, token))) + client_frame(orjson.dumps(ping(n)))
            )
        writer.transport.abort()  # RST, no close frame

    for batch in range(10):
        await asyncio.gather(*(open_and_abort(batch * 100 + i) for i in range(100)))
        await assert_alive(bystander)  # during
    assert server.table.total_connections - total_before == 1000
    await wait_until(lambda: len(server.table) == 1, 10, "the table to drop the 1000")
    await wait_until(
        lambda: abs(fd_count() - baseline) <= 5, 10, f"the fd count to return to {baseline} +- 5"
    )
    await assert_alive(bystander)
    newcomer = await raw_connect(role="viewer")
    await assert_alive(newcomer)


# ---------------------------------------------------------------------------------------
# Authentication failures


async def test_twenty_connections_failing_authentication_are_all_closed_1008(
    app, raw_connect, bystander
):
    bad = "x" * 40  # API-key shaped, unknown
    victims = [await raw_connect() for _ in range(20)]

    async def fail_five(victim: RawClient) -> tuple[list[dict], int]:
        for i in range(5):
            victim.send(orjson.dumps(auth(i, bad)))
        replies = [await victim.recv_json(10) for _ in range(5)]
        return replies, await victim.wait_closed(10)

    async with keeps_answering(bystander):
        outcomes = await asyncio.gather(*(fail_five(v) for v in victims))
    for replies, code in outcomes:
        assert replies == [
            {
                "jsonrpc": "2.0",
                "id": i,
                "error": {
                    "code": -32001,
                    "message": "Authentication failed",
                    "data": {"reason": "unknown API key"},
                },
            }
            for i in range(5)
        ]
        assert code == 1008
    await wait_until(lambda: len(app.table) == 1, 5, "the victims to be gone")
    await assert_alive(bystander)
    again = await RawClient.open(ws_url(app))  # a new good client still gets in
    try:
        assert (await again.request(auth(0, mint_token("viewer"))))["result"]["role"] == "viewer"
        await assert_alive(again)
    finally:
        await again.close()


async def test_fifth_failure_closes_even_when_more_attempts_are_pipelined(raw_connect, bystander):
    victim = await raw_connect()
    for i in range(5):
        victim.send(orjson.dumps(auth(i, "x" * 40)))
    assert [(await victim.recv_json())["id"] for _ in range(5)] == list(range(5))
    assert await victim.wait_closed(5) == 1008
    await assert_alive(bystander)


async def test_pipelined_authentication_attempts_stop_at_the_limit(raw_connect, bystander):
    victim = await raw_connect()
    victim.transport.underlying_transport.pause_reading()
    for i in range(200):
        victim.send(orjson.dumps(auth(i, "x" * 40)))
    await asyncio.sleep(0.5)
    victim.transport.underlying_transport.resume_reading()
    assert await victim.wait_closed(5) == 1008
    replies = [
        victim.listener.messages.get_nowait() for _ in range(victim.listener.messages.qsize())
    ]
    await assert_alive(bystander)
    assert len(replies) <= 5, f"{len(replies)} authentication attempts were verified"


async def test_one_batch_cannot_try_more_tokens_than_the_limit(raw_connect, bystander):
    victim = await raw_connect()
    replies = await victim.request([auth(i, "x" * 40) for i in range(100)])
    assert await victim.wait_closed(5) == 1008
    await assert_alive(bystander)
    assert len(replies) == 100
    verified = [r for r in replies if r["error"]["data"]["reason"] == "unknown API key"]
    assert len(verified) <= 5, f"{len(verified)} of 100 tokens in one batch were verified"
