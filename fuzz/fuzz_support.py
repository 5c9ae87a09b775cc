"""Shared by the atheris harnesses (fuzz/) and the hypothesis suite (tests/fuzz/).

- `FuzzService`: a real Application (built and started the way `app.py` does it, on its own
  event loop, listening on 127.0.0.1:0, watching an empty device directory) whose dispatcher
  is fed messages directly, with an admin session so that every method really runs.
- `check_reply(service, payload, reply)`: the reply the protocol demands for `payload`
  (PROTOCOL.md sections 2-5), computed independently of the dispatcher from the standard
  library's decoding of the message, and compared exactly. Raises AssertionError on any
  difference; raises `Unjudgeable` for the few inputs the oracle deliberately does not judge.
- inotify record encoding for round-trip checks of `parse_events`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
import tempfile
import time
import uuid
from typing import Any

import jwt

from camera_service.app import Application
from camera_service.auth.gate import bind_session
from camera_service.config import load_config
from camera_service.rpc._jsonrpc import CallContext

SECRET = "fuzz-secret-0123456789abcdef0123456789abcdef"

MESSAGES = {
    -32700: "Parse error",
    -32600: "Invalid Request",
    -32601: "Method not found",
    -32602: "Invalid parameters",
    -32603: "Internal server error",
    -32002: "Rate limit exceeded",
    -32003: "Insufficient permissions",
    -1000: "Camera not found",
    -1001: "Camera not available",
    -1005: "Snapshot file not found",  # recordings say "Recording file not found" (set per call)
}
AUTH_MESSAGES = ("Authentication required", "Authentication failed")

ROLE_LEVEL = {"viewer": 1, "operator": 2, "admin": 3}
ROLE_NAME = {v: k for k, v in ROLE_LEVEL.items()}
PERMISSIONS = {
    "viewer": ["view"],
    "operator": ["view", "control"],
    "admin": ["view", "control", "admin"],
}
# PROTOCOL 4.1: the role each method needs (0 = none).
METHOD_LEVEL = {
    "authenticate": 0,
    "ping": 1,
    "get_camera_list": 1,
    "get_camera_status": 1,
    "get_camera_capabilities": 1,
    "get_metrics": 3,
    "get_status": 3,
    "get_server_info": 3,
    "list_snapshots": 1,
    "get_snapshot_info": 1,
    "delete_snapshot": 2,
    "take_snapshot": 2,
    "get_streams": 1,
    "start_recording": 2,
    "stop_recording": 2,
    "list_recordings": 1,
    "get_recording_info": 1,
    "delete_recording": 2,
    "get_storage_info": 3,
    "set_retention_policy": 3,
    "get_retention_policy": 1,
    "cleanup_old_files": 3,
}
METHODS = tuple(METHOD_LEVEL)
STORAGE_KEYS = {
    "total_space",
    "used_space",
    "available_space",
    "used_percent",
    "warn_threshold",
    "block_threshold",
    "recordings_size",
    "snapshots_size",
    "recordings_count",
    "snapshots_count",
    "low_space_warning",
    "critical_space_warning",
}
# PROTOCOL 5.10: the first duration param present wins; `duration` is bounded by the service
# at 2^31-1 s (README).
DURATIONS = (
    ("duration", 1, 2**31 - 1),
    ("duration_seconds", 1, 86_400),
    ("duration_minutes", 1, 1_440),
    ("duration_hours", 1, 24),
)
AUTH_TYPES = ("auto", "jwt", "api_key")

METRICS_KEYS = {
    "active_connections",
    "total_requests",
    "average_response_time",
    "p50_response_time",
    "p99_response_time",
    "error_rate",
    "memory_usage",
    "cpu_usage",
    "uptime",
}
SERVER_INFO_KEYS = {
    "name",
    "version",
    "capabilities",
    "supported_formats",
    "max_cameras",
    "max_connections",
}
# PROTOCOL section 2: data never holds a stack trace or a server file path.
LEAK = re.compile(r"Traceback|File \"|\.py\b|/work/|site-packages")


class Unjudgeable(Exception):
    """An input this oracle deliberately does not judge (see the reasons where raised)."""


def mint(role: str, user: str, ttl: float = 3600, secret: str = SECRET) -> str:
    now = int(time.time())
    return jwt.encode(
        {"user_id": user, "role": role, "iat": now - 5, "exp": now + ttl}, secret, algorithm="HS256"
    )


class FuzzService:
    """A started Application; `handle()` runs one message through its real dispatcher."""

    def __init__(self, workdir: str | None = None, max_batch: int = 100):
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="camera-fuzz-")
            workdir = self._tmp.name
        device_dir = os.path.join(workdir, "dev")
        os.makedirs(device_dir, exist_ok=True)
        config_file = os.path.join(workdir, "fuzz-config.toml")
        open(config_file, "w").close()
        config = load_config(
            config_file,
            env={},
            overrides={
                "server": {
                    "host": "127.0.0.1",
                    "port": 0,
                    "max_batch": max_batch,
                    "shutdown_timeout": 1.0,
                },
                "security": {"jwt_secret": SECRET, "state_dir": os.path.join(workdir, "var")},
                "camera": {"device_dir": device_dir},
                "logging": {"level": "error"},
            },
        )
        self.max_batch = max_batch
        self.loop = asyncio.new_event_loop()
        self.app = Application(config, env={})
        self.loop.run_until_complete(self.app.start())
        self.dispatcher = self.app.dispatcher
        self.device_dir = device_dir
        # Tokens the generators may put anywhere: real ones of each role, and bad ones.
        self.valid_tokens = {mint(role, f"{role}-fuzz"): role for role in ROLE_LEVEL}
        self.bad_tokens = [
            mint("admin", "late", ttl=-60),
            mint("admin", "x", secret="w" * 40),
            "",
            "a.b.c",
            "k" * 40,
        ]
        self._admin_session = self.app.authenticator.authenticate(mint("admin", "root"))
        self.sent: list[bytes] = []

    @property
    def tokens(self) -> list[str]:
        return list(self.valid_tokens) + self.bad_tokens

    def new_context(self) -> CallContext:
        """A fresh connection context, admin session, no rate limit (every method runs)."""
        ctx = CallContext(
            f"fuzz{uuid.uuid4().hex[:8]}",
            send=self.sent.append,
            bucket=None,
        )
        bind_session(ctx, self._admin_session)
        return ctx

    def handle(self, ctx: CallContext, payload: bytes) -> bytes | None:
        """Dispatcher.handle inside the service's loop; any deferred send is collected too."""

        async def one():
            out = self.dispatcher.handle(ctx, payload)
            await self.dispatcher.drain(5)
            await asyncio.sleep(0)  # callbacks it scheduled (the 1008 close) run now
            return out

        self.sent.clear()
        out = self.loop.run_until_complete(one())
        if self.sent:  # an async handler answered later: the reply is what it sent
            assert out is None, (out, self.sent)
            assert len(self.sent) == 1, self.sent
            out = self.sent[0]
        return out

    def close(self) -> None:
        self.loop.run_until_complete(self.app.stop())
        self.loop.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def encode(doc: Any, style: int) -> bytes:
    """Several spellings of one document: 0 orjson's compact form (what the dispatcher's fast
    path recognises), 1 the standard library's spaced and ASCII-escaped form, 2 compact with
    raw UTF-8, 3 indented (newlines). Falls back to 1 where a style cannot encode the value
    (orjson: integers beyond 64 bits and lone surrogates; raw UTF-8: lone surrogates)."""
    if style == 0:
        try:
            import orjson

            return orjson.dumps(doc)
        except TypeError:
            pass
    if style == 2:
        try:
            return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:
            pass
    if style == 3:
        return json.dumps(doc, indent=1).encode()
    return json.dumps(doc).encode()


