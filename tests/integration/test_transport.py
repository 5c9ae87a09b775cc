"""PROTOCOL.md section 1 against the real server: frames and close codes, HTTP routing, the
connection limit, slow readers, keepalive, handshake timeout, dropped connections."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

import orjson
import pytest
from conftest import RawClient, RawListener, mint_token, parse_head, wait_until, ws_url
from picows import WSCloseCode, WSError, WSMsgType, ws_connect

from camera_service.config import ConfigError

PING = b'{"jsonrpc":"2.0","method":"ping","id":1}'
PONG = {"jsonrpc": "2.0", "result": "pong", "id": 1}

UPGRADE = (
    "GET {path} HTTP/1.1\r\n"
    "Host: 127.0.0.1:{port}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
)


async def http_exchange(port: int, request: str, timeout: float = 3.0):
    """Send one raw HTTP request; read the whole answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.encode())
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, body


def get(path: str, port: int, method: str = "GET") -> str:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"


async def authed(raw_connect, app=None, **kw) -> RawClient:
    return await raw_connect(target=app, role="viewer", **kw)


# ---------------------------------------------------------------------------------------
# Frames and close codes


async def test_binary_frame_closes_1003(raw_connect, app):
    client = await authed(raw_connect)
    client.send_binary(PING)
    assert await client.wait_closed(3) == 1003
    await client.expect_silence(0.05)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe",
        b"\xc0\xaf",  # overlong "/"
        b"\xed\xa0\x80",  # surrogate U+D800
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b'{"jsonrpc":"2.0","method":"ping","id":"\xe6\x97"}',  # truncated inside valid JSON
        b'{"jsonrpc":"2.0","method":"ping","id":1}\x80',
    ],
    ids=["ff-fe", "overlong", "surrogate", "above-max", "truncated", "trailing-continuation"],
)
async def test_invalid_utf8_closes_1007(raw_connect, payload):
    client = await authed(raw_connect)
    client.send(payload)
    assert await client.wait_closed(3) == 1007
    await client.expect_silence(0.05)


async def test_valid_non_ascii_text_is_answered(raw_connect):
    client = await authed(raw_connect)
    client.send('{"jsonrpc":"2.0","method":"ping","id":"é日😀"}'.encode())
    assert await client.recv_json() == {"jsonrpc": "2.0", "result": "pong", "id": "é日😀"}


def padded_ping(size: int) -> bytes:
    head = b'{"jsonrpc":"2.0","method":"ping","id":"'
    tail = b'"}'
    data = head + b"p" * (size - len(head) - len(tail)) + tail
    assert len(data) == size
    return data


@pytest.fixture
async def small_app(start_app):
    return await start_app({"server": {"max_message_bytes": 1024}})


async def test_message_at_the_limit_is_answered(raw_connect, small_app):
    client = await authed(raw_connect, small_app)
    client.send(padded_ping(1024))
    got = await client.recv_json()
    assert got == {"jsonrpc": "2.0", "result": "pong", "id": "p" * (1024 - 41)}


async def test_single_frame_over_the_limit_closes_1009(raw_connect, small_app):
    client = await authed(raw_connect, small_app)
    client.send(padded_ping(1025))
    assert await client.wait_closed(3) == 1009
    await client.expect_silence(0.05)


def send_fragments(client: RawClient, parts: list[bytes], between=None) -> None:
    t = client.transport
    for i, part in enumerate(parts):
        msg_type = WSMsgType.TEXT if i == 0 else WSMsgType.CONTINUATION
        t.send(msg_type, part, fin=(i == len(parts) - 1))
        if between is not None and i < len(parts) - 1:
            between(t)


