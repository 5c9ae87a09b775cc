"""The JSON-RPC dispatcher fed bytes directly (no sockets): encoding, handler kinds, errors,
authorization, counters. Also proves the compiled Cython modules are the ones in use."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camera_service.auth.authenticator import Authenticator
from camera_service.auth.gate import SessionGate
from camera_service.config import SecuritySettings
from camera_service.rpc import _jsonrpc
from camera_service.rpc._jsonrpc import (
    CallContext,
    Dispatcher,
    PreEncoded,
    encode_notification,
    make_entry,
)
from camera_service.rpc.errors import RpcError
from camera_service.server import _listener

SECRET_TEXT = "/srv/secret/path.py hunter2"


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, object]] = []


def new_authenticator() -> Authenticator:
    """A real authenticator whose key store is never written (no key exists)."""
    security = SecuritySettings(jwt_secret="unit-test-secret-" + "k" * 40, state_dir="/nonexistent")
    return Authenticator(security, env={})


def build(max_batch: int = 100, authorizer=None):
    if authorizer is None:
        authorizer = SessionGate(new_authenticator(), 5)
    rec = Recorder()

    def echo(ctx, params):
        rec.calls.append(("echo", params))
        return {"params": params}

    def pre(ctx, params):
        rec.calls.append(("pre", params))
        return PreEncoded(b'{"cached":[1,2,3]}')

    async def slow(ctx, params):
        rec.calls.append(("slow", params))
        await asyncio.sleep(params.get("delay", 0) if isinstance(params, dict) else 0)
        return {"slow": True}

    def rpc_fail(ctx, params):
        rec.calls.append(("rpc_fail", params))
        raise RpcError(-1000, data={"reason": "no such camera", "device": "/dev/video9"})

    def crash(ctx, params):
        rec.calls.append(("crash", params))
        raise ValueError(SECRET_TEXT)

    async def async_crash(ctx, params):
        rec.calls.append(("async_crash", params))
        raise ValueError(SECRET_TEXT)

    async def async_rpc_fail(ctx, params):
        rec.calls.append(("async_rpc_fail", params))
        raise RpcError(-32602, data={"reason": "x must be an int"})

    def mutate(ctx, params):
        seen = dict(params)
        params["injected"] = True
        rec.calls.append(("mutate", seen))
        return seen

    def unmutate(ctx, params):
        params.pop("injected", None)

    def viewer_only(ctx, params):
        rec.calls.append(("viewer_only", params))
        return "ok"

    def admin_only(ctx, params):
        rec.calls.append(("admin_only", params))
        return "admin-ok"

    entries = [
        make_entry("echo", echo, 0),
        make_entry("pre", pre, 0, binds_context=False),
        make_entry("slow", slow, 0),
        make_entry("rpc_fail", rpc_fail, 0),
        make_entry("crash", crash, 0),
        make_entry("async_crash", async_crash, 0),
        make_entry("async_rpc_fail", async_rpc_fail, 0),
        make_entry("mutate", mutate, 0),
        make_entry("unmutate", unmutate, 0),
        make_entry("viewer_only", viewer_only, 1),
        make_entry("admin_only", admin_only, 3),
    ]
    return Dispatcher(entries, max_batch, authorizer), rec


def new_ctx():
    sent: list[bytes] = []
    ctx = CallContext("c1", send=sent.append)
    return ctx, sent


def req(method, id=..., params=...):
    doc = {"jsonrpc": "2.0", "method": method}
    if params is not ...:
        doc["params"] = params
    if id is not ...:
        doc["id"] = id
    return orjson.dumps(doc)


# -- compiled modules ---------------------------------------------------------------------


def test_compiled_extensions_are_in_use():
    assert _jsonrpc.__file__.endswith(".so"), _jsonrpc.__file__
    assert _listener.__file__.endswith(".so"), _listener.__file__
    for cls in (Dispatcher, CallContext, PreEncoded, _listener.RpcListener):
        assert not inspect.isfunction(cls.__init__)
        # Extension types have no per-instance __dict__ and cannot take new attributes.
        assert "__dict__" not in cls.__dict__, cls
    assert type(Dispatcher.handle).__name__ in ("method_descriptor", "cython_function_or_method")
    assert not inspect.isfunction(Dispatcher.handle)
    ctx, _ = new_ctx()
    with pytest.raises(AttributeError):
        ctx.not_an_attribute = 1


# -- result encoding ----------------------------------------------------------------------


def test_sync_result_exact_bytes():
    d, rec = build()
    ctx, _ = new_ctx()
    out = d.handle(ctx, req("echo", 7, {"a": [1, "x"]}))
    assert out == b'{"jsonrpc":"2.0","result":{"params":{"a":[1,"x"]}},"id":7}'
    assert rec.calls == [("echo", {"a": [1, "x"]})]


def test_missing_params_means_empty_object():
    d, _ = build()
    ctx, _ = new_ctx()
    assert orjson.loads(d.handle(ctx, req("echo", 1))) == {
        "jsonrpc": "2.0",
        "result": {"params": {}},
        "id": 1,
    }


def test_params_default_is_not_shared_between_requests():
    d, _ = build()
    ctx, _ = new_ctx()
    try:
        assert orjson.loads(d.handle(ctx, req("mutate", 1)))["result"] == {}
        assert orjson.loads(d.handle(ctx, req("mutate", 2)))["result"] == {}
    finally:
        d.handle(ctx, req("unmutate", 3))  # undo the leak for the rest of the process


def test_preencoded_result_sent_verbatim():
    d, _ = build()
    ctx, _ = new_ctx()
    assert d.handle(ctx, req("pre", "k")) == (
        b'{"jsonrpc":"2.0","result":{"cached":[1,2,3]},"id":"k"}'
    )


def test_preencoded_holds_bytes_only():
    assert PreEncoded(b'"pong"').json == b'"pong"'
    with pytest.raises(TypeError):
        PreEncoded("pong")  # type: ignore[arg-type]


def test_notification_encoding():
    out = encode_notification("camera_status_update", {"device": "/dev/video0", "fps": 7.5})
    assert orjson.loads(out) == {
        "jsonrpc": "2.0",
        "method": "camera_status_update",
        "params": {"device": "/dev/video0", "fps": 7.5},
    }
    assert b'"id"' not in out


@pytest.mark.parametrize(
    "raw_id",
    [
        b"0",
        b'""',
        b"null",
        b"-1",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"1000000000000000000000000000000",
        b"1.5",
        b"-2.5e-7",
        b'"\\ud800"',
        b'"a\\"b\\\\c\\n\\u0001"',
        b'"\\u65e5\\u672c"',
        b'"\xf0\x9f\x98\x80"',
    ],
)
def test_ids_echoed_exactly(raw_id):
    d, _ = build()
    ctx, _ = new_ctx()
    payload = b'{"jsonrpc":"2.0","method":"pre","id":' + raw_id + b"}"
    out = d.handle(ctx, payload)
    expected_id = json.loads(raw_id)
    got = json.loads(out)
    assert got == {"jsonrpc": "2.0", "result": {"cached": [1, 2, 3]}, "id": expected_id}
    assert type(got["id"]) is type(expected_id)


def test_big_integer_id_inside_a_batch():
    d, _ = build()
    ctx, _ = new_ctx()
    payload = (
        b'[{"jsonrpc":"2.0","method":"pre","id":18446744073709551617},'
        b'{"jsonrpc":"2.0","method":"pre","id":2.25},'
        b'{"jsonrpc":"2.0","method":"pre","id":100000000000000000000000000001}]'
    )
    got = json.loads(d.handle(ctx, payload))
    assert sorted(item["id"] for item in got) == [
        2.25,
        18446744073709551617,
        100000000000000000000000000001,
    ]


# -- async handlers -----------------------------------------------------------------------


async def test_async_handler_sends_later():
    d, _ = build()
    ctx, sent = new_ctx()
    assert d.handle(ctx, req("slow", 3, {"delay": 0.01})) is None
    assert d.pending_tasks == 1
    await d.drain(2)
    await asyncio.sleep(0)
    assert sent == [b'{"jsonrpc":"2.0","result":{"slow":true},"id":3}']
    assert d.pending_tasks == 0


async def test_async_notification_runs_but_sends_nothing():
    d, rec = build()
    ctx, sent = new_ctx()
    assert d.handle(ctx, req("slow", params={})) is None
    await d.drain(2)
    await asyncio.sleep(0)
    assert rec.calls == [("slow", {})]
    assert sent == []


async def test_batch_with_async_item_sent_as_one_array():
    d, _ = build()
    ctx, sent = new_ctx()
    payload = (
        b"["
        + b",".join(
            [
                req("slow", 1, {"delay": 0.01}),
                req("echo", 2),
                req("echo"),
                b"5",
                req("async_rpc_fail", 3),
                req("async_crash", 4),
            ]
        )
        + b"]"
    )
    assert d.handle(ctx, payload) is None
    await d.drain(2)
    await asyncio.sleep(0)
    assert len(sent) == 1
    items = orjson.loads(sent[0])
    assert len(items) == 5
    by_id = {item["id"]: item for item in items if item["id"] is not None}
    assert by_id[1] == {"jsonrpc": "2.0", "result": {"slow": True}, "id": 1}
    assert by_id[2] == {"jsonrpc": "2.0", "result": {"params": {}}, "id": 2}
    assert by_id[3] == {
        "jsonrpc": "2.0",
        "error": {
            "code": -32602,
            "message": "Invalid parameters",
            "data": {"reason": "x must be an int"},
        },
        "id": 3,
    }
    assert by_id[4]["error"]["code"] == -32603
    assert by_id[4]["error"]["message"] == "Internal server error"
    assert set(by_id[4]["error"]["data"]) == {"reason", "correlation_id"}
    assert SECRET_TEXT not in sent[0].decode()
    nulls = [item for item in items if item["id"] is None]
    assert nulls == [
        {
            "jsonrpc": "2.0",
            "error": {
                "code": -32600,
                "message": "Invalid Request",
                "data": {"reason": nulls[0]["error"]["data"]["reason"]},
            },
            "id": None,
        }
    ]


async def test_async_response_dropped_when_connection_closed():
    d, _ = build()
    ctx, sent = new_ctx()
    assert d.handle(ctx, req("slow", 1, {"delay": 0.02})) is None
    ctx.closed = True
    await d.drain(2)
    await asyncio.sleep(0)
    assert sent == []


# -- handler errors -----------------------------------------------------------------------


def test_rpc_error_from_handler():
    d, _ = build()
    ctx, _ = new_ctx()
    out = orjson.loads(d.handle(ctx, req("rpc_fail", "r")))
    assert out == {
        "jsonrpc": "2.0",
        "error": {
            "code": -1000,
            "message": "Camera not found",
            "data": {"reason": "no such camera", "device": "/dev/video9"},
        },
        "id": "r",
    }


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_unexpected_exception_is_internal_error_without_details():
    d, _ = build()
    ctx, _ = new_ctx()
    handler = ListHandler()
    logger = logging.getLogger("camera_service.rpc")
    logger.addHandler(handler)
    try:
        raw = d.handle(ctx, req("crash", 9))
    finally:
        logger.removeHandler(handler)
    out = orjson.loads(raw)
    assert out["id"] == 9 and out["jsonrpc"] == "2.0"
    assert out["error"]["code"] == -32603
    assert out["error"]["message"] == "Internal server error"
    data = out["error"]["data"]
    assert set(data) == {"reason", "correlation_id"}
    assert isinstance(data["reason"], str) and data["reason"]
    assert data["correlation_id"].startswith("c1-")
    for leak in ("hunter2", "/srv/", "Traceback", "ValueError", ".py"):
        assert leak not in raw.decode()
    # ...but the log has it, under the same correlation id.
    records = handler.records
    assert records and records[-1].exc_info is not None
    assert getattr(records[-1], "correlation_id", None) == data["correlation_id"]


async def test_async_unexpected_exception_is_internal_error():
    d, _ = build()
    ctx, sent = new_ctx()
    assert d.handle(ctx, req("async_crash", "z")) is None
    await d.drain(2)
    await asyncio.sleep(0)
    out = orjson.loads(sent[0])
    assert out["id"] == "z"
    assert (out["error"]["code"], out["error"]["message"]) == (-32603, "Internal server error")
    assert set(out["error"]["data"]) == {"reason", "correlation_id"}
    assert SECRET_TEXT not in sent[0].decode()


def test_errors_in_notifications_are_not_answered():
    d, rec = build()
    ctx, _ = new_ctx()
    for payload in (
        req("crash"),
        req("rpc_fail"),
        req("nope"),
        req("viewer_only"),
        req("echo", params=[1]),
    ):
        assert d.handle(ctx, payload) is None, payload
    assert [c[0] for c in rec.calls] == ["crash", "rpc_fail"]


# -- authorization ------------------------------------------------------------------------


def test_protected_method_without_session():
    d, rec = build()
    ctx, _ = new_ctx()
    out = orjson.loads(d.handle(ctx, req("viewer_only", 1)))
    assert out["error"]["code"] == -32001
    assert out["error"]["message"] == "Authentication required"
    assert out["error"]["data"]["reason"]
    assert rec.calls == []


def test_role_too_low():
    d, rec = build()
    ctx, _ = new_ctx()
    ctx.set_session(object(), 1, 0.0)
    assert orjson.loads(d.handle(ctx, req("viewer_only", 1)))["result"] == "ok"
    out = orjson.loads(d.handle(ctx, req("admin_only", 2)))
    assert out["error"]["code"] == -32003
    assert out["error"]["message"] == "Insufficient permissions"
    assert out["error"]["data"]["required_role"] == "admin"
    assert out["error"]["data"]["role"] == "viewer"
    assert [c[0] for c in rec.calls] == ["viewer_only"]


def test_expired_session_is_cleared():
    d, rec = build()
    ctx, _ = new_ctx()
    ctx.set_session(object(), 3, time.time() - 1)
    out = orjson.loads(d.handle(ctx, req("viewer_only", 1)))
    assert (out["error"]["code"], out["error"]["message"]) == (-32001, "Authentication failed")
    assert "expired" in out["error"]["data"]["reason"]
    assert ctx.role_level == 0 and ctx.session is None
    out = orjson.loads(d.handle(ctx, req("viewer_only", 2)))
    assert out["error"]["message"] == "Authentication required"
    assert rec.calls == []


def test_invalid_per_request_token():
    d, rec = build()
    ctx, _ = new_ctx()
    out = orjson.loads(d.handle(ctx, req("viewer_only", 1, {"auth_token": "x"})))
    assert (out["error"]["code"], out["error"]["message"]) == (-32001, "Authentication failed")
    assert rec.calls == []


def test_per_request_token_uses_authorizer_level():
    class Authorizer(SessionGate):
        def __init__(self):
            super().__init__(new_authenticator(), 5)
            self.seen = []

        def authorize_request(self, ctx, params):
            self.seen.append(params["token"])
            return 2

    auth = Authorizer()
    d, _ = build(authorizer=auth)
    ctx, _ = new_ctx()
    assert orjson.loads(d.handle(ctx, req("viewer_only", 1, {"token": "t1"})))["result"] == "ok"
    out = orjson.loads(d.handle(ctx, req("admin_only", 2, {"token": "t2"})))
    assert out["error"]["code"] == -32003
    assert out["error"]["data"]["role"] == "operator"
    assert auth.seen == ["t1", "t2"]


# -- limits and counters ------------------------------------------------------------------


def test_max_batch_is_live():
    d, _ = build(max_batch=3)
    ctx, _ = new_ctx()
    batch = b"[" + b",".join(req("echo", i) for i in range(4)) + b"]"
    out = orjson.loads(d.handle(ctx, batch))
    assert isinstance(out, dict) and out["id"] is None
    assert out["error"]["code"] == -32600 and out["error"]["data"]["reason"]
    d.max_batch = 4
    out = orjson.loads(d.handle(ctx, batch))
    assert sorted(item["id"] for item in out) == [0, 1, 2, 3]


def test_all_notification_batch_returns_none():
    d, rec = build()
    ctx, _ = new_ctx()
    assert d.handle(ctx, b"[" + req("echo") + b"," + req("pre") + b"]") is None
    assert [c[0] for c in rec.calls] == ["echo", "pre"]


def test_counters():
    d, _ = build()
    ctx, _ = new_ctx()
    d.handle(ctx, req("echo", 1))
    d.handle(ctx, b"{bad")
    d.handle(ctx, req("nope", 2))
    d.handle(ctx, req("rpc_fail", 3))
    assert d.total_errors == 3
    assert ctx.error_count == 3
    assert d.error_counts == {-32700: 1, -32601: 1, -1000: 1}
    assert d.total_requests >= 3
    assert d.methods["echo"].calls == 1
    assert d.methods["rpc_fail"].errors == 1


def test_make_entry_detects_async():
    async def a(ctx, params):
        return 1

    def s(ctx, params):
        return 1

    assert make_entry("a", a, 0).is_async is True
    assert make_entry("s", s, 2).is_async is False
    assert make_entry("s", s, 2).role_level == 2


def test_float_ids_in_a_batch_do_not_redecode_the_message_per_item(monkeypatch):
    d, _ = build()
    ctx, _ = new_ctx()
    item = b'{"jsonrpc":"2.0","method":"pre","id":1.5,"params":{"pad":"' + b"x" * 1000 + b'"}}'
    payload = b"[" + b",".join([item] * 50) + b"]"
    real_loads = json.loads
    big_decodes = []

    def counting_loads(s, *args, **kwargs):
        if isinstance(s, (bytes, str)) and len(s) >= len(payload):
            big_decodes.append(len(s))
        return real_loads(s, *args, **kwargs)

    monkeypatch.setattr(json, "loads", counting_loads)
    out = d.handle(ctx, payload)
    monkeypatch.undo()
    got = orjson.loads(out)
    assert [item["id"] for item in got] == [1.5] * 50
    assert len(big_decodes) <= 1, f"{len(big_decodes)} full decodes of one message"


def test_authorizer_crash_is_internal_error_not_an_exception():
    """A bug in the token check must answer -32603 like a bug in a handler, not escape
    from handle() (which would tear the connection down)."""

    class BrokenAuthorizer(SessionGate):
        def authorize_request(self, ctx, params):
            raise KeyError(SECRET_TEXT)

    d, rec = build(authorizer=BrokenAuthorizer(new_authenticator(), 5))
    ctx, _ = new_ctx()
    raw = d.handle(ctx, req("viewer_only", 5, {"auth_token": "t"}))
    out = orjson.loads(raw)
    assert out["id"] == 5
    assert (out["error"]["code"], out["error"]["message"]) == (-32603, "Internal server error")
    assert set(out["error"]["data"]) == {"reason", "correlation_id"}
    assert "hunter2" not in raw.decode()
    assert rec.calls == []
    # As a notification: silent, and still no exception.
    assert d.handle(ctx, req("viewer_only", params={"auth_token": "t"})) is None


# -- simple requests and their general form give the same answer --------------------------

PLAIN_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters='"\\', min_codepoint=0x20
    ),
    max_size=12,
)
IDS = st.one_of(
    st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(None),
    PLAIN_TEXT,
    st.text(max_size=6),
    st.floats(allow_nan=False, allow_infinity=False),
)
METHODS = st.sampled_from(
    [
        "pre",
        "echo",
        "viewer_only",
        "admin_only",
        "crash",
        "rpc_fail",
        "authenticate",
        "Pre",
        "pre ",
        "ünïcode",
    ]
)
WS = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])


@settings(max_examples=250, deadline=None)
@given(
    method=METHODS,
    request_id=IDS,
    has_id=st.booleans(),
    order=st.permutations([0, 1, 2]),
    ws=st.lists(WS, min_size=12, max_size=12),
    role=st.sampled_from([0, 1, 3]),
)
def test_simple_request_equals_its_general_form(method, request_id, has_id, order, ws, role):
    """`{"jsonrpc","method","id"}` in any key order and spacing answers exactly like the same
    request with `"params":{}` added (which no shortcut can take)."""
    # (key, value) pairs; the spacing goes around the colon when rendered. No %-templates:
    # the id itself may contain "%".
    members = [
        (b'"jsonrpc"', b'"2.0"'),
        (b'"method"', json.dumps(method).encode()),
        (b'"id"', json.dumps(request_id).encode()),
    ]
    if not has_id:
        members[2] = None

    def render(extra: bytes | None) -> bytes:
        parts = []
        k = 0
        for index in order:
            member = members[index]
            if member is None:
                continue
            key, value = member
            parts.append(key + ws[k].encode() + b":" + ws[k + 1].encode() + value)
            k += 2
        if extra is not None:
            parts.append(extra)
        sep = (ws[10] + "," + ws[11]).encode()
        return ws[9].encode() + b"{" + sep.join(parts) + b"}" + ws[8].encode()

    results = []
    for extra in (None, b'"params":{}'):
        d, rec = build()
        ctx, _ = new_ctx()
        if role:
            ctx.set_session(object(), role, 0.0)
        out = d.handle(ctx, render(extra))
        results.append(
            (
                None if out is None else json.loads(out),
                rec.calls,
                d.total_requests,
                d.total_errors,
                d.error_counts,
                ctx.error_count,
            )
        )
    simple, general = results
    assert simple == general


def test_leading_byte_order_mark_is_ignored_and_utf16_is_not_json():
    """RFC 8259 8.1 lets a parser ignore a BOM; UTF-16 text is not a UTF-8 JSON text."""
    d, _ = build()
    ctx, _ = new_ctx()
    with_bom = "\ufeff".encode() + req("pre", 7)
    assert orjson.loads(d.handle(ctx, with_bom)) == {
        "jsonrpc": "2.0",
        "result": {"cached": [1, 2, 3]},
        "id": 7,
    }
    utf16 = req("pre", 8).decode().encode("utf-16-le")
    error = orjson.loads(d.handle(ctx, utf16))
    assert (error["error"]["code"], error["id"]) == (-32700, None)
