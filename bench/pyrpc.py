"""A plain-Python JSON-RPC dispatcher: the baseline the compiled `_jsonrpc` is measured against.

It keeps the semantics that the micro benchmarks exercise (envelope checks, unknown method,
role check, batches, notifications, pre-encoded results) and writes the same bytes, but does
it the obvious way: orjson decodes into a dict, `isinstance`-free type checks on that dict,
and one orjson encode of a response dict. No Cython, no precomputed response pieces beyond
what a careful Python author would keep (the constant "jsonrpc" value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
AUTH_ERROR = -32001
PERMISSION_DENIED = -32003
MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid parameters",
    INTERNAL_ERROR: "Internal server error",
    PERMISSION_DENIED: "Insufficient permissions",
}
ROLE_NAMES = {1: "viewer", 2: "operator", 3: "admin"}


class Raw:
    """A result that is JSON already (the Python twin of `PreEncoded`)."""

    __slots__ = ("json",)

    def __init__(self, json_bytes: bytes):
        self.json = json_bytes


class PyRpcError(Exception):
    def __init__(self, code: int, message: str | None = None, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message or MESSAGES[code]
        self.data = data


class PyContext:
    __slots__ = ("client_id", "request_count", "role_level")

    def __init__(self, client_id: str, role_level: int = 0):
        self.client_id = client_id
        self.role_level = role_level
        self.request_count = 0


def _error(code: int, message: str, data: Any, request_id: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": request_id}


class PyDispatcher:
    """`handle(ctx, payload) -> bytes | None`, like the compiled Dispatcher."""

    def __init__(self, methods: dict[str, tuple[Callable[..., Any], int]], max_batch: int = 100):
        self.methods = methods
        self.max_batch = max_batch

    def handle(self, ctx: PyContext, payload: bytes) -> bytes | None:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return orjson.dumps(
                _error(PARSE_ERROR, MESSAGES[PARSE_ERROR], {"reason": f"invalid JSON: {exc}"}, None)
            )
        if type(doc) is dict:
            out = self._one(ctx, doc)
            return None if out is None else self._encode(out)
        if type(doc) is list:
            if not doc:
                return self._encode(
                    _error(
                        INVALID_REQUEST, MESSAGES[INVALID_REQUEST], {"reason": "empty batch"}, None
                    )
                )
            if len(doc) > self.max_batch:
                return self._encode(
                    _error(
                        INVALID_REQUEST,
                        MESSAGES[INVALID_REQUEST],
                        {
                            "reason": f"batch of {len(doc)} requests exceeds the limit of {self.max_batch}"
                        },
                        None,
                    )
                )
            parts = []
            for item in doc:
                if type(item) is dict:
                    out = self._one(ctx, item)
                else:
                    out = _error(
                        INVALID_REQUEST,
                        MESSAGES[INVALID_REQUEST],
                        {"reason": "a request must be a JSON object"},
                        None,
                    )
                if out is not None:
                    parts.append(self._encode(out))
            return b"[" + b",".join(parts) + b"]" if parts else None
        return self._encode(
            _error(
                INVALID_REQUEST,
                MESSAGES[INVALID_REQUEST],
                {"reason": "a request must be a JSON object"},
                None,
            )
        )

    @staticmethod
    def _encode(response: dict[str, Any]) -> bytes:
        result = response.get("result")
        if type(result) is Raw:
            # Splice the pre-encoded JSON in, as a Python author would for a cached list.
            return (
                b'{"jsonrpc":"2.0","result":'
                + result.json
                + b',"id":'
                + orjson.dumps(response["id"])
                + b"}"
            )
        return orjson.dumps(response)

    def _one(self, ctx: PyContext, req: dict[str, Any]) -> dict[str, Any] | None:
        ctx.request_count += 1
        has_id = "id" in req
        request_id = req.get("id")
        if has_id and not (request_id is None or type(request_id) in (str, int, float)):
            return _error(
                INVALID_REQUEST,
                MESSAGES[INVALID_REQUEST],
                {"reason": "id must be a string, a number or null"},
                None,
            )
        if req.get("jsonrpc") != "2.0" or type(req.get("jsonrpc")) is not str:
            return _error(
                INVALID_REQUEST,
                MESSAGES[INVALID_REQUEST],
                {"reason": 'jsonrpc must be exactly "2.0"'},
                request_id,
            )
        method = req.get("method")
        if type(method) is not str or not method:
            return _error(
                INVALID_REQUEST,
                MESSAGES[INVALID_REQUEST],
                {"reason": "method must be a non-empty string"},
                request_id,
            )
        params = req.get("params", {})
        if type(params) not in (dict, list):
            return _error(
                INVALID_REQUEST,
                MESSAGES[INVALID_REQUEST],
                {"reason": "params must be an object or an array"},
                request_id,
            )
        try:
            entry = self.methods.get(method)
            if entry is None:
                raise PyRpcError(
                    METHOD_NOT_FOUND, data={"reason": f"unknown method: {method[:100]}"}
                )
            handler, role_level = entry
            if type(params) is list:
                raise PyRpcError(
                    INVALID_PARAMS,
                    data={
                        "reason": "params must be an object (this method takes named parameters)"
                    },
                )
            if role_level:
                if ctx.role_level == 0:
                    raise PyRpcError(
                        AUTH_ERROR,
                        "Authentication required",
                        {"reason": "call authenticate first, or pass auth_token in params"},
                    )
                if ctx.role_level < role_level:
                    raise PyRpcError(
                        PERMISSION_DENIED,
                        data={
                            "reason": f"{method} needs the {ROLE_NAMES[role_level]} role",
                            "required_role": ROLE_NAMES[role_level],
                            "role": ROLE_NAMES.get(ctx.role_level),
                        },
                    )
            result = handler(ctx, params)
        except PyRpcError as exc:
            return _error(exc.code, exc.message, exc.data, request_id) if has_id else None
        if not has_id:
            return None
        return {"jsonrpc": "2.0", "result": result, "id": request_id}


def encode_notification(method: str, params: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})