# ---------------------------------------------------------------------------------------
# The oracle


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _strict_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("out of range")
    return value


_NOT_JSON = object()


def reference_decode(payload: bytes) -> Any:
    """RFC 8259 decoding of a text message (UTF-8; a leading BOM may be ignored, 8.1);
    `_NOT_JSON` when it is not JSON."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return _NOT_JSON
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_strict_float)
    except RecursionError:
        # Nesting deeper than this process's Python stack: the dispatcher's own limit
        # (orjson, 1024) may or may not be reached; tests/security covers deep nesting.
        raise Unjudgeable("nesting deeper than the oracle can decode") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            # Valid JSON beyond int()'s digit limit: the oracle cannot build the value to
            # compare with; tests/security/test_hostile_input.py checks the exact echo.
            raise Unjudgeable("integer literal of more than 4300 digits") from None
        return _NOT_JSON


class Ok:
    def __init__(self, id: Any, result: Any = None, check=None):
        self.id, self.result, self.check = id, result, check

    def __repr__(self):
        return f"Ok(id={self.id!r}, result={self.result!r})"


class Err:
    def __init__(
        self, id: Any, code: int, message: str | None = None, reason: str = "", **data: Any
    ):
        self.id, self.code = id, code
        self.message = MESSAGES[code] if message is None else message
        self.reason = reason  # words the reason must contain
        self.data = data  # other data members, exact

    def __repr__(self):
        return f"Err(id={self.id!r}, code={self.code}, message={self.message!r}, data={self.data})"


class _State:
    def __init__(self, role_level: int):
        self.role_level = role_level


def _token_param(params: dict) -> tuple[Err | None, Any]:
    name = "auth_token" if "auth_token" in params else "token"
    if name not in params:
        return Err(None, -32602, reason="auth_token"), None
    token = params[name]
    if type(token) is not str:
        return Err(None, -32602, reason=name), None
    return None, token


def _with_id(outcome, request_id):
    outcome.id = request_id
    return outcome


def _run(service: FuzzService, state: _State, method: str, params: Any):
    """What a call with a valid envelope answers (before the id is attached)."""
    if method not in METHOD_LEVEL:
        return Err(None, -32601, reason="unknown method")
    if type(params) is list:
        return Err(None, -32602, reason="params")
    if method == "authenticate":
        error, token = _token_param(params)
        if error:
            return error
        auth_type = params.get("auth_type", "auto")
        if auth_type not in AUTH_TYPES:
            return Err(None, -32602, reason="auth_type")
        role = service.valid_tokens.get(token)
        if role is None or auth_type == "api_key":
            return Err(None, -32001, message="Authentication failed")
        state.role_level = ROLE_LEVEL[role]
        return Ok(None, check=_authenticated(role, token))
    required = METHOD_LEVEL[method]
    if "auth_token" in params or "token" in params:
        error, token = _token_param(params)
        if error:
            return error
        role = service.valid_tokens.get(token)
        if role is None:
            return Err(None, -32001, message="Authentication failed")
        level = ROLE_LEVEL[role]  # for this call only: the connection already has a session
    else:
        level = state.role_level
    if level < required:
        return Err(None, -32003, required_role=ROLE_NAME[required], role=ROLE_NAME[level])
    if method == "ping":
        return Ok(None, "pong")
    if method == "get_camera_list":
        return Ok(None, {"cameras": [], "total": 0, "connected": 0})
    if method in ("get_camera_status", "get_camera_capabilities"):
        device = params.get("device")
        if device is None:
            return Err(None, -32602, reason="device")
        if type(device) is not str:
            return Err(None, -32602, reason="device")
        return Err(None, -1000, device=device[:256])  # no camera exists in the fuzz service
    if method in ("start_recording", "stop_recording"):
        device = params.get("device")
        if type(device) is not str:
            return Err(None, -32602, reason="device")
        if method == "start_recording":
            for name, low, high in DURATIONS:
                value = params.get(name)
                if value is None:
                    continue
                if type(value) is not int or not low <= value <= high:
                    return Err(None, -32602, reason=name)
                break
            if params.get("format", "mp4") not in ("mp4", "mkv"):
                return Err(None, -32602, reason="format")
        return Err(None, -1000, device=device[:256])  # no camera exists in the fuzz service
    if method == "list_recordings":
        limit, offset = params.get("limit", 100), params.get("offset", 0)
        if type(limit) is not int or not 1 <= limit <= 1000:
            return Err(None, -32602, reason="limit")
        if type(offset) is not int or offset < 0:
            return Err(None, -32602, reason="offset")
        return Ok(None, {"files": [], "total": 0, "limit": limit, "offset": offset})
    if method in ("get_recording_info", "delete_recording"):
        name = params.get("filename")
        if type(name) is not str or not _is_base_name(name):
            return Err(None, -32602, reason="filename")
        return Err(None, -1005, message="Recording file not found", filename=name)
    if method == "get_storage_info":
        return Ok(None, check=lambda r: set(r) == STORAGE_KEYS)
    if method == "get_retention_policy":
        return Ok(None, check=lambda r: r["policy_type"] in ("age", "size", "manual"))
    if method == "cleanup_old_files":
        return Ok(None, check=lambda r: r["cleanup_executed"] is True and r["files_deleted"] == 0)
    if method == "set_retention_policy":
        kind = params.get("policy_type")
        if type(kind) is not str or kind not in ("age", "size", "manual"):
            return Err(None, -32602, reason="policy_type")
        if type(params.get("enabled", True)) is not bool:
            return Err(None, -32602, reason="enabled")
        for name, needed_by in (("max_age_days", "age"), ("max_size_gb", "size")):
            value = params.get(name)
            if value is None:
                if kind == needed_by:
                    return Err(None, -32602, reason=name)
                continue
            if type(value) not in (int, float) or not 0 < value <= 1e9:
                return Err(None, -32602, reason=name)
        return Ok(None, check=lambda r: r["message"] == "Retention policy updated successfully")
    if method == "list_snapshots":
        limit, offset = params.get("limit", 100), params.get("offset", 0)
        if type(limit) is not int or not 1 <= limit <= 1000:
            return Err(None, -32602, reason="limit")
        if type(offset) is not int or offset < 0:
            return Err(None, -32602, reason="offset")
        # The fuzz service's snapshot directory is empty.
        return Ok(None, {"files": [], "total": 0, "limit": limit, "offset": offset})
    if method == "get_streams":
        return Ok(None, [])  # nothing is captured in the fuzz service
    if method == "take_snapshot":
        device = params.get("device")
        if type(device) is not str:
            return Err(None, -32602, reason="device")
        fmt = params.get("format", "jpg")
        if type(fmt) is not str or fmt.lower() not in ("jpg", "jpeg", "png"):
            return Err(None, -32602, reason="format")
        quality = params.get("quality", 85)
        if type(quality) is not int or not 1 <= quality <= 100:
            return Err(None, -32602, reason="quality")
        name = params.get("filename")
        if name is not None:
            if type(name) is not str:
                return Err(None, -32602, reason="filename")
            extensions = (".png",) if fmt.lower() == "png" else (".jpg", ".jpeg")
            if not name.lower().endswith(extensions):
                name += extensions[0]  # the extension is added before the name is judged
            if not _is_base_name(name):
                return Err(None, -32602, reason="filename")
        return Err(None, -1000, device=device[:256])  # no camera exists in the fuzz service
    if method in ("get_snapshot_info", "delete_snapshot"):
        name = params.get("filename")
        if type(name) is not str or not _is_base_name(name):
            return Err(None, -32602, reason="filename")
        return Err(None, -1005, filename=name)
    if method == "get_metrics":
        return Ok(None, check=lambda r: set(r) == METRICS_KEYS)
    if method == "get_status":
        return Ok(
            None,
            check=lambda r: (
                set(r) == {"status", "uptime", "version", "components"}
                and r["status"] == "healthy"
                and r["components"] == {"websocket_server": "running", "camera_monitor": "running"}
            ),
        )
    assert method == "get_server_info"
    return Ok(None, check=lambda r: set(r) == SERVER_INFO_KEYS and r["name"] == "Camera Service")


def _is_base_name(name: str) -> bool:
    """PROTOCOL 5.8, written out again so that the oracle does not trust the server's check."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return (
        0 < size <= 255
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name)
    )