def split(data: bytes, n: int) -> list[bytes]:
    step = -(-len(data) // n)
    return [data[i : i + step] for i in range(0, len(data), step)]


async def test_fragmented_message_over_the_limit_closes_1009(raw_connect, small_app):
    client = await authed(raw_connect, small_app)
    send_fragments(client, split(padded_ping(1025), 3))  # each fragment is small
    assert await client.wait_closed(3) == 1009
    await client.expect_silence(0.05)


async def test_many_small_fragments_over_the_limit_close_1009(raw_connect, small_app):
    client = await authed(raw_connect, small_app)
    t = client.transport
    t.send(WSMsgType.TEXT, b"[", fin=False)
    for _ in range(400):  # 2400 bytes in 6-byte pieces, never finished
        t.send(WSMsgType.CONTINUATION, b"1,2,3,", fin=False)
    assert await client.wait_closed(3) == 1009


def pong_for(data: bytes) -> dict:
    return {"jsonrpc": "2.0", "result": "pong", "id": orjson.loads(data)["id"]}


@pytest.mark.parametrize("size,parts", [(1024, 3), (300, 2), (1000, 50), (42, 42)])
async def test_fragmented_message_below_the_limit_is_reassembled(
    raw_connect, small_app, size, parts
):
    client = await authed(raw_connect, small_app)
    data = padded_ping(size)
    pieces = split(data, parts)
    assert len(pieces) > 1 and b"".join(pieces) == data
    send_fragments(client, pieces)
    assert await client.recv_json() == pong_for(data)
    # The connection is back to normal afterwards.
    assert await client.request(PING) == PONG


async def test_multibyte_character_split_across_fragments(raw_connect):
    client = await authed(raw_connect)
    data = '{"jsonrpc":"2.0","method":"ping","id":"😀é"}'.encode()
    cut = data.index("😀".encode()) + 2  # inside the 4-byte sequence
    send_fragments(client, [data[:cut], data[cut : cut + 3], data[cut + 3 :]])
    assert await client.recv_json() == {"jsonrpc": "2.0", "result": "pong", "id": "😀é"}


async def test_invalid_utf8_in_fragments_closes_1007(raw_connect):
    client = await authed(raw_connect)
    send_fragments(client, [b'{"jsonrpc":"2.0",', b'"method":"ping","id":"\xc0\xaf"', b"}"])
    assert await client.wait_closed(3) == 1007


async def test_ping_between_fragments_is_allowed(raw_connect):
    client = await authed(raw_connect)
    send_fragments(client, split(PING, 3), between=lambda t: t.send_ping(b"x"))
    assert await client.recv_json() == PONG


async def test_continuation_without_start_closes_1002(raw_connect):
    client = await authed(raw_connect)
    client.transport.send(WSMsgType.CONTINUATION, PING, fin=True)
    assert await client.wait_closed(3) == 1002


async def test_new_message_inside_fragmented_one_closes_1002(raw_connect):
    client = await authed(raw_connect)
    client.transport.send(WSMsgType.TEXT, PING[:10], fin=False)
    client.transport.send(WSMsgType.TEXT, PING, fin=True)
    assert await client.wait_closed(3) == 1002


class PongListener(RawListener):
    def __init__(self):
        super().__init__()
        self.pongs: asyncio.Queue = asyncio.Queue()

    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.PONG:
            self.pongs.put_nowait(frame.get_payload_as_bytes())
        else:
            super().on_ws_frame(transport, frame)


async def test_client_ping_is_answered(app):
    transport, listener = await ws_connect(PongListener, ws_url(app))
    try:
        transport.send_ping(b"hello")
        assert await asyncio.wait_for(listener.pongs.get(), 3) == b"hello"
    finally:
        transport.disconnect()
        await asyncio.wait_for(listener.disconnected.wait(), 2)


async def test_client_close_handshake(raw_connect, app):
    client = await authed(raw_connect)
    assert len(app.table) == 1
    client.transport.send_close(WSCloseCode.OK, b"bye")
    assert await client.wait_closed(3) == 1000  # the server echoes the code
    await wait_for_table(app, 0)


async def wait_for_table(app, size: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    table = app.table
    while len(table) != size:
        assert time.monotonic() < deadline, f"table has {len(table)} connections, want {size}"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------
# HTTP on the same port


@pytest.mark.parametrize(
    "path", ["/nope", "/ws/x", "/WS", "/wss", "/health/nope", "/ws%2F", "/metrics/", "//"]
)
async def test_unknown_path_is_404(app, path):
    status, headers, body = await http_exchange(app.port, get(path, app.port))
    assert status == 404
    assert headers["content-type"].startswith("application/json")
    assert orjson.loads(body) == {"error": "not found"}


async def test_root_is_the_dashboard_page(app):
    # `/` is the dashboard (PROTOCOL 7, 11): static HTML, no data without credentials.
    status, headers, body = await http_exchange(app.port, get("/", app.port))
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<html" in body.lower()


async def test_unknown_path_upgrade_is_404(app):
    status, _, _ = await http_exchange(app.port, UPGRADE.format(path="/other", port=app.port))
    assert status == 404


NON_GET = [
    ("POST", "/ws"),
    ("PUT", "/"),
    ("DELETE", "/ws"),
    ("OPTIONS", "/ws"),
    ("POST", "/health"),
    ("PATCH", "/metrics"),
]


@pytest.mark.parametrize("method,path", NON_GET)
async def test_methods_other_than_get_and_head_are_405(app, method, path):
    status, headers, body = await http_exchange(app.port, get(path, app.port, method))
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert orjson.loads(body) == {"error": "method not allowed"}
    assert "sec-websocket-accept" not in headers
    assert len(app.table) == 0


async def test_head_answers_the_get_headers_without_a_body(app):
    status, headers, body = await http_exchange(app.port, get("/health", app.port, "HEAD"))
    assert status == 200 and body == b""
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) > 0


async def test_query_string_on_ws_path_is_accepted(app):
    transport, listener = await ws_connect(RawListener, ws_url(app) + "?x=1")
    client = RawClient(transport, listener)
    try:
        reply = await client.request(
            {
                "jsonrpc": "2.0",
                "method": "authenticate",
                "id": 1,
                "params": {"auth_token": mint_token("viewer")},
            }
        )
        assert reply["result"]["authenticated"] is True
    finally:
        await client.close()


async def test_health(app):
    status, headers, body = await http_exchange(app.port, get("/health", app.port))
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    doc = orjson.loads(body)
    assert set(doc) == {"status", "timestamp", "uptime", "version"}
    assert doc["status"] == "healthy"
    assert isinstance(doc["version"], str) and re.fullmatch(r"\d+\.\d+\.\d+.*", doc["version"])
    assert isinstance(doc["uptime"], (int, float)) and 0 <= doc["uptime"] < 60
    assert doc["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(doc["timestamp"][:-1]).replace(tzinfo=UTC)
    assert abs(stamp.timestamp() - time.time()) < 5


# ---------------------------------------------------------------------------------------
# Connection limit


async def test_connection_limit_503_before_upgrade(start_app, connect):
    app = await start_app({"server": {"max_connections": 3}})
    clients = [await connect("viewer", target=app) for _ in range(3)]
    assert len(app.table) == 3

    status, headers, body = await http_exchange(app.port, UPGRADE.format(path="/ws", port=app.port))
    assert status == 503
    assert "retry-after" in headers
    assert int(headers["retry-after"]) >= 0
    assert "upgrade" not in headers and "sec-websocket-accept" not in headers
    assert orjson.loads(body)["error"]

    # A real WebSocket client is refused as well.
    with pytest.raises(WSError, match="503"):
        transport, _ = await ws_connect(RawListener, ws_url(app))
        transport.disconnect()

    # Accepted connections are not disturbed.
    for client in clients:
        assert await client.call("ping") == "pong"
    assert len(app.table) == 3

    await clients[0].close()
    await wait_for_table(app, 2)
    newcomer = await connect("viewer", target=app)
    assert await newcomer.call("ping") == "pong"
    for client in clients[1:]:
        assert await client.call("ping") == "pong"
    status, headers, _ = await http_exchange(app.port, UPGRADE.format(path="/ws", port=app.port))
    assert status == 503 and "retry-after" in headers


async def test_http_counts_against_the_connection_limit(start_app, connect):
    """HTTP connections share the limit with WebSocket ones (a streaming download holds its
    connection as long as a WebSocket client does)."""
    app = await start_app({"server": {"max_connections": 1}})
    client = await connect("viewer", target=app)
    status, headers, body = await http_exchange(app.port, get("/nope", app.port))
    assert (status, headers["retry-after"]) == (503, "1")
    assert orjson.loads(body) == {"error": "too many connections", "retry_after": 1}
    await client.close()
    await wait_until(lambda: len(app.table) == 0, 5, "the client to be gone")
    status, _, _ = await http_exchange(app.port, get("/nope", app.port))
    assert status == 404


# ---------------------------------------------------------------------------------------
# Slow reader


async def test_slow_reader_is_closed_1008_and_others_do_not_wait(start_app, raw_connect, connect):
    app = await start_app(
        {"server": {"max_send_buffer_bytes": 65536}, "security": {"rate_limit_rpm": 0}}
    )
    table = app.table
    slow = await raw_connect(target=app, role="viewer")
    (slow_listener,) = tuple(table)  # the server side of `slow`
    fast = await connect("viewer", target=app)

    latencies: list[float] = []
    stop = asyncio.Event()

    async def pinger():
        while not stop.is_set():
            started = time.monotonic()
            assert await fast.call("ping", timeout=5) == "pong"
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.005)

    pinger_task = asyncio.create_task(pinger())
    slow.transport.underlying_transport.pause_reading()
    big = b"[" + b",".join([b"1"] * 100) + b"]"  # 201 bytes in, ~12 KB of errors out
    started = time.monotonic()
    try:
        while not slow_listener.closing:
            assert time.monotonic() - started < 15, "the slow reader was never closed"
            for _ in range(20):
                slow.send(big)
            await asyncio.sleep(0.002)
        closed_after = time.monotonic() - started
        slow.transport.underlying_transport.resume_reading()
        code = await slow.wait_closed(5)
        await asyncio.sleep(0.1)
    finally:
        stop.set()
        await pinger_task
    assert code == 1008
    assert slow_listener not in set(table)
    assert len(latencies) >= 5, latencies
    assert max(latencies) < 0.5, (max(latencies), closed_after)
    assert await fast.call("ping") == "pong"
    assert len(table) == 1


# ---------------------------------------------------------------------------------------
# Keepalive and handshake timeout


async def test_keepalive(start_app, raw_connect):
    app = await start_app({"server": {"ping_interval": 0.3, "ping_timeout": 0.3}})
    answering = await raw_connect(target=app, role="viewer")
    silent = await raw_connect(target=app, enable_auto_pong=False)
    opened = time.monotonic()
    await silent.wait_closed(1.5)
    dropped_after = time.monotonic() - opened
    assert 0.3 <= dropped_after <= 1.5
    remaining = 1.6 - (time.monotonic() - opened)
    if remaining > 0:
        await asyncio.sleep(remaining)
    assert not answering.listener.disconnected.is_set()
    assert await answering.request(PING) == PONG
    await wait_for_table(app, 1)


async def test_ping_timeout_longer_than_interval(start_app, raw_connect):
    # picows waits for the pong within the idle interval: the combination is refused up front.
    with pytest.raises(ConfigError, match=r"server\.ping_timeout: expected at most"):
        await start_app({"server": {"ping_interval": 0.5, "ping_timeout": 1.0}})


@pytest.mark.parametrize(
    "partial",
    [
        b"",
        b"GET /ws HTTP/1.1\r\n",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
    ],
)
async def test_handshake_timeout(start_app, partial):
    app = await start_app({"server": {"handshake_timeout": 0.5}})
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    try:
        opened = time.monotonic()
        writer.write(partial)
        data = await asyncio.wait_for(reader.read(), 3)
        elapsed = time.monotonic() - opened
    finally:
        writer.close()
    assert data == b""
    assert 0.4 <= elapsed <= 1.5, elapsed


# ---------------------------------------------------------------------------------------
# Connections dropped without a close frame


async def open_and_abort(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE.format(path="/ws", port=port).encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, _ = parse_head(head[:-4])
    assert status == 101, head
    writer.transport.abort()


async def test_aborted_connections_leave_the_table_empty(app, raw_connect):
    table = app.table
    before = table.total_connections
    for _ in range(4):
        await asyncio.gather(*(open_and_abort(app.port) for _ in range(50)))
    assert table.total_connections - before == 200
    await wait_for_table(app, 0)
    # ...and the server still works.
    client = await authed(raw_connect)
    assert await client.request(PING) == PONG
    assert len(table) == 1


async def upgrade_status(port: int) -> tuple[int, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE.format(path="/ws", port=port).encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return parse_head(head[:-4])[0], writer


async def test_connection_limit_holds_under_concurrent_upgrades(start_app):
    app = await start_app({"server": {"max_connections": 3}})
    results = await asyncio.gather(*(upgrade_status(app.port) for _ in range(12)))
    try:
        statuses = sorted(status for status, _ in results)
        assert statuses == [101] * 3 + [503] * 9
        assert len(app.table) == 3
    finally:
        for _, writer in results:
            writer.transport.abort()
    await wait_for_table(app, 0)
