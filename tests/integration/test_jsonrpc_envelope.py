"""PROTOCOL.md sections 2-3 row by row, against the real server over a real WebSocket."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import orjson
import pytest
from conftest import mint_token

MESSAGES = {
    -32700: "Parse error",
    -32600: "Invalid Request",
    -32601: "Method not found",
    -32602: "Invalid parameters",
    -32603: "Internal server error",
}


class Reason:
    """Matches a non-empty human-readable reason, optionally containing some words."""

    def __init__(self, *words: str):
        self.words = words

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str)
            and bool(other.strip())
            and all(w.lower() in other.lower() for w in self.words)
        )

    def __repr__(self) -> str:
        return f"Reason{self.words!r}"


def err(code: int, id: Any, *words: str, message: str | None = None) -> dict:
    return {
        "jsonrpc": "2.0",
        "error": {
            "code": code,
            "message": message or MESSAGES[code],
            "data": {"reason": Reason(*words)},
        },
        "id": id,
    }


def ok(result: Any, id: Any) -> dict:
    return {"jsonrpc": "2.0", "result": result, "id": id}


def canon(value: Any) -> str:
    """Order-independent key for comparing batch responses."""
    return json.dumps(value, sort_keys=True, default=repr)


def assert_batch(got: Any, expected: list[dict]) -> None:
    assert isinstance(got, list), got
    assert len(got) == len(expected), got
    remaining = list(expected)
    for item in got:
        for i, candidate in enumerate(remaining):
            if candidate == item:
                del remaining[i]
                break
        else:
            raise AssertionError(f"unexpected item {item!r}; still expected {remaining!r}")


def r(method: str, id: Any = ..., params: Any = ..., jsonrpc: Any = "2.0") -> dict:
    doc: dict[str, Any] = {}
    if jsonrpc is not ...:
        doc["jsonrpc"] = jsonrpc
    doc["method"] = method
    if params is not ...:
        doc["params"] = params
    if id is not ...:
        doc["id"] = id
    return doc


# Raw payloads (bytes) -> exactly one expected response.
SINGLE_CASES: list[tuple[str, bytes, Any]] = [
    # Not valid JSON
    ("truncated", b'{"jsonrpc":"2.0","method":"ping","id":1', err(-32700, None)),
    ("garbage", b"not json", err(-32700, None)),
    (
        "spec-parse-error",
        b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        err(-32700, None),
    ),
    ("empty-message", b"", err(-32700, None)),
    ("whitespace", b"  \n", err(-32700, None)),
    ("nan", b'{"jsonrpc":"2.0","method":"ping","id":NaN}', err(-32700, None)),
    ("trailing-comma", b'{"jsonrpc":"2.0","method":"ping","id":1,}', err(-32700, None)),
    ("single-quotes", b"{'jsonrpc':'2.0','method':'ping','id':1}", err(-32700, None)),
    ("two-documents", b'{"jsonrpc":"2.0","method":"ping","id":1}{}', err(-32700, None)),
    ("deep-nesting", b"[" * 5000 + b"]" * 5000, err(-32700, None)),
    # Valid JSON, not an object or array
    ("number", b"1", err(-32600, None)),
    ("float", b"1.5", err(-32600, None)),
    ("string", b'"x"', err(-32600, None)),
    ("null", b"null", err(-32600, None)),
    ("true", b"true", err(-32600, None)),
    ("false", b"false", err(-32600, None)),
    # Empty batch: one error object, not an array
    ("empty-batch", b"[]", err(-32600, None)),
    ("empty-batch-spaces", b" [ ] ", err(-32600, None)),
    # Spec: rpc call with invalid Request object
    ("spec-method-number", b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}', err(-32600, None)),
]


@pytest.mark.parametrize(
    "payload,expected", [c[1:] for c in SINGLE_CASES], ids=[c[0] for c in SINGLE_CASES]
)
async def test_raw_payload(raw_connect, payload, expected):
    client = await raw_connect(role="viewer")
    client.send(payload)
    got = await client.recv_json()
    assert got == expected
    # The connection survives every envelope error.
    assert await client.request(r("ping", "after")) == ok("pong", "after")


# The spellings of a simple request: key order, JSON whitespace, escapes, duplicate keys,
# number forms. (The server scans the common shape without a full parse; every spelling must
# answer as a full parse would.)
SPELLING_CASES: list[tuple[str, bytes, Any]] = [
    ("compact", b'{"jsonrpc":"2.0","method":"ping","id":1}', ok("pong", 1)),
    ("id-first", b'{"id":1,"method":"ping","jsonrpc":"2.0"}', ok("pong", 1)),
    ("method-first", b'{"method":"ping","jsonrpc":"2.0","id":"m"}', ok("pong", "m")),
    (
        "all-whitespace",
        b' \t\r\n{ "jsonrpc" :\t"2.0" ,\n"method"\r: "ping" , "id" : 1 }\n ',
        ok("pong", 1),
    ),
    ("escaped-method", b'{"jsonrpc":"2.0","method":"p\\u0069ng","id":1}', ok("pong", 1)),
    ("escaped-method-upper", b'{"jsonrpc":"2.0","method":"\\u0050ing","id":1}', err(-32601, 1)),
    ("escaped-key", b'{"j\\u0073onrpc":"2.0","method":"ping","id":1}', ok("pong", 1)),
    ("escaped-version", b'{"jsonrpc":"2\\u002e0","method":"ping","id":1}', ok("pong", 1)),
    ("escaped-id", b'{"jsonrpc":"2.0","method":"ping","id":"\\u0041"}', ok("pong", "A")),
    ("dup-id-last-wins", b'{"jsonrpc":"2.0","method":"ping","id":1,"id":2}', ok("pong", 2)),
    (
        "dup-method-last-wins",
        b'{"jsonrpc":"2.0","method":"nope","method":"ping","id":1}',
        ok("pong", 1),
    ),
    (
        "dup-method-last-wins-2",
        b'{"jsonrpc":"2.0","method":"ping","method":"nope","id":1}',
        err(-32601, 1),
    ),
    (
        "dup-version-last-wins",
        b'{"jsonrpc":"2.0","method":"ping","jsonrpc":"1.0","id":1}',
        err(-32600, 1, "jsonrpc"),
    ),
    (
        "version-spaces-inside",
        b'{"jsonrpc":" 2.0","method":"ping","id":1}',
        err(-32600, 1, "jsonrpc"),
    ),
    ("version-prefix", b'{"jsonrpc":"2.0.1","method":"ping","id":1}', err(-32600, 1, "jsonrpc")),
    ("version-unquoted", b'{"jsonrpc":2.0,"method":"ping","id":1}', err(-32600, 1, "jsonrpc")),
    ("extra-member", b'{"jsonrpc":"2.0","method":"ping","id":1,"x":[1,{"y":null}]}', ok("pong", 1)),
    (
        "id-18-digits",
        b'{"jsonrpc":"2.0","method":"ping","id":123456789012345678}',
        ok("pong", 123456789012345678),
    ),
    (
        "id-19-digits",
        b'{"jsonrpc":"2.0","method":"ping","id":1234567890123456789}',
        ok("pong", 1234567890123456789),
    ),
    (
        "id-negative-18",
        b'{"jsonrpc":"2.0","method":"ping","id":-999999999999999999}',
        ok("pong", -999999999999999999),
    ),
    ("id-minus-zero", b'{"jsonrpc":"2.0","method":"ping","id":-0}', ok("pong", 0)),
    ("id-exponent", b'{"jsonrpc":"2.0","method":"ping","id":1E2}', ok("pong", 100.0)),
    ("id-1.0", b'{"jsonrpc":"2.0","method":"ping","id":1.0}', ok("pong", 1.0)),
    ("id-leading-zero", b'{"jsonrpc":"2.0","method":"ping","id":01}', err(-32700, None)),
    ("id-plus", b'{"jsonrpc":"2.0","method":"ping","id":+1}', err(-32700, None)),
    ("id-minus-alone", b'{"jsonrpc":"2.0","method":"ping","id":-}', err(-32700, None)),
    ("id-hex", b'{"jsonrpc":"2.0","method":"ping","id":0x10}', err(-32700, None)),
    ("id-nul", b'{"jsonrpc":"2.0","method":"ping","id":nul}', err(-32700, None)),
    ("id-nullx", b'{"jsonrpc":"2.0","method":"ping","id":nullx}', err(-32700, None)),
    ("id-true", b'{"jsonrpc":"2.0","method":"ping","id":true}', err(-32600, None, "id")),
    ("id-raw-control-char", b'{"jsonrpc":"2.0","method":"ping","id":"a\tb"}', err(-32700, None)),
    ("id-unterminated", b'{"jsonrpc":"2.0","method":"ping","id":"abc}', err(-32700, None)),
    (
        "id-unicode-raw",
        '{"jsonrpc":"2.0","method":"ping","id":" é😀"}'.encode(),
        ok("pong", " é😀"),
    ),
    ("trailing-garbage", b'{"jsonrpc":"2.0","method":"ping","id":1} x', err(-32700, None)),
    ("trailing-brace", b'{"jsonrpc":"2.0","method":"ping","id":1}}', err(-32700, None)),
    ("missing-colon", b'{"jsonrpc":"2.0","method" "ping","id":1}', err(-32700, None)),
    ("missing-comma", b'{"jsonrpc":"2.0" "method":"ping","id":1}', err(-32700, None)),
    ("trailing-comma", b'{"jsonrpc":"2.0","method":"ping","id":1,}', err(-32700, None)),
    ("leading-comma", b'{,"jsonrpc":"2.0","method":"ping","id":1}', err(-32700, None)),
    ("no-version", b'{"method":"ping","id":1}', err(-32600, 1, "jsonrpc")),
    ("no-method", b'{"jsonrpc":"2.0","id":1}', err(-32600, 1, "method")),
    ("empty-method", b'{"jsonrpc":"2.0","method":"","id":1}', err(-32600, 1, "method")),
    ("method-null", b'{"jsonrpc":"2.0","method":null,"id":1}', err(-32600, 1, "method")),
    ("empty-object", b"{}", err(-32600, None)),
    (
        "params-null",
        b'{"jsonrpc":"2.0","method":"ping","params":null,"id":1}',
        err(-32600, 1, "params"),
    ),
    (
        "authenticate-no-params",
        b'{"jsonrpc":"2.0","method":"authenticate","id":1}',
        err(-32602, 1, "auth_token"),
    ),
    ("unknown-simple", b'{"jsonrpc":"2.0","method":"pingx","id":1}', err(-32601, 1)),
    ("prefix-of-method", b'{"jsonrpc":"2.0","method":"pin","id":1}', err(-32601, 1)),
    ("unicode-method", '{"jsonrpc":"2.0","method":"pïng","id":1}'.encode(), err(-32601, 1)),
]


@pytest.mark.parametrize(
    "payload,expected", [c[1:] for c in SPELLING_CASES], ids=[c[0] for c in SPELLING_CASES]
)
async def test_spelling(raw_connect, payload, expected):
    client = await raw_connect(role="viewer")
    client.send(payload)
    got = json.loads(await client.recv())
    assert got == expected
    if "id" in got and isinstance(expected, dict):
        assert type(got["id"]) is type(expected["id"])


async def test_simple_request_without_session_or_id(raw_connect):
    anonymous = await raw_connect()
    anonymous.send(b'{"jsonrpc":"2.0","method":"ping","id":1}')
    assert await anonymous.recv_json() == err(-32001, 1, message="Authentication required")
    anonymous.send(b'{"jsonrpc":"2.0","method":"ping"}')
    anonymous.send(b'{"method":"ping","jsonrpc":"2.0"}')
    await anonymous.expect_silence(0.2)


# Request objects (sent alone) -> expected response.
OBJECT_CASES: list[tuple[str, dict, Any]] = [
    # jsonrpc member
    ("jsonrpc-missing", r("ping", 7, jsonrpc=...), err(-32600, 7, "jsonrpc")),
    ("jsonrpc-1.0", r("ping", "a", jsonrpc="1.0"), err(-32600, "a", "jsonrpc")),
    ("jsonrpc-number", r("ping", 3, jsonrpc=2.0), err(-32600, 3, "jsonrpc")),
    ("jsonrpc-number-int", r("ping", 3, jsonrpc=2), err(-32600, 3, "jsonrpc")),
    ("jsonrpc-null", r("ping", 4, jsonrpc=None), err(-32600, 4, "jsonrpc")),
    ("jsonrpc-2.00", r("ping", 5, jsonrpc="2.00"), err(-32600, 5, "jsonrpc")),
    ("jsonrpc-space", r("ping", 6, jsonrpc="2.0 "), err(-32600, 6, "jsonrpc")),
    ("jsonrpc-missing-bad-id", r("ping", {"a": 1}, jsonrpc=...), err(-32600, None)),
    # id member of the wrong type
    ("id-object", r("ping", {"a": 1}), err(-32600, None, "id")),
    ("id-array", r("ping", [1]), err(-32600, None, "id")),
    ("id-true", r("ping", True), err(-32600, None, "id")),
    ("id-false", r("ping", False), err(-32600, None, "id")),
    # method member
    ("method-missing", {"jsonrpc": "2.0", "id": 8}, err(-32600, 8, "method")),
    ("method-empty", r("", 9), err(-32600, 9, "method")),
    ("method-number", r(5, 10), err(-32600, 10, "method")),
    ("method-null", r(None, 11), err(-32600, 11, "method")),
    ("method-array", r(["ping"], 12), err(-32600, 12, "method")),
    # params member
    ("params-string", r("ping", 13, "x"), err(-32600, 13, "params")),
    ("params-number", r("ping", 14, 5), err(-32600, 14, "params")),
    ("params-true", r("ping", 15, True), err(-32600, 15, "params")),
    ("params-null", r("ping", 16, None), err(-32600, 16, "params")),
    ("params-string-authenticate", r("authenticate", 17, "tok"), err(-32600, 17, "params")),
    # unknown methods (case-sensitive)
    ("Ping", r("Ping", 20), err(-32601, 20, "Ping")),
    ("PING", r("PING", 21), err(-32601, 21)),
    ("ping-space", r("ping ", 22), err(-32601, 22)),
    ("rpc.discover", r("rpc.discover", 23), err(-32601, 23)),
    ("unknown-long", r("x" * 5000, 24), err(-32601, 24)),
    # params of the wrong shape
    ("ping-array", r("ping", 30, []), err(-32602, 30)),
    ("authenticate-array", r("authenticate", 31, [mint_token("viewer")]), err(-32602, 31)),
    ("authenticate-no-token", r("authenticate", 32, {}), err(-32602, 32, "auth_token")),
    (
        "authenticate-token-number",
        r("authenticate", 33, {"auth_token": 5}),
        err(-32602, 33, "auth_token"),
    ),
    (
        "authenticate-token-alias-number",
        r("authenticate", 34, {"token": []}),
        err(-32602, 34, "token"),
    ),
    (
        "authenticate-bad-auth-type",
        r("authenticate", 35, {"auth_token": "x", "auth_type": "pw"}),
        err(-32602, 35, "auth_type"),
    ),
    # unknown extra params are ignored
    ("ping-extra-params", r("ping", 40, {"foo": 1, "bar": [1, 2]}), ok("pong", 40)),
    ("ping-empty-params", r("ping", 41, {}), ok("pong", 41)),
    ("ping-no-params", r("ping", 42), ok("pong", 42)),
    # ids
    ("id-null", r("ping", None), ok("pong", None)),
    ("id-zero", r("ping", 0), ok("pong", 0)),
    ("id-empty-string", r("ping", ""), ok("pong", "")),
    ("id-negative", r("ping", -5), ok("pong", -5)),
    ("id-error-null", r("nope", None), err(-32601, None)),
    ("id-error-zero", r("nope", 0), err(-32601, 0)),
    ("id-error-empty", r("nope", ""), err(-32601, "")),
]


@pytest.mark.parametrize(
    "doc,expected", [c[1:] for c in OBJECT_CASES], ids=[c[0] for c in OBJECT_CASES]
)
async def test_request_object(raw_connect, doc, expected):
    client = await raw_connect(role="viewer")
    assert await client.request(doc) == expected


async def test_every_row_on_one_connection(raw_connect):
    """The same table, pipelined on one connection: answers come in order, nothing leaks
    from one request into the next."""
    client = await raw_connect(role="viewer")
    for _, doc, _expected in OBJECT_CASES:
        client.send(orjson.dumps(doc))
    for name, _doc, expected in OBJECT_CASES:
        assert await client.recv_json() == expected, name
    await client.expect_silence(0.1)


async def test_unauthenticated_protected_call(raw_connect):
    client = await raw_connect()
    assert await client.request(r("ping", 1)) == err(-32001, 1, message="Authentication required")


# ---------------------------------------------------------------------------------------
# Batches


BATCH_CASES: list[tuple[str, bytes, list[dict]]] = [
    ("spec-1-2-3", b"[1,2,3]", [err(-32600, None)] * 3),
    ("one-invalid", b"[1]", [err(-32600, None)]),
    ("nested-empty", b"[[]]", [err(-32600, None)]),
    ("strings-and-null", b'["a", null, {}]', [err(-32600, None)] * 3),
    (
        "spec-invalid-member",
        b'[{"jsonrpc": "2.0", "method": 1, "params": "bar"}]',
        [err(-32600, None)],
    ),
    (
        "spec-rpc-call-batch",
        orjson.dumps(
            [
                r("ping", "1"),
                r("ping", params={"notified": True}),  # notification
                r("ping", "2", {"extra": 42}),
                {"foo": "boo"},
                r("foo.get", "5", {"name": "myself"}),
                r("authenticate", "9", [1, 2]),
                r("Ping", None),
                {"jsonrpc": "2.0", "method": "ping", "id": {"x": 1}},
            ]
        ),
        [
            ok("pong", "1"),
            ok("pong", "2"),
            err(-32600, None),
            err(-32601, "5"),
            err(-32602, "9"),
            err(-32601, None),
            err(-32600, None, "id"),
        ],
    ),
    (
        "ids-in-batch",
        b"["
        + b",".join(
            [
                b'{"jsonrpc":"2.0","method":"ping","id":18446744073709551616}',
                b'{"jsonrpc":"2.0","method":"ping","id":-9223372036854775809}',
                b'{"jsonrpc":"2.0","method":"ping","id":0}',
                b'{"jsonrpc":"2.0","method":"ping","id":""}',
                b'{"jsonrpc":"2.0","method":"ping","id":1.5}',
            ]
        )
        + b"]",
        [
            ok("pong", 2**64),
            ok("pong", -(2**63) - 1),
            ok("pong", 0),
            ok("pong", ""),
            ok("pong", 1.5),
        ],
    ),
]


@pytest.mark.parametrize(
    "payload,expected", [c[1:] for c in BATCH_CASES], ids=[c[0] for c in BATCH_CASES]
)
async def test_batch(raw_connect, payload, expected):
    client = await raw_connect(role="viewer")
    client.send(payload)
    got = json.loads(await client.recv())
    assert_batch(got, expected)
    await client.expect_silence(0.05)


async def test_batch_ids_keep_their_types(raw_connect):
    client = await raw_connect(role="viewer")
    client.send(
        b'[{"jsonrpc":"2.0","method":"ping","id":1},'
        b'{"jsonrpc":"2.0","method":"ping","id":"1"},'
        b'{"jsonrpc":"2.0","method":"ping","id":1.0}]'
    )
    got = json.loads(await client.recv())
    assert Counter((type(item["id"]).__name__, item["id"]) for item in got) == Counter(
        [("int", 1), ("str", "1"), ("float", 1.0)]
    )


async def test_all_notification_batch_gets_no_reply(raw_connect):
    client = await raw_connect(role="viewer")
    client.send(
        orjson.dumps(
            [
                r("ping"),
                r("ping", params={}),
                r("no_such_method"),  # error in a notification: still silent
                r("ping", params=[1]),  # -32602 in a notification: still silent
                r("authenticate", params={}),  # -32602 in a notification: still silent
            ]
        )
    )
    await client.expect_silence(0.3)
    assert await client.request(r("ping", "alive")) == ok("pong", "alive")


async def test_notifications_are_never_answered(raw_connect):
    anonymous = await raw_connect()
    for doc in (r("nope"), r("Ping"), r("ping"), r("ping", params={"x": 1}), r("ping", params=[])):
        anonymous.send(orjson.dumps(doc))
    await anonymous.expect_silence(0.3)
    # The protected notifications did not authenticate anybody, and the connection works.
    assert await anonymous.request(r("ping", 1)) == err(
        -32001, 1, message="Authentication required"
    )


async def test_notification_authenticate_does_run(raw_connect):
    """A notification is run even though it is not answered: authenticate as a notification
    binds the session."""
    client = await raw_connect()
    client.send(orjson.dumps(r("authenticate", params={"auth_token": mint_token("viewer")})))
    await client.expect_silence(0.2)
    assert await client.request(r("ping", 2)) == ok("pong", 2)


async def test_max_batch(start_app, raw_connect):
    app = await start_app({"server": {"max_batch": 5}})
    client = await raw_connect(target=app, role="viewer")
    five = [r("ping", i) for i in range(5)]
    got = await client.request(five)
    assert_batch(got, [ok("pong", i) for i in range(5)])
    for six in (
        [r("ping", i) for i in range(6)],
        [r("ping") for _ in range(6)],  # even all notifications
        [1] * 6,
    ):
        got = await client.request(six)
        assert got == err(-32600, None, "5"), got
    await client.expect_silence(0.05)


# ---------------------------------------------------------------------------------------
# Ids echoed exactly


ID_CASES: list[tuple[str, bytes]] = [
    ("2**64", b"18446744073709551616"),
    ("2**64-1", b"18446744073709551615"),
    ("-(2**63)", b"-9223372036854775808"),
    ("-(2**63)-1", b"-9223372036854775809"),
    ("10**30", b"1000000000000000000000000000000"),
    ("-10**40", b"-10000000000000000000000000000000000000000"),
    ("1.5", b"1.5"),
    ("-0.25", b"-0.25"),
    ("1e-7", b"1e-07"),
    ("1.7976931348623157e308", b"1.7976931348623157e308"),
    ("unicode", '"héllo wörld 日本語"'.encode()),
    ("quotes-backslashes", b'"a\\"b\\\\c/d"'),
    ("control-chars", b'"\\n\\t\\r\\b\\f\\u0000\\u0001\\u001f"'),
    ("emoji", '"😀👍🏽"'.encode()),
    ("emoji-escaped-pair", b'"\\ud83d\\ude00"'),
    ("lone-high-surrogate", b'"\\ud800"'),
    ("lone-low-surrogate", b'"x\\udfff y"'),
    ("long-string", b'"' + b"z" * 10000 + b'"'),
    ("json-looking", b'"{\\"id\\":1}"'),
]


@pytest.mark.parametrize(
    "method,expect_error", [("ping", False), ("no_such", True)], ids=["result", "error"]
)
@pytest.mark.parametrize("raw_id", [c[1] for c in ID_CASES], ids=[c[0] for c in ID_CASES])
async def test_id_echoed_exactly(raw_connect, raw_id, method, expect_error):
    client = await raw_connect(role="viewer")
    client.send(b'{"jsonrpc":"2.0","method":"' + method.encode() + b'","id":' + raw_id + b"}")
    raw = await client.recv()
    got = json.loads(raw)  # the standard library: exact big ints, lone surrogates
    expected_id = json.loads(raw_id)
    assert got["id"] == expected_id
    assert type(got["id"]) is type(expected_id)
    if expect_error:
        assert got == err(-32601, expected_id)
    else:
        assert got == ok("pong", expected_id)