def _authenticated(role: str, token: str):
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))

    def check(result: Any) -> bool:
        return (
            type(result) is dict
            and set(result)
            == {
                "authenticated",
                "role",
                "permissions",
                "user_id",
                "expires_at",
                "session_id",
                "auth_method",
            }
            and result["authenticated"] is True
            and result["role"] == role
            and result["permissions"] == PERMISSIONS[role]
            and result["user_id"] == f"{role}-fuzz"
            and result["expires_at"] == expires_at
            and result["auth_method"] == "jwt"
            and type(result["session_id"]) is str
            and len(result["session_id"]) >= 16
        )

    return check


def _is_valid_id(value: Any) -> bool:
    return value is None or type(value) in (str, int, float)


def expect_item(service: FuzzService, state: _State, item: Any):
    """The outcome for one request object, or None when it must not be answered."""
    if type(item) is not dict:
        return Err(None, -32600)
    has_id = "id" in item
    request_id = item.get("id")
    if has_id and not _is_valid_id(request_id):
        return Err(None, -32600, reason="id")
    echo = request_id if has_id else None
    version = item.get("jsonrpc")
    if type(version) is not str or version != "2.0":
        return Err(echo, -32600, reason="jsonrpc")
    method = item.get("method")
    if type(method) is not str or not method:
        return Err(echo, -32600, reason="method")
    params = item.get("params", {})
    if "params" in item and type(params) not in (dict, list):
        return Err(echo, -32600, reason="params")
    outcome = _run(service, state, method, params)
    # A notification runs (its effect on the session above is real) but is never answered.
    return _with_id(outcome, request_id) if has_id else None


