"""One load-generator process: an event loop holding many picows client connections.

The parent (`bench.load.runner`) sends commands over a multiprocessing pipe: connect and
authenticate everything, then `load` (closed or open loop over a time window), `notes`
(notification arrival times), `count` (connections still open) and `close`.

The hot path is the frame callback of `LoadConn`: it takes the payload, pops the send time of
the oldest request in flight (responses to these status methods come back in order, PROTOCOL
section 1), records the latency into a preallocated-growth `array('d')` and, in closed loop,
sends the next pre-encoded request of the slot table right away. No futures, no JSON decode,
no per-request allocation beyond the payload bytes object picows hands over.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import os
import random
import time
import traceback
from typing import Any

import orjson
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

from bench.common import parse_ws_url, raise_nofile

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
_now = time.monotonic  # CLOCK_MONOTONIC: comparable across the processes of one machine
NOTE_PREFIX = b'{"jsonrpc":"2.0","method"'
ERROR_MARK = b'"error":'
SETUP, RUN = 0, 1


def build_slots(mix: list[tuple[str, int]], min_slots: int = 1024) -> tuple[list[bytes], bytes]:
    """Pre-encoded requests and their method index, interleaved by weight (smooth round robin).

    Slot k carries id k+1; a connection walks the table from a random offset and wraps, so the
    id changes with every request and nothing is encoded while the load runs.
    """
    weights = [w for _, w in mix]
    period = sum(weights)
    order: list[int] = []
    current = [0] * len(mix)
    for _ in range(period):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(mix)), key=lambda i: current[i])
        current[best] -= period
        order.append(best)
    repeats = max(1, -(-min_slots // period))
    methods = order * repeats
    reqs = [
        b'{"jsonrpc":"2.0","method":"'
        + mix[m][0].encode()
        + b'","id":'
        + str(k + 1).encode()
        + b"}"
        for k, m in enumerate(methods)
    ]
    return reqs, bytes(methods)


class Shared:
    """State every connection of this process reads and writes (one event loop: no locks)."""

    def __init__(self, reqs: list[bytes], methods: bytes, n_methods: int):
        self.reqs = reqs
        self.meths = methods
        self.n_slots = len(reqs)
        self.n_methods = n_methods
        self.closed_loop = True
        self.sending = False
        self.measuring = False
        self.notes: list[tuple[float, bytes]] = []
        self.reset()

    def reset(self) -> None:
        self.lats = [array.array("d") for _ in range(self.n_methods)]
        self.errors = [0] * self.n_methods
        self.unmatched = 0
        self.disconnects_in_run = 0
        self.skipped = 0
        self.lags = array.array("d")


class LoadConn(WSListener):
    def __init__(self, shared: Shared, offset: int):
        self.sh = shared
        self.transport: Any = None
        self.sent: collections.deque[float] = collections.deque()
        self.slot = offset
        self.rslot = offset
        self.waiter: asyncio.Future | None = None
        self.phase = SETUP
        self.closed = False
        self.close_code: int | None = None

    def on_ws_connected(self, transport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport) -> None:
        self.closed = True
        if self.phase == RUN and self.sh.sending:
            self.sh.disconnects_in_run += 1
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection closed ({self.close_code})"))

    def on_ws_frame(self, transport, frame) -> None:
        data = frame.get_payload_as_bytes()
        # Reading frame.msg_type builds a Python enum (~0.3 us); a JSON-RPC text message always
        # starts with "{" or "[", so only other first bytes need the frame type.
        if not data or (data[0] != 123 and data[0] != 91):
            self._other_frame(transport, frame)
            return
        if self.phase == RUN:
            now = _now()
            sh = self.sh
            if data.startswith(NOTE_PREFIX):
                sh.notes.append((now, data))
                return
            sent = self.sent
            if not sent:
                sh.unmatched += 1
                return
            t0 = sent.popleft()
            k = self.rslot
            self.rslot = k + 1 if k + 1 != sh.n_slots else 0
            if sh.measuring:
                m = sh.meths[k]
                sh.lats[m].append(now - t0)
                if ERROR_MARK in data:
                    sh.errors[m] += 1
            if sh.closed_loop and sh.sending:
                s = self.slot
                self.slot = s + 1 if s + 1 != sh.n_slots else 0
                sent.append(_now())
                transport.send(TEXT, sh.reqs[s])
            return
        if data.startswith(NOTE_PREFIX):
            self.sh.notes.append((_now(), data))
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(data)

    def _other_frame(self, transport, frame) -> None:
        msg_type = frame.msg_type
        if msg_type == CLOSE:
            self.close_code = int(frame.get_close_code())
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif msg_type == TEXT and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(frame.get_payload_as_bytes())

    def send_next(self) -> None:
        sh = self.sh
        s = self.slot
        self.slot = s + 1 if s + 1 != sh.n_slots else 0
        self.sent.append(_now())
        self.transport.send(TEXT, sh.reqs[s])

    async def call(self, payload: bytes, timeout: float) -> bytes:
        """One request/response outside the measured path (authentication, probes)."""
        if self.closed:
            raise ConnectionError("connection closed")
        future = asyncio.get_running_loop().create_future()
        self.waiter = future
        self.transport.send(TEXT, payload)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self.waiter = None


class OpenLoopTicker:
    """Sends at a fixed total rate: each tick sends every request that is due by now,
    round-robin over the connections, so each one gets rate/connections requests a second."""

    def __init__(
        self, loop, conns: list[LoadConn], sh: Shared, rate: float, tick: float, max_inflight: int
    ):
        self.loop = loop
        self.conns = conns
        self.sh = sh
        self.rate = rate
        self.tick = tick
        self.max_inflight = max_inflight
        self.t0 = _now()
        self.due_sent = 0
        self.rr = 0
        self.handle = None

    def __call__(self) -> None:
        sh = self.sh
        if not sh.sending:
            return
        now = _now()
        due = int((now - self.t0) * self.rate) - self.due_sent
        if due > 0:
            if sh.measuring:
                # How late the first request of this tick goes out against its schedule.
                sh.lags.append(now - (self.t0 + (self.due_sent + 1) / self.rate))
            conns = self.conns
            n = len(conns)
            limit = self.max_inflight
            rr = self.rr
            for _ in range(due):
                conn = conns[rr]
                rr = rr + 1 if rr + 1 != n else 0
                if conn.closed or len(conn.sent) >= limit:
                    if sh.measuring:
                        sh.skipped += 1
                    continue
                conn.send_next()
            self.rr = rr
            self.due_sent += due
        self.handle = self.loop.call_later(self.tick, self)


async def _connect_all(cfg: dict[str, Any], sh: Shared, offsets: list[int]) -> dict[str, Any]:
    url = cfg["url"]
    parse_ws_url(url)  # re-checked here: a worker never connects outside loopback
    n = cfg["conns"]
    conns: list[LoadConn | None] = [None] * n
    connect_lat = array.array("d")
    auth_lat = array.array("d")
    failures: collections.Counter[str] = collections.Counter()
    auth_payload = None
    if cfg.get("token"):
        auth_payload = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "method": "authenticate",
                "params": {"auth_token": cfg["token"]},
                "id": 0,
            }
        )
    deadline = _now() + cfg["connect_timeout"]
    next_index = 0

    async def opener() -> None:
        nonlocal next_index
        while next_index < n and _now() < deadline:
            i = next_index
            next_index += 1
            t0 = _now()
            try:
                _, listener = await ws_connect(
                    lambda i=i: LoadConn(sh, offsets[i]),
                    url,
                    websocket_handshake_timeout=cfg["handshake_timeout"],
                    enable_auto_ping=False,
                    read_buffer_init_size=4096,
                    max_frame_size=16 * 1024 * 1024,
                )
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                failures[f"connect: {type(exc).__name__}: {str(exc)[:120]}"] += 1
                continue
            t1 = _now()
            connect_lat.append(t1 - t0)
            if auth_payload is not None:
                try:
                    answer = await listener.call(auth_payload, cfg["call_timeout"])
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    failures[f"authenticate: {type(exc).__name__}"] += 1
                    listener.transport.disconnect(False)
                    continue
                if b'"authenticated":true' not in answer:
                    failures[f"authenticate refused: {answer[:160].decode(errors='replace')}"] += 1
                    listener.transport.disconnect(False)
                    continue
                auth_lat.append(_now() - t1)
            conns[i] = listener

    started = _now()
    await asyncio.gather(*(opener() for _ in range(max(1, min(cfg["connect_concurrency"], n)))))
    finished = _now()
    live = [c for c in conns if c is not None]
    if next_index < n:
        failures["connect phase deadline reached"] += n - next_index
    return {
        "conns": live,
        "report": {
            "wanted": n,
            "connected": len(live),
            "t_begin": started,
            "t_end": finished,
            "connect_lat": connect_lat.tobytes(),
            "auth_lat": auth_lat.tobytes(),
            "failures": dict(failures.most_common(10)),
            "failed": sum(failures.values()),
        },
    }


async def _probe(conn: LoadConn, mix: list[tuple[str, int]], timeout: float) -> dict[str, str]:
    out = {}
    for i, (method, _) in enumerate(mix):
        payload = orjson.dumps({"jsonrpc": "2.0", "method": method, "id": f"probe-{i}"})
        try:
            out[method] = (await conn.call(payload, timeout)).decode(errors="replace")
        except Exception as exc:  # noqa: BLE001 - reported as the probe's answer
            out[method] = f"<no answer: {type(exc).__name__}>"
    return out


async def _run_load(loop, conns: list[LoadConn], sh: Shared, msg: dict[str, Any]) -> dict[str, Any]:
    live = [c for c in conns if not c.closed]
    sh.reset()
    sh.closed_loop = msg["rate"] is None
    sh.sending = True
    for conn in live:
        conn.phase = RUN
        conn.sent.clear()
    ticker = None
    if sh.closed_loop:
        for conn in live:
            for _ in range(msg["depth"]):
                conn.send_next()
    elif live:
        ticker = OpenLoopTicker(loop, live, sh, msg["rate"], msg["tick"], msg["max_inflight"])
        ticker()
    await asyncio.sleep(max(0.0, msg["t_start"] - _now()))
    sh.measuring = True
    w0, cpu0 = _now(), os.times()
    await asyncio.sleep(max(0.0, msg["t_end"] - _now()))
    sh.measuring = False
    sh.sending = False
    w1, cpu1 = _now(), os.times()
    if ticker is not None and ticker.handle is not None:
        ticker.handle.cancel()
    drain_deadline = _now() + msg["drain_timeout"]
    while _now() < drain_deadline and any(c.sent and not c.closed for c in live):
        await asyncio.sleep(0.01)
    left = sum(len(c.sent) for c in live if not c.closed)
    for conn in live:
        conn.phase = SETUP
        conn.sent.clear()
        conn.rslot = conn.slot
    return {
        "window": (w0, w1),
        "lats": [a.tobytes() for a in sh.lats],
        "errors": list(sh.errors),
        "unmatched": sh.unmatched,
        "disconnects": sh.disconnects_in_run,
        "skipped": sh.skipped,
        "lags": sh.lags.tobytes(),
        "unanswered_at_end": left,
        "client_user_s": cpu1.user - cpu0.user,
        "client_sys_s": cpu1.system - cpu0.system,
        "live_conns": len(live),
    }


async def _serve(commands, pipe, cfg: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue = asyncio.Queue()
    fd = commands.fileno()

    def on_pipe() -> None:
        try:
            while commands.poll():
                inbox.put_nowait(commands.recv())
        except (EOFError, OSError):
            loop.remove_reader(fd)
            inbox.put_nowait({"cmd": "close", "reason": "parent went away"})

    loop.add_reader(fd, on_pipe)
    mix = [tuple(m) for m in cfg["mix"]]
    reqs, methods = build_slots(mix)
    sh = Shared(reqs, methods, len(mix))
    rng = random.Random(cfg["seed"])
    offsets = [rng.randrange(len(reqs)) for _ in range(cfg["conns"])]
    connected = await _connect_all(cfg, sh, offsets)
    conns: list[LoadConn] = connected["conns"]
    ready: dict[str, Any] = {"type": "ready", **connected["report"]}
    if cfg.get("probe") and conns:
        ready["probe"] = await _probe(conns[0], mix, cfg["call_timeout"])
    pipe.send(ready)

    life_deadline = _now() + cfg["max_life"]
    while True:
        try:
            msg = await asyncio.wait_for(inbox.get(), max(0.1, life_deadline - _now()))
        except TimeoutError:
            break
        cmd = msg.get("cmd")
        if cmd == "load":
            pipe.send({"type": "load", **await _run_load(loop, conns, sh, msg)})
        elif cmd == "notes":
            notes, sh.notes = sh.notes, []
            pipe.send({"type": "notes", "notes": notes})
        elif cmd == "count":
            pipe.send({"type": "count", "open": sum(1 for c in conns if not c.closed)})
        elif cmd == "close":
            break
    for conn in conns:
        if not conn.closed:
            with contextlib.suppress(Exception):  # closing anyway
                conn.transport.send_close(WSCloseCode.OK)
                conn.transport.disconnect()
    await asyncio.sleep(0.05)
    for conn in conns:
        if not conn.closed:
            conn.transport.disconnect(False)
    loop.remove_reader(fd)


def main(commands, pipe, cfg: dict[str, Any]) -> None:
    """Process entry point (multiprocessing, spawn start method): commands arrive on
    `commands`, answers go out on `pipe`."""
    try:
        if cfg.get("cpus"):
            os.sched_setaffinity(0, set(cfg["cpus"]))
        raise_nofile(cfg["conns"] + 256)
        if cfg.get("uvloop", True):
            try:
                import uvloop

                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            except ImportError:
                pass
        asyncio.run(_serve(commands, pipe, cfg))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear of it, not time out
        with contextlib.suppress(Exception):
            pipe.send(
                {
                    "type": "error",
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-3000:],
                }
            )
        raise SystemExit(1) from None
    finally:
        with contextlib.suppress(Exception):
            pipe.send({"type": "exit"})
