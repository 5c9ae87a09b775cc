"""A minimal blocking WebSocket client whose messages carry the kernel's receive timestamp.

Used for the notification scenarios: with SO_TIMESTAMPNS the kernel stamps each segment when it
reaches the client socket, which on loopback happens inside the server's send() call. So the
fan-out numbers are the server's, however long this (slow, single-threaded) client takes to get
round to reading 1000 sockets.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import struct
import time
from typing import Self

from bench.common import parse_ws_url

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS


class RawWs:
    def __init__(self, url: str, timeout: float = 10.0):
        host, port, path = parse_ws_url(url)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.stamps: list[float] = []  # kernel receive time (CLOCK_REALTIME) of buffered bytes
        key = base64.b64encode(os.urandom(16)).decode()
        shown = f"[{host}]" if ":" in host else host
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {shown}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the upgrade")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"upgrade refused: {head[:200]!r}")

    def send_text(self, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _frame(self) -> tuple[int, bytes] | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, pos = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, pos = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < pos + n:
            return None
        self.buf = buf[pos + n :]
        return opcode, buf[pos : pos + n]

    def recv_frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """Next frame, blocking (setup only)."""
        self.sock.settimeout(timeout)
        while True:
            frame = self._frame()
            if frame is not None:
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def call(self, payload: bytes, timeout: float = 10.0) -> bytes:
        self.send_text(payload)
        while True:
            opcode, data = self.recv_frame(timeout)
            if opcode == 0x1 and not data.startswith(b'{"jsonrpc":"2.0","method"'):
                return data

    def enable_timestamps(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)

    def read_stamped(self) -> list[tuple[float, int, bytes]]:
        """Non-blocking: complete frames now available, each with the kernel receive time of
        the segment that completed it."""
        out = []
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                raise ConnectionError("connection closed")
            stamp = time.time()
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    stamp = sec + nsec * 1e-9
            self.buf += data
            while True:
                frame = self._frame()
                if frame is None:
                    break
                out.append((stamp, *frame))
        return out

    def close(self) -> None:
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(0.5)
            self.sock.sendall(b"\x88\x82" + b"\x00\x00\x00\x00" + b"\x03\xe8")  # close 1000
        except OSError:
            pass
        self.sock.close()


class StampedClients:
    """N authenticated raw clients; `wait_for(needle)` returns per-client kernel arrival times."""

    def __init__(self, url: str, token: str, n: int, timeout: float = 60.0):
        import orjson

        self.clients: list[RawWs] = []
        self.failures = 0
        auth = orjson.dumps(
            {"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": token}, "id": 1}
        )
        deadline = time.monotonic() + timeout
        for _ in range(n):
            if time.monotonic() > deadline:
                self.failures += 1
                continue
            try:
                client = RawWs(url)
                if b'"authenticated":true' not in client.call(auth):
                    raise ConnectionError("authenticate refused")
                client.enable_timestamps()
                self.clients.append(client)
            except OSError:
                self.failures += 1
        self.selector = selectors.DefaultSelector()
        for i, client in enumerate(self.clients):
            self.selector.register(client.sock, selectors.EVENT_READ, i)

    def wait_for(self, needle: bytes, status: bytes, timeout: float) -> dict[int, float]:
        """Client index -> kernel receive time of its first text frame holding both strings."""
        got: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.clients):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in self.selector.select(min(left, 0.2)):
                i = key.data
                try:
                    frames = self.clients[i].read_stamped()
                except OSError:
                    self.selector.unregister(key.fileobj)
                    continue
                for stamp, opcode, data in frames:
                    if opcode == 0x1 and needle in data and status in data and i not in got:
                        got[i] = stamp
        return got

    def close(self) -> None:
        self.selector.close()
        for client in self.clients:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
