"""The HTTP side of the port (ARCHITECTURE section 7): bodies sent over time next to the
WebSocket hot path. Routes are added through the real HttpApp of a running service, with the
response types the media features use (files, streams, static assets); clients are raw TCP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import time

import orjson
import pytest
from conftest import RawClient, mint_token, parse_head, wait_until, ws_url

from camera_service.client import RpcClient
from camera_service.metrics import process_rss_bytes
from camera_service.web.responses import FileResponse, Request
from camera_service.web.static import StaticFiles
from camera_service.web.streaming import multipart_response

MB = 1024 * 1024


async def send_request(port: int, head: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    return reader, writer


def request_head(path: str, port: int, method: str = "GET", **headers: str) -> str:
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n"


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return parse_head(head.rstrip(b"\r\n"))


async def fetch(port: int, path: str, method: str = "GET", **headers: str):
    """(status, headers, body) of one request; the server closes after the response."""
    reader, writer = await send_request(port, request_head(path, port, method, **headers))
    try:
        status, head = await read_head(reader)
        body = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    if "content-length" in head and method != "HEAD":
        assert len(body) == int(head["content-length"])
    return status, head, body


@pytest.fixture
def files(tmp_path):
    directory = tmp_path / "files"
    directory.mkdir()
    return directory


def serve_files(app, directory) -> None:
    def handler(request: Request) -> FileResponse:
        name = request.path.removeprefix("/test-files/")
        return FileResponse(str(directory / name), attachment=name)

    app.http.add_prefix("/test-files/", handler)


# ---- files and Range ---------------------------------------------------------------------


async def test_range_requests_give_the_exact_bytes(app, files):
    data = os.urandom(MB + 17)
    (files / "clip.mp4").write_bytes(data)
    serve_files(app, files)
    port = app.port

    status, head, body = await fetch(port, "/test-files/clip.mp4")
    assert (status, body) == (200, data)
    assert head["content-type"] == "video/mp4"
    assert head["accept-ranges"] == "bytes"
    assert head["content-disposition"] == 'attachment; filename="clip.mp4"'

    status, head, body = await fetch(port, "/test-files/clip.mp4", Range="bytes=1000-1999")
    assert (status, body) == (206, data[1000:2000])
    assert head["content-range"] == f"bytes 1000-1999/{len(data)}"
    status, head, body = await fetch(port, "/test-files/clip.mp4", Range="bytes=-300")
    assert (status, body) == (206, data[-300:])
    assert head["content-range"] == f"bytes {len(data) - 300}-{len(data) - 1}/{len(data)}"
    status, head, body = await fetch(port, "/test-files/clip.mp4", Range=f"bytes={MB}-")
    assert (status, body) == (206, data[MB:])

    status, head, body = await fetch(port, "/test-files/clip.mp4", Range=f"bytes={len(data)}-")
    assert (status, body) == (416, b"")
    assert head["content-range"] == f"bytes */{len(data)}"
    # Several ranges, or a malformed header: the whole file (RFC 9110 lets a server ignore it).
    for value in ("bytes=0-1,5-6", "lines=1-2", "bytes=x-y"):
        status, _, body = await fetch(port, "/test-files/clip.mp4", Range=value)
        assert (status, len(body)) == (200, len(data)), value


async def test_etag_revalidation_and_head(app, files):
    (files / "a.txt").write_bytes(b"hello")
    serve_files(app, files)
    status, head, body = await fetch(app.port, "/test-files/a.txt", "HEAD")
    assert (status, body, head["content-length"]) == (200, b"", "5")
    etag = head["etag"]
    status, head, body = await fetch(app.port, "/test-files/a.txt", If_None_Match=etag)
    assert (status, body, head["etag"]) == (304, b"", etag)
    status, _, _ = await fetch(app.port, "/test-files/missing.txt")
    assert status == 404


async def test_a_2gb_sparse_file_downloads_with_constant_memory(app, files):
    size = 2 * 1024 * MB
    path = files / "big.mkv"
    with open(path, "wb") as fh:
        fh.truncate(size)
    serve_files(app, files)
    baseline = process_rss_bytes()
    peak = baseline
    reader, writer = await send_request(app.port, request_head("/test-files/big.mkv", app.port))
    try:
        status, head = await read_head(reader)
        assert (status, int(head["content-length"])) == (200, size)
        received = 0
        while True:
            chunk = await asyncio.wait_for(reader.read(4 * MB), 10)
            if not chunk:
                break
            assert chunk.count(0) == len(chunk)
            received += len(chunk)
            if received % (64 * MB) < len(chunk):
                peak = max(peak, process_rss_bytes())
    finally:
        writer.close()
    assert received == size
    # Server and client share this process: neither may have kept the body in memory.
    assert peak - baseline < 64 * MB, f"RSS grew by {(peak - baseline) / MB:.1f} MB"


# ---- streams -----------------------------------------------------------------------------


async def test_stalled_reader_of_a_stream_does_not_delay_websocket_pings(start_app):
    app = await start_app({"security": {"rate_limit_rpm": 0}})
    produced = 0
    part = os.urandom(64 * 1024)

    async def frames():
        nonlocal produced
        while True:
            produced += 1
            yield ("image/jpeg", part, None)
            await asyncio.sleep(0)

    app.http.add_route("/test-stream", lambda request: multipart_response(frames()))
    reader, writer = await send_request(app.port, request_head("/test-stream", app.port))
    status, head = await read_head(reader)
    assert status == 200
    assert head["content-type"].startswith("multipart/x-mixed-replace; boundary=")
    # From here on the client reads nothing: the server must wait for it, not buffer.
    client = await RpcClient.connect(ws_url(app))
    await client.authenticate(mint_token("viewer"))
    latencies = []
    for _ in range(200):
        started = time.perf_counter()
        assert await client.call("ping") == "pong"
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)
    p99 = statistics.quantiles(latencies, n=100)[98]
    stalled_at = produced
    await asyncio.sleep(0.3)
    assert produced == stalled_at, "the stream kept producing for a reader that reads nothing"
    # Loopback socket buffers take a few MB; an unbounded writer would be at thousands.
    assert produced < 300, produced
    assert p99 < 0.05, f"ping p99 {p99 * 1000:.1f} ms while a stream reader stalls"
    # The stalled stream is still intact: reading resumes where it stopped.
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"--camera-service-frame" in first
    writer.close()
    await client.close()


async def test_stream_ends_when_the_client_leaves(app):
    closed = asyncio.Event()

    async def frames():
        try:
            while True:
                yield ("image/jpeg", b"x" * 1000, None)
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    app.http.add_route("/test-stream", lambda request: multipart_response(frames()))
    reader, writer = await send_request(app.port, request_head("/test-stream", app.port))
    await read_head(reader)
    await reader.readuntil(b"--camera-service-frame")
    writer.transport.abort()
    await asyncio.wait_for(closed.wait(), 5)
    await wait_until(lambda: app.table.http_open == 0, 5, "the HTTP connection to be released")


# ---- static files ------------------------------------------------------------------------


async def test_static_files_with_cache_headers_and_no_way_out(app, tmp_path):
    site = tmp_path / "site"
    (site / "js").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>t</title>")
    (site / "js" / "app.js").write_text("export const x = 1;\n")
    (tmp_path / "secret.txt").write_text("no")
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")
    app.http.add_prefix("/ui/", StaticFiles(str(site), "/ui/"))

    status, head, body = await fetch(app.port, "/ui/")
    assert (status, head["content-type"]) == (200, "text/html")
    assert body.startswith(b"<!doctype html>")
    status, head, body = await fetch(app.port, "/ui/js/app.js")
    assert status == 200 and head["content-type"] in ("text/javascript", "application/javascript")
    assert "max-age" in head["cache-control"] and head["etag"]
    status, _, _ = await fetch(app.port, "/ui/js/app.js", If_None_Match=head["etag"])
    assert status == 304
    for path in ("/ui/../secret.txt", "/ui/%2e%2e/secret.txt", "/ui/link.txt", "/ui/.hidden"):
        status, _, _ = await fetch(app.port, path)
        assert status == 404, path


# ---- limits ------------------------------------------------------------------------------


async def test_http_request_head_must_arrive_within_the_handshake_timeout(start_app):
    app = await start_app({"server": {"handshake_timeout": 0.5}})
    for partial in (b"", b"GET /health HTTP/1.1\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        writer.write(partial)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert time.monotonic() - started < 2.5
        writer.close()
    status, _, _ = await fetch(app.port, "/health")
    assert status == 200


async def test_malformed_request_is_400(app):
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    writer.write(b"GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n")
    status, _ = await read_head(reader)
    writer.close()
    assert status == 400


async def test_1000_websocket_clients_and_50_downloads_together(start_app, files):
    app = await start_app({"server": {"max_connections": 1100}, "security": {"rate_limit_rpm": 0}})
    data = os.urandom(4 * MB)
    digest = hashlib.sha256(data).hexdigest()
    (files / "rec.mkv").write_bytes(data)
    serve_files(app, files)
    url = ws_url(app)
    token = mint_token("viewer")
    clients: list[RawClient] = []

    async def open_one(n: int) -> None:
        client = await RawClient.open(url)
        clients.append(client)
        reply = await client.request(
            {"jsonrpc": "2.0", "method": "authenticate", "id": n, "params": {"token": token}}
        )
        assert reply["result"]["role"] == "viewer"

    try:
        for start in range(0, 1000, 100):
            await asyncio.gather(*(open_one(n) for n in range(start, start + 100)))
        assert len(app.table) == 1000

        async def download(n: int) -> str:
            status, _, body = await fetch(app.port, "/test-files/rec.mkv")
            assert status == 200
            return hashlib.sha256(body).hexdigest()

        async def pings() -> None:
            for client in clients:
                reply = await client.request({"jsonrpc": "2.0", "method": "ping", "id": 1})
                assert reply["result"] == "pong"

        results = await asyncio.gather(*(download(n) for n in range(50)), pings())
        assert results[:50] == [digest] * 50
        assert len(app.table) == 1000
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    await wait_until(lambda: app.table.open_connections() == 0, 10, "every connection to close")


async def test_405_json_body_and_allow_header_on_every_http_path(app):
    for path in ("/health", "/metrics", "/nope"):
        status, head, body = await fetch(app.port, path, "DELETE")
        assert (status, head["allow"], orjson.loads(body)) == (
            405,
            "GET, HEAD",
            {"error": "method not allowed"},
        )