def expect(service: FuzzService, payload: bytes):
    """('none',) | ('one', outcome) | ('batch', [outcomes])."""
    doc = reference_decode(payload)
    if doc is _NOT_JSON:
        return ("one", Err(None, -32700))
    if type(doc) is list:
        if not doc:
            return ("one", Err(None, -32600, reason="empty batch"))
        if len(doc) > service.max_batch:
            return ("one", Err(None, -32600, reason=str(service.max_batch)))
        state = _State(3)
        outcomes = [expect_item(service, state, item) for item in doc]
        outcomes = [o for o in outcomes if o is not None]
        return ("batch", outcomes) if outcomes else ("none",)
    if type(doc) is dict:
        outcome = expect_item(service, _State(3), doc)
        return ("one", outcome) if outcome is not None else ("none",)
    return ("one", Err(None, -32600))


def _same_id(got: Any, want: Any) -> bool:
    return got == want and type(got) is type(want)


def check_response_object(obj: Any, outcome, payload: bytes = b"") -> None:
    """One JSON-RPC 2.0 response object against the expected outcome, exactly."""
    assert type(obj) is dict, obj
    assert obj.get("jsonrpc") == "2.0", obj
    assert "id" in obj, obj
    assert _same_id(obj["id"], outcome.id), (obj.get("id"), outcome)
    if isinstance(outcome, Ok):
        assert set(obj) == {"jsonrpc", "result", "id"}, (obj, outcome)
        if outcome.check is not None:
            assert outcome.check(obj["result"]), (obj, outcome)
        else:
            assert obj["result"] == outcome.result, (obj, outcome)
        return
    assert set(obj) == {"jsonrpc", "error", "id"}, (obj, outcome)
    error = obj["error"]
    assert type(error) is dict and set(error) <= {"code", "message", "data"}, obj
    assert type(error["code"]) is int and error["code"] == outcome.code, (obj, outcome)
    assert error["message"] == outcome.message, (obj, outcome)
    if outcome.code == -32001:
        assert error["message"] in AUTH_MESSAGES
    elif outcome.code == -1005:  # names the kind: "Recording ..." / "Snapshot file not found"
        assert error["message"] in ("Recording file not found", "Snapshot file not found")
    else:
        assert error["message"] == MESSAGES[outcome.code]
    data = error.get("data")
    assert type(data) is dict, obj  # every error of this server carries data.reason
    reason = data.get("reason")
    assert type(reason) is str and reason.strip(), obj
    assert outcome.reason.lower() in reason.lower(), (obj, outcome)
    # (a reason may quote the client's own input, e.g. an unknown method name)
    assert not LEAK.search(reason) or LEAK.search(payload.decode("utf-8", "replace")), obj
    for key, value in outcome.data.items():
        assert data.get(key) == value, (key, obj, outcome)


