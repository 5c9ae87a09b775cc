"""A real Mosquitto broker for tests and benchmarks: a child process on 127.0.0.1 with a
generated config on a free port (plain, with a password file, or with TLS from a CA made
here with the `openssl` CLI), stopped by its PID and restartable on the same port; plus a
small subscriber that collects what a Home Assistant-like client would see."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiomqtt

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
OPENSSL = shutil.which("openssl")


def missing_reason() -> str | None:
    """Why broker tests cannot run here, or None."""
    if MOSQUITTO is None:
        return "Debian mosquitto is not installed (make test installs it as root)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    assert OPENSSL, "openssl CLI needed for the TLS test"
    d = directory
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=camera-service test CA")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return Tls(d / "ca.crt", d / "server.crt", d / "server.key")


@dataclass
class Broker:
    """`Broker(tmpdir).start()`; `.stop()` / `.kill()` by PID; `.start()` again on the same
    port."""

    directory: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] | None = None  # user -> password; set = no anonymous access
    tls: Tls | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def _write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            # Mosquitto leaves Nagle on by default: deliveries would wait for delayed ACKs.
            "set_tcp_nodelay true",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # As root mosquitto drops to user "mosquitto", who could not read our files.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        ]
        if self.users is not None:
            assert MOSQUITTO_PASSWD, "mosquitto_passwd needed for the password test"
            passwords = self.directory / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(passwords), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
            ]
        path = self.directory / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 10.0) -> Broker:
        assert MOSQUITTO, missing_reason()
        config = self._write_config()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited {self.proc.returncode}: "
                    f"{self.proc.stderr.read().decode(errors='replace') if self.proc.stderr else ''}"
                    f"{self.log_path.read_text() if self.log_path.exists() else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto never listened") from None
                time.sleep(0.02)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM by PID and wait (the broker forgets everything: persistence is off)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the broker process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watcher:
    """A subscriber that keeps the newest message of every topic it sees (like a dashboard
    or Home Assistant) and lets a test wait for a condition on them."""

    def __init__(self, port: int, filters: Iterable[str], **client_kwargs: Any) -> None:
        self.port = port
        self.filters = list(filters)
        self.client_kwargs = client_kwargs
        self.latest: dict[str, bytes] = {}
        self.retained: dict[str, bool] = {}
        self.history: list[tuple[float, str, bytes, bool]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Watcher:
        import aiomqtt

        client = self.client = aiomqtt.Client("127.0.0.1", self.port, **self.client_kwargs)
        await client.__aenter__()
        for topic_filter in self.filters:
            await client.subscribe(topic_filter, qos=1)
        self._task = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        assert self.client is not None
        async for message in self.client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            topic = message.topic.value
            self.latest[topic] = data
            self.retained[topic] = bool(message.retain)
            self.history.append((time.monotonic(), topic, data, bool(message.retain)))
            self._changed.set()

    async def publish(self, topic: str, payload: bytes | str, **kwargs: Any) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, **kwargs)

    async def wait_for(
        self, predicate: Callable[[Watcher], Any], timeout: float = 5.0, what: str = "a condition"
    ) -> Any:
        """Wait until `predicate(self)` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; "
                    f"topics seen: {sorted(self.latest)}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass
