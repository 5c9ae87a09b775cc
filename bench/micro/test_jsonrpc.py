"""Envelope + dispatch cost of the compiled JSON-RPC core against the plain-Python baseline.

Every case first checks that both implementations give the same bytes, then times each one.
Run with `make bench-micro`; the ratio table is printed at the end (see conftest.py).
"""

from __future__ import annotations

import orjson
import pytest

from bench import pyrpc
from bench.cameras import camera_entry, camera_list_result
from camera_service.rpc._jsonrpc import (
    CallContext,
    Dispatcher,
    PreEncoded,
    encode_notification,
    make_entry,
)

VIEWER = 1
CAMERA_LIST_JSON = orjson.dumps(camera_list_result(4))


def _request(method: str, request_id: int) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "id": request_id})


CASES = {
    "ping": _request("ping", 1),
    "get_camera_list (4 cameras)": _request("get_camera_list", 2),
    "unknown method (-32601)": _request("no_such_method", 3),
    "batch of 10 pings": b"[" + b",".join(_request("ping", i) for i in range(1, 11)) + b"]",
}
NOTIFICATION_PARAMS = camera_entry(0)


@pytest.fixture(scope="module")
def compiled():
    pong = PreEncoded(b'"pong"')
    cameras = PreEncoded(CAMERA_LIST_JSON)
    dispatcher = Dispatcher(
        [
            make_entry("ping", lambda ctx, params: pong, VIEWER, False),
            make_entry("get_camera_list", lambda ctx, params: cameras, VIEWER, False),
        ]
    )
    ctx = CallContext("bench-1")
    ctx.set_session(object(), VIEWER, 0.0)
    return dispatcher, ctx


@pytest.fixture(scope="module")
def python():
    pong = pyrpc.Raw(b'"pong"')
    cameras = pyrpc.Raw(CAMERA_LIST_JSON)
    dispatcher = pyrpc.PyDispatcher(
        {
            "ping": (lambda ctx, params: pong, VIEWER),
            "get_camera_list": (lambda ctx, params: cameras, VIEWER),
        }
    )
    return dispatcher, pyrpc.PyContext("bench-1", VIEWER)


@pytest.mark.parametrize("impl", ["cython", "python"])
@pytest.mark.parametrize("case", list(CASES))
def test_dispatch(benchmark, compiled, python, case, impl):
    payload = CASES[case]
    expected = compiled[0].handle(compiled[1], payload)
    got = python[0].handle(python[1], payload)
    assert got == expected, (
        f"baseline differs from the compiled core for {case}: {got!r} != {expected!r}"
    )
    if case.startswith("get_camera_list"):
        assert orjson.loads(expected)["result"]["total"] == 4

    dispatcher, ctx = compiled if impl == "cython" else python
    benchmark.group = case
    benchmark.extra_info.update(case=case, impl=impl)
    out = benchmark(dispatcher.handle, ctx, payload)
    assert out == expected


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_notification_encode(benchmark, impl):
    encode = encode_notification if impl == "cython" else pyrpc.encode_notification
    assert encode("camera_status_update", NOTIFICATION_PARAMS) == pyrpc.encode_notification(
        "camera_status_update", NOTIFICATION_PARAMS
    )
    case = "notification encode"
    benchmark.group = case
    benchmark.extra_info.update(case=case, impl=impl)
    benchmark(encode, "camera_status_update", NOTIFICATION_PARAMS)