def check_reply(service: FuzzService, payload: bytes, reply: bytes | None) -> None:
    """Assert that `reply` is exactly what the protocol demands for `payload`."""
    kind = expect(service, payload)
    if kind[0] == "none":
        assert reply is None, (payload[:200], reply[:500])
        return
    assert type(reply) is bytes, (payload[:200], reply)
    # The standard library decodes exactly (big integers, escaped lone surrogates).
    decoded = json.loads(reply)
    if kind[0] == "one":
        check_response_object(decoded, kind[1], payload)
        return
    outcomes = kind[1]
    assert type(decoded) is list and len(decoded) == len(outcomes), (decoded, outcomes)
    for obj, outcome in zip(decoded, outcomes):
        check_response_object(obj, outcome, payload)


# ---------------------------------------------------------------------------------------
# inotify records

INOTIFY_HEADER = struct.Struct("=iIII")


def inotify_record(wd: int, mask: int, cookie: int, name: bytes, pad: int = 0) -> bytes:
    """One event as the kernel writes it: header, name, NUL terminator and `pad` more NULs
    (the kernel pads to the alignment of the struct; nameless events have len 0)."""
    body = name + b"\0" * (1 + pad) if (name or pad) else b""
    return INOTIFY_HEADER.pack(wd, mask, cookie, len(body)) + body


# ---------------------------------------------------------------------------------------
# A short harness run from the test suite


def run_harness(name: str, tmp_path, seconds: int = 5, runs: int = 200_000) -> None:
    """Run fuzz/<name> under atheris for at most `seconds` s / `runs` inputs; fail on any
    crash, skip (with the reason) when atheris is not importable in this interpreter."""
    import subprocess
    import sys

    import pytest

    pytest.importorskip(
        "atheris",
        reason="atheris is not importable in this venv "
        "(install it: .venv/bin/python -m pip install atheris); "
        "the atheris harness cannot run",
    )
    harness = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    proc = subprocess.run(
        [
            sys.executable,
            harness,
            f"-max_total_time={seconds}",
            f"-runs={runs}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        cwd=tmp_path,
    )
    tail = proc.stderr[-4000:]
    assert proc.returncode == 0, tail
    assert "\nDone " in proc.stderr, tail
    executed = [
        line
        for line in proc.stderr.splitlines()
        if line.startswith("stat::number_of_executed_units:")
    ]
    assert executed and int(executed[-1].split(":")[-1]) > 100, tail
    crashes = [p for p in os.listdir(tmp_path) if p.startswith(("crash-", "timeout-", "oom-"))]
    assert not crashes, (crashes, tail)
