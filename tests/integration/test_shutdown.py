"""Graceful shutdown (PROTOCOL.md section 1): the real `camera-service serve` process gets
SIGTERM/SIGINT, every client gets close 1001, the process exits 0 in time."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import TEST_JWT_SECRET, RawClient, mint_token

from camera_service.client import RpcClient

SHUTDOWN_TIMEOUT = 1.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc = proc
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"


@pytest.fixture
async def service(tmp_path):
    port = free_port()
    (tmp_path / "dev").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        "[server]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f"shutdown_timeout = {SHUTDOWN_TIMEOUT}\n"
        "[security]\n"
        f'jwt_secret = "{TEST_JWT_SECRET}"\n'
        f'state_dir = "{tmp_path / "var"}"\n'
        "[camera]\n"
        f'device_dir = "{tmp_path / "dev"}"\n'
        "[logging]\n"
        'level = "info"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMERA_SERVICE_")}
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [sys.executable, "-m", "camera_service", "serve", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert time.monotonic() < deadline, "the service never started listening"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield Service(proc, port)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


async def wait_exit(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    while proc.poll() is None:
        assert time.monotonic() - started < timeout, f"still running after {timeout} s"
        await asyncio.sleep(0.02)
    return proc.returncode, time.monotonic() - started


async def authenticated(url: str) -> RpcClient:
    client = await RpcClient.connect(url)
    result = await client.authenticate(mint_token("viewer"))
    assert result["authenticated"] is True
    assert await client.call("ping") == "pong"
    return client


async def assert_refused(port: int) -> None:
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_closes_clients_1001_and_exits_0(service, sig):
    clients = [await authenticated(service.url) for _ in range(2)]
    service.proc.send_signal(sig)
    for client in clients:
        await asyncio.wait_for(client.closed.wait(), SHUTDOWN_TIMEOUT + 2)
        assert client.close_code == 1001
    code, _ = await wait_exit(service.proc, SHUTDOWN_TIMEOUT + 2)
    assert code == 0
    stderr = service.proc.stderr.read().decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    await assert_refused(service.port)


async def test_client_that_never_answers_close_does_not_block_exit(service):
    polite = await authenticated(service.url)
    stuck = await RawClient.open(service.url)
    stuck.transport.underlying_transport.pause_reading()  # never sees the close frame
    started = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(polite.closed.wait(), SHUTDOWN_TIMEOUT + 2)
    assert polite.close_code == 1001
    code, _ = await wait_exit(service.proc, SHUTDOWN_TIMEOUT + 2)
    assert code == 0
    assert time.monotonic() - started <= SHUTDOWN_TIMEOUT + 2
    stuck.transport.underlying_transport.resume_reading()
    assert await stuck.wait_closed(3) in (1001, None)


async def test_in_process_stop_sends_1001(start_app, connect, raw_connect):
    app = await start_app()
    client = await connect("viewer", target=app)
    raw = await raw_connect(target=app, role="viewer")
    started = time.monotonic()
    await app.stop()
    assert time.monotonic() - started < 2
    await asyncio.wait_for(client.closed.wait(), 2)
    assert client.close_code == 1001
    assert await raw.wait_closed(2) == 1001
