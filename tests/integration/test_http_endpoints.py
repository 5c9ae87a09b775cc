"""/health, /health/ready and /metrics on the WebSocket port (PROTOCOL 7), end to end: raw HTTP
over TCP against a real server; the Prometheus text is parsed with prometheus_client."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

import orjson
import pytest
from conftest import TEST_JWT_SECRET, mint_token, ws_url
from prometheus_client.parser import text_string_to_metric_families

from camera_service import __version__
from camera_service.client import RpcCallError, RpcClient
from camera_service.testing import fakecams

# server/http.py respond() builds every answer with picows'
# WSUpgradeResponse.create_error_response(), which raises ValueError for a status below 400;
# the router catches it and answers 500 {"error": "internal server error"} instead.
ISO_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


async def http_get(port: int, path: str, timeout: float = 3.0):
    """One GET; the whole answer, read until the server closes. (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.1 (\d{3})(?: .*)?", lines[0])
    assert match, lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        assert len(body) == int(headers["content-length"])
    return int(match.group(1)), headers, body


async def get_json(port: int, path: str):
    status, headers, body = await http_get(port, path)
    assert headers["content-type"].startswith("application/json")
    return status, orjson.loads(body)


@pytest.fixture
async def clients():
    opened: list[RpcClient] = []

    async def open_client(app, role: str | None = "admin", token: str | None = None):
        client = await RpcClient.connect(ws_url(app))
        opened.append(client)
        if role is not None:
            await client.authenticate(token or mint_token(role, user=f"{role}-user"))
        return client

    yield open_client
    await asyncio.gather(*(asyncio.wait_for(c.close(), 2) for c in opened), return_exceptions=True)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, for every sample of the exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(app) -> tuple[str, dict]:
    status, headers, body = await http_get(app.port, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    return text, samples(text)


# ---- /health -------------------------------------------------------------------------------


async def test_health(start_app):
    app = await start_app()
    status, doc = await get_json(app.port, "/health")
    assert status == 200
    assert list(doc) == ["status", "timestamp", "uptime", "version"]
    assert (doc["status"], doc["version"]) == ("healthy", __version__)
    assert type(doc["uptime"]) in (int, float) and 0 <= doc["uptime"] < 60
    assert ISO_Z.fullmatch(doc["timestamp"]), doc["timestamp"]
    stamp = datetime.strptime(doc["timestamp"].rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")
    # UTC, not local time with a Z stamped on it (PROTOCOL 9.13).
    delta = stamp.replace(tzinfo=UTC).timestamp() - time.time()
    assert -3 < delta < 2


async def test_health_uptime_moves(start_app):
    app = await start_app()
    _, first = await get_json(app.port, "/health")
    await asyncio.sleep(0.2)
    _, second = await get_json(app.port, "/health")
    assert 0.15 <= second["uptime"] - first["uptime"] < 2


async def test_health_query_string_is_ignored(start_app):
    app = await start_app()
    status, doc = await get_json(app.port, "/health?verbose=1")
    assert (status, doc["status"]) == (200, "healthy")


async def test_health_unhealthy_when_the_monitor_failed(start_app):
    app = await start_app()
    monitor = app.monitor
    # The state the monitor takes when inotify stops working (see CameraMonitor._on_readable).
    monitor._state = "error"
    try:
        status, doc = await get_json(app.port, "/health")
    finally:
        monitor._state = "running"
    assert status == 503
    assert list(doc) == ["status", "timestamp", "uptime", "version"]
    assert doc["status"] == "unhealthy"


# ---- /health/ready -------------------------------------------------------------------------


@pytest.mark.fuse
async def test_not_ready_during_the_first_scan(start_app, fake_cameras):
    fake_cameras.add("video0", fakecams.hanging_camera(seconds=3))
    app = await start_app({"camera": {"device_dir": fake_cameras.dev_dir, "probe_timeout": 4}})
    for _ in range(3):
        status, headers, body = await http_get(app.port, "/health/ready")
        assert (status, body) == (503, b'{"status":"not_ready"}')
        assert headers["content-type"].startswith("application/json")
        await asyncio.sleep(0.05)
    assert not app.monitor.first_scan_done
    fake_cameras.release_hangs()
    await app.monitor.wait_ready(5)


@pytest.mark.fuse
async def test_ready_flips_after_the_first_scan(start_app, fake_cameras):
    fake_cameras.add("video0", fakecams.uvc_camera())
    fake_cameras.add("video1", fakecams.hanging_camera(seconds=1.5))
    started = time.monotonic()
    app = await start_app({"camera": {"device_dir": fake_cameras.dev_dir, "probe_timeout": 3}})
    answers = []
    while True:
        status, headers, body = await http_get(app.port, "/health/ready")
        assert headers["content-type"].startswith("application/json")
        answers.append((status, orjson.loads(body)))
        if status != 503 or time.monotonic() - started > 6:
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    not_ready = [a for a in answers if a[0] != 200]
    assert not_ready and set(map(orjson.dumps, not_ready)) == {
        orjson.dumps((503, {"status": "not_ready"}))
    }
    assert answers[-1] == (200, {"status": "ready"})
    # Ready when the slow probe answered (1.5 s), not before and not at the probe timeout.
    assert 1.4 <= elapsed < 2.9
    assert app.monitor.first_scan_done
    # /health does not wait for the scan: it was healthy all along.
    status, doc = await get_json(app.port, "/health")
    assert (status, doc["status"]) == (200, "healthy")


async def test_ready_at_once_with_an_empty_device_dir(start_app):
    app = await start_app()
    assert await get_json(app.port, "/health/ready") == (200, {"status": "ready"})


# ---- /metrics ------------------------------------------------------------------------------


@pytest.mark.fuse
async def test_metrics_agree_with_get_metrics(start_app, fake_cameras, clients):
    fake_cameras.add("video0", fakecams.uvc_camera())
    fake_cameras.add("video1", fakecams.metadata_node())
    fake_cameras.add("video2", fakecams.fractional_camera())
    fake_cameras.add("video3", fakecams.querycap_eio_camera())
    app = await start_app({"camera": {"device_dir": fake_cameras.dev_dir}})
    await app.monitor.wait_ready(10)

    admin = await clients(app, "admin")  # authenticate ok
    viewer = await clients(app, "viewer")  # authenticate ok
    anonymous = await clients(app, None)
    for _ in range(3):
        await viewer.call("ping")  # ping ok x3
    await viewer.call("get_camera_list")  # get_camera_list ok
    await viewer.call("get_camera_list")  # get_camera_list ok
    await viewer.call("get_camera_status", {"device": "camera0"})  # ok
    for params in ({"device": "camera9"}, {}):
        with pytest.raises(RpcCallError):  # get_camera_status error x2
            await viewer.call("get_camera_status", params)
    with pytest.raises(RpcCallError):
        await viewer.call("get_metrics")  # get_metrics error (-32003)
    with pytest.raises(RpcCallError):
        await viewer.call("no_such_method")  # method "" error (-32601)
    with pytest.raises(RpcCallError):
        await anonymous.call("get_camera_list")  # get_camera_list error (-32001)
    await admin.batch([("ping", None), ("get_status", None)])  # ping ok, get_status ok
    with pytest.raises(RpcCallError):
        await anonymous.authenticate("not-a-token")  # authenticate error (-32001)

    text, got = await scrape(app)
    rpc = await admin.call("get_metrics")

    def requests(method: str, outcome: str) -> float:
        return got[("camera_service_requests_total", (("method", method), ("outcome", outcome)))]

    expected_requests = {
        ("authenticate", "ok"): 2,
        ("authenticate", "error"): 1,
        ("ping", "ok"): 4,
        ("ping", "error"): 0,
        ("get_camera_list", "ok"): 2,
        ("get_camera_list", "error"): 1,
        ("get_camera_status", "ok"): 1,
        ("get_camera_status", "error"): 2,
        ("get_camera_capabilities", "ok"): 0,
        ("get_camera_capabilities", "error"): 0,
        ("get_metrics", "ok"): 0,
        ("get_metrics", "error"): 1,
        ("get_status", "ok"): 1,
        ("get_status", "error"): 0,
        ("get_server_info", "ok"): 0,
        ("get_server_info", "error"): 0,
        ("list_snapshots", "ok"): 0,
        ("list_snapshots", "error"): 0,
        ("get_snapshot_info", "ok"): 0,
        ("get_snapshot_info", "error"): 0,
        ("delete_snapshot", "ok"): 0,
        ("delete_snapshot", "error"): 0,
        ("take_snapshot", "ok"): 0,
        ("take_snapshot", "error"): 0,
        ("get_streams", "ok"): 0,
        ("get_streams", "error"): 0,
        ("start_recording", "ok"): 0,
        ("start_recording", "error"): 0,
        ("stop_recording", "ok"): 0,
        ("stop_recording", "error"): 0,
        ("list_recordings", "ok"): 0,
        ("list_recordings", "error"): 0,
        ("get_recording_info", "ok"): 0,
        ("get_recording_info", "error"): 0,
        ("delete_recording", "ok"): 0,
        ("delete_recording", "error"): 0,
        ("get_storage_info", "ok"): 0,
        ("get_storage_info", "error"): 0,
        ("set_retention_policy", "ok"): 0,
        ("set_retention_policy", "error"): 0,
        ("get_retention_policy", "ok"): 0,
        ("get_retention_policy", "error"): 0,
        ("cleanup_old_files", "ok"): 0,
        ("cleanup_old_files", "error"): 0,
        ("", "error"): 1,
    }
    assert {key: requests(*key) for key in expected_requests} == expected_requests
    all_requests = {
        labels: value
        for (name, labels), value in got.items()
        if name == "camera_service_requests_total"
    }
    assert len(all_requests) == len(expected_requests)
    total = sum(all_requests.values())
    assert total == 16
    # get_metrics counts itself; the scrape before it is no request.
    assert rpc["total_requests"] == total + 1

    errors = {
        labels: value
        for (name, labels), value in got.items()
        if name == "camera_service_errors_total"
    }
    assert errors == {
        (("code", "-1000"),): 1,
        (("code", "-32602"),): 1,
        (("code", "-32003"),): 1,
        (("code", "-32601"),): 1,
        (("code", "-32001"),): 2,
    }
    assert rpc["error_rate"] == round(6 / 17, 6)

    assert got[("camera_service_connections", ())] == 3 == rpc["active_connections"]
    assert got[("camera_service_connections_accepted_total", ())] == 3
    assert got[("camera_service_connections_refused_total", ())] == 0
    cameras = {
        labels: value for (name, labels), value in got.items() if name == "camera_service_cameras"
    }
    assert cameras == {
        (("status", "CONNECTED"),): 2,
        (("status", "ERROR"),): 1,
        (("status", "DISCONNECTED"),): 0,
    }

    # One latency observation per response frame written (the batch is one frame): 15.
    hist = "camera_service_response_time_seconds"
    assert got[(f"{hist}_count", ())] == 15
    assert got[(f"{hist}_bucket", (("le", "+Inf"),))] == 15
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in got.items()
        if name == f"{hist}_bucket"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert 0 < got[(f"{hist}_sum", ())] < 15
    assert rpc["average_response_time"] == pytest.approx(
        got[(f"{hist}_sum", ())] / 15 * 1000, abs=1e-3
    )

    assert got[("process_resident_memory_bytes", ())] == pytest.approx(
        rpc["memory_usage"] * 1024 * 1024, rel=0.2
    )
    assert got[("process_cpu_seconds_total", ())] > 0
    assert got[("process_open_fds", ())] > 0
    assert 0 < got[("camera_service_uptime_seconds", ())] <= rpc["uptime"]


async def test_metrics_follow_connections(start_app, clients):
    app = await start_app()
    _, got = await scrape(app)
    assert got[("camera_service_connections", ())] == 0
    first = await clients(app, None)
    await clients(app, None)
    _, got = await scrape(app)
    assert got[("camera_service_connections", ())] == 2
    await first.close()
    deadline = time.monotonic() + 3
    while len(app.table) != 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    _, got = await scrape(app)
    assert got[("camera_service_connections", ())] == 1
    assert got[("camera_service_connections_accepted_total", ())] == 2


# ---- nothing sensitive ---------------------------------------------------------------------


@pytest.mark.fuse
async def test_endpoints_reveal_nothing_sensitive(start_app, fake_cameras, clients):
    fake_cameras.add("video0", fakecams.uvc_camera(card="Secret Lab Cam"))
    fake_cameras.add("video1", fakecams.querycap_eio_camera())
    app = await start_app(
        {
            "camera": {"device_dir": fake_cameras.dev_dir},
            "media": {"host": "media.internal.example", "rtsp_port": 17554},
        }
    )
    await app.monitor.wait_ready(10)
    token = mint_token("admin", user="operator-jane")
    admin = await clients(app, token=token)
    await admin.call("get_camera_list")
    await admin.call("get_camera_status", {"device": "camera0"})
    with pytest.raises(RpcCallError):
        await admin.call("get_camera_status", {"device": "camera-secret-probe"})
    config = app.config
    secrets = [
        "Secret Lab Cam",
        "Fake Broken Camera",
        "uvcvideo",
        "usb-0000:00:14.0-1",
        token,
        token.split(".")[2],
        "operator-jane",
        TEST_JWT_SECRET,
        fake_cameras.dev_dir,
        fake_cameras.root,
        config.security.state_dir,
        "media.internal.example",
        "17554",
        "camera-secret-probe",
        "/video0",
        "camera0",
    ]
    for path in ("/health", "/health/ready", "/metrics"):
        status, headers, body = await http_get(app.port, path)
        assert status == 200, path
        text = body.decode()
        for secret in secrets:
            assert secret not in text, (path, secret)
        for value in headers.values():
            for secret in secrets:
                assert secret not in value, (path, secret)
