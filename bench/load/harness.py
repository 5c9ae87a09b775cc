"""Start a server, check it is ready for the mix, run one load, stop it: the unit every
scenario and `python -m bench.load --start-server` repeat."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import orjson
from picows import ws_connect

from bench.common import mint_jwt, parse_ws_url
from bench.load.runner import LoadOptions, run_load
from bench.load.worker import LoadConn, Shared
from bench.servers import FakeCameras, ServerProcess

NOT_IMPLEMENTED = "answers -32601 Method not found (not implemented by this server yet)"


async def _calls(url: str, token: str | None, methods: list[str], timeout: float) -> list[bytes]:
    parse_ws_url(url)
    sh = Shared([b""], b"\0", 1)
    _, conn = await ws_connect(lambda: LoadConn(sh, 0), url, websocket_handshake_timeout=timeout)
    try:
        if token:
            await conn.call(
                orjson.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "authenticate",
                        "params": {"auth_token": token},
                        "id": 0,
                    }
                ),
                timeout,
            )
        return [
            await conn.call(orjson.dumps({"jsonrpc": "2.0", "method": m, "id": i + 1}), timeout)
            for i, m in enumerate(methods)
        ]
    finally:
        conn.transport.disconnect(False)


def call_methods(
    url: str, token: str | None, methods: list[str], timeout: float = 5.0
) -> list[bytes]:
    """Answers to one call of each method on one fresh authenticated connection."""
    return asyncio.run(
        asyncio.wait_for(_calls(url, token, methods, timeout), timeout * (len(methods) + 2))
    )


def wait_camera_list(
    url: str, token: str, expected: int, timeout: float = 10.0
) -> tuple[str | None, str | None]:
    """(skip reason, warning): poll get_camera_list until it lists `expected` cameras."""
    deadline = time.monotonic() + timeout
    answer = b""
    while time.monotonic() < deadline:
        try:
            answer = call_methods(url, token, ["get_camera_list"])[0]
        except Exception as exc:  # noqa: BLE001 - not up yet: poll again
            answer = f"<{type(exc).__name__}: {exc}>".encode()
        if b'"code":-32601' in answer:
            return f"get_camera_list {NOT_IMPLEMENTED}", None
        try:
            total = orjson.loads(answer)["result"]["total"]
        except Exception:  # noqa: BLE001 - any other answer: not ready
            total = None
        if total == expected:
            return None, None
        time.sleep(0.2)
    return (
        None,
        f"get_camera_list did not list {expected} cameras within {timeout:.0f} s: {answer[:200]!r}",
    )


def load_once(
    kind: str,
    template: LoadOptions,
    *,
    fake: FakeCameras | None = None,
    server_cpus: set[int] | None = None,
    max_connections: int | None = None,
    cameras: int = 4,
) -> dict[str, Any]:
    """A fresh `kind` server (generated config, rate limiter off), one measured load run."""
    methods = [m for m, _ in template.mix]
    wanted_conns = max_connections or max(template.conns + 100, 1000)
    with ServerProcess.start(
        kind,
        device_dir=fake.dev_dir if fake else None,
        cpus=server_cpus,
        max_connections=wanted_conns,
        nofile=template.conns + 1024,
    ) as server:
        options = replace(template, url=server.url, token=mint_jwt(server.secret))
        warning = None
        if "get_camera_list" in methods and kind == "ours":
            if fake is None or not fake.available:
                reason = fake.reason if fake else "no fake cameras were requested (--cameras 0)"
                return {
                    "server_kind": kind,
                    "skipped": f"get_camera_list needs 4 fake cameras: {reason}",
                }
            skip, warning = wait_camera_list(server.url, options.token, cameras)
            if skip:
                return {"server_kind": kind, "skipped": skip}
        result = run_load(options, server_pid=server.pid)
        result["server_kind"] = kind
        if warning:
            result["warning"] = warning
        if not server.alive():
            result["server_died"] = server.log_tail()
        return result
