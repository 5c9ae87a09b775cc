# cython: language_level=3
"""JSON-RPC 2.0 envelope, error objects and the dispatch table (PROTOCOL.md sections 2-3).

The listener hands every complete text message to `Dispatcher.handle`, which returns the bytes
to send (or None: a notification, or an async handler that sends when it is done). Everything
that does not change per request is encoded once at import or start-up: the envelope pieces,
the constant error responses and, through `PreEncoded`, handler results such as "pong".
"""

import asyncio
import inspect
import json
import logging

import orjson

from camera_service.log import client_id_var, correlation_id_var
from camera_service.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RATE_LIMITED,
    MESSAGES,
    RpcError,
)

from camera_service._clock cimport monotonic_now as _monotonic, realtime_now as _realtime
from camera_service.auth._rate_limit cimport TokenBucket
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp, memcpy

cdef object _loads = orjson.loads
cdef object _dumps = orjson.dumps
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef object _log = logging.getLogger("camera_service.rpc")

cdef bytes _RESULT_HEAD = b'{"jsonrpc":"2.0","result":'
cdef bytes _ERROR_HEAD = b'{"jsonrpc":"2.0","error":'
cdef bytes _ID_SEP = b',"id":'
cdef bytes _TAIL = b'}'
cdef bytes _NULL = b'null'


def monotonic():
    """The clock the dispatcher and the rate limiter use (CLOCK_MONOTONIC, seconds)."""
    return _monotonic()


cdef bytes _join5(bytes a, bytes b, bytes c, bytes d, bytes e):
    # One allocation for the whole response instead of four intermediate bytes objects.
    cdef Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b)
    cdef Py_ssize_t lc = PyBytes_GET_SIZE(c), ld = PyBytes_GET_SIZE(d)
    cdef Py_ssize_t le = PyBytes_GET_SIZE(e)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, la + lb + lc + ld + le)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(a), la)
    p += la
    memcpy(p, PyBytes_AS_STRING(b), lb)
    p += lb
    memcpy(p, PyBytes_AS_STRING(c), lc)
    p += lc
    memcpy(p, PyBytes_AS_STRING(d), ld)
    p += ld
    memcpy(p, PyBytes_AS_STRING(e), le)
    return out


cdef class PreEncoded:
    """A handler result that is already JSON, sent as it is (e.g. the cached camera list)."""
    cdef readonly bytes json

    def __init__(self, bytes json_bytes):
        self.json = json_bytes

    def __repr__(self):
        return f"PreEncoded({self.json!r})"


cdef class MethodEntry:
    """One row of the dispatch table."""

    def __init__(self, str name, handler, int role_level, bint is_async, bint binds_context):
        self.name = name
        self.name_utf8 = name.encode()
        # A PreEncoded "handler" is the answer itself (ping): nothing to call.
        self.constant = handler if type(handler) is PreEncoded else None
        self.handler = handler
        self.role_level = role_level
        self.is_async = is_async
        self.binds_context = binds_context
        self.calls = 0
        self.errors = 0


cdef class CallContext:
    """Per-connection state that the dispatcher and the handlers see."""

    def __init__(self, str client_id, send=None, bucket=None):
        self.client_id = client_id
        self.session = None
        self.role_level = 0
        self.expires_at = 0.0
        self.bucket = bucket
        self.auth_failures = 0
        self.send = send
        self.request_count = 0
        self.error_count = 0
        self.closed = False
        # (code, reason): the listener closes the connection right after the current response
        # is written, before it reads another message.
        self.close_after_response = None

    def set_session(self, session, int role_level, double expires_at):
        """Bind a session; `expires_at` is epoch seconds with the leeway added, 0 = never."""
        self.session = session
        self.role_level = role_level
        self.expires_at = expires_at

    def clear_session(self):
        self.session = None
        self.role_level = 0
        self.expires_at = 0.0

    @property
    def correlation_id(self):
        # Unique per request without any per-request allocation until somebody asks for it.
        return f"{self.client_id}-{self.request_count}"


cdef bytes _encode_id(object request_id):
    if request_id is None:
        return _NULL
    if type(request_id) is _BigInt:
        return (<str>request_id).encode()
    try:
        return _dumps(request_id)
    except TypeError:
        # Integers beyond 64 bits: orjson refuses them, the standard library is exact.
        return json.dumps(request_id).encode()


cdef bytes _encode_error(int code, str message, object data, bytes id_json):
    cdef dict error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    try:
        body = _dumps(error)
    except TypeError:
        body = json.dumps(error, ensure_ascii=True, default=str).encode()
    return _join5(_ERROR_HEAD, body, _ID_SEP, id_json, _TAIL)


cdef bytes _error_from(exc, bytes id_json):
    return _encode_error(exc.code, exc.message, exc.data, id_json)


cdef bytes _encode_result(object result, bytes id_json):
    if type(result) is PreEncoded:
        body = (<PreEncoded>result).json
    else:
        body = _dumps(result)
    return _join5(_RESULT_HEAD, body, _ID_SEP, id_json, _TAIL)


def encode_notification(str method, params):
    """The bytes of a server notification; encode once, send the same bytes to everybody."""
    return _dumps({"jsonrpc": "2.0", "method": method, "params": params})


cdef bytes INVALID_REQUEST_NULL = _encode_error(
    INVALID_REQUEST, MESSAGES[INVALID_REQUEST],
    {"reason": "a request must be a JSON object"}, _NULL)
cdef bytes EMPTY_BATCH = _encode_error(
    INVALID_REQUEST, MESSAGES[INVALID_REQUEST], {"reason": "empty batch"}, _NULL)


cdef object _reject_constant(str name):
    raise ValueError(f"{name} is not valid JSON")


cdef object _parse_float_strict(str text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text}")
    return value


class _BigInt(str):
    """An integer too long for int() (Python refuses more than 4300 digits): kept as its
    JSON text so that an id made of it is echoed exactly."""


cdef object _parse_int(str text):
    return int(text) if len(text) <= 4000 else _BigInt(text)


cdef object _decode_exact(bytes payload):
    """Standard-library decode, used only where orjson cannot be exact.

    orjson turns integers beyond 64 bits into floats and refuses lone surrogate escapes; both
    are valid JSON and a client may use them in an `id`, which must be echoed exactly. The
    payload is decoded as UTF-8 first (given bytes, json.loads would also accept UTF-16/32);
    a leading byte order mark is ignored, as RFC 8259 section 8.1 allows.
    """
    text = payload.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    return json.loads(text, parse_constant=_reject_constant,
                      parse_float=_parse_float_strict, parse_int=_parse_int)


class _ParseFailure(Exception):
    pass


cdef object _decode(bytes payload):
    try:
        return _loads(payload)
    except _JSONDecodeError as exc:
        reason = str(exc)
        if "recursion" in reason or "depth" in reason:
            raise _ParseFailure("JSON nested too deeply")
        try:
            return _decode_exact(payload)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise _ParseFailure(f"invalid JSON: {reason}")


cdef inline bint _is_valid_id(object value):
    cdef type t = type(value)
    return t is str or t is int or t is float or value is None or t is _BigInt


cdef object _NOT_SIMPLE = object()
cdef dict _NAMED_PARAMS = {
    "reason": "params must be an object (this method takes named parameters)"}


cdef inline Py_ssize_t _skip_ws(const char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    while i < n and (p[i] == b' ' or p[i] == b'\n' or p[i] == b'\r' or p[i] == b'\t'):
        i += 1
    return i


cdef inline Py_ssize_t _plain_string_end(const char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Index of the closing quote of a string starting at i (after its opening quote), or -1
    if it has an escape or a control character (those go to the general path)."""
    cdef unsigned char c
    while i < n:
        c = <unsigned char>p[i]
        if c == b'"':
            return i
        if c == b'\\' or c < 0x20:
            return -1
        i += 1
    return -1


cdef inline Py_ssize_t _simple_id_end(const char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """End of an id at i that can be echoed byte for byte: null, a plain string, or an
    integer in JSON's grammar of at most 18 digits (exact in every client). -1 otherwise."""
    cdef Py_ssize_t digits, end
    if p[i] == b'"':
        end = _plain_string_end(p, i + 1, n)
        return -1 if end < 0 else end + 1
    if i + 4 <= n and memcmp(p + i, b"null", 4) == 0:
        return i + 4
    if p[i] == b'-':
        i += 1
    digits = i
    while i < n and b'0' <= p[i] <= b'9':
        i += 1
    digits = i - digits
    if digits == 0 or digits > 18:
        return -1
    if digits > 1 and p[i - digits] == b'0':
        return -1  # leading zero: not JSON
    if i < n and (p[i] == b'.' or p[i] == b'e' or p[i] == b'E'):
        return -1  # a float: the general path normalises it
    return i


cdef class RequestStats:
    """Requests and errors counted by the dispatcher, read by the metrics."""

    def __init__(self):
        self.total_requests = 0
        self.total_errors = 0
        self._error_counts = {}

    @property
    def error_counts(self):
        """Error responses by code."""
        return dict(self._error_counts)


class _Deferred:
    """An async handler call inside a batch: awaited together, then sent as one array."""
    __slots__ = ("coro",)

    def __init__(self, coro):
        self.coro = coro


cdef class Dispatcher:
    """Validates the envelope, checks session and role, and runs the handler."""

    def __init__(self, methods, int max_batch=100, authorizer=None, RequestStats stats=None):
        self._methods = {}
        for entry in methods:
            self._methods[entry.name] = entry
        self._entry_list = list(self._methods.values())
        self.max_batch = max_batch
        self.authorizer = authorizer
        self.stats = stats if stats is not None else RequestStats()
        self._tasks = set()
        self._exact_payload = None
        self._exact_doc = None

    @property
    def methods(self):
        return dict(self._methods)

    @property
    def total_requests(self):
        return self.stats.total_requests

    @property
    def total_errors(self):
        return self.stats.total_errors

    @property
    def error_counts(self):
        return self.stats.error_counts

    @property
    def pending_tasks(self):
        return len(self._tasks)

    async def drain(self, double timeout):
        """Wait up to `timeout` s for in-flight async handlers (graceful shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    cpdef object handle(self, CallContext ctx, bytes payload):
        """Bytes to send back for one text message, or None."""
        out = self._fast_path(ctx, payload)
        if out is not _NOT_SIMPLE:
            return out
        try:
            return self._handle_general(ctx, payload)
        finally:
            self._exact_payload = None
            self._exact_doc = None

    cdef object _handle_general(self, CallContext ctx, bytes payload):
        try:
            doc = _decode(payload)
        except _ParseFailure as exc:
            self._count_request(ctx)
            self._count_error(PARSE_ERROR, ctx)
            return _encode_error(PARSE_ERROR, MESSAGES[PARSE_ERROR], {"reason": str(exc)}, _NULL)
        cdef type t = type(doc)
        if t is dict:
            out = self._handle_one(ctx, <dict>doc, payload, -1)
            if type(out) is _Deferred:
                self._spawn(self._finish_single(ctx, out.coro))
                return None
            return out
        if t is list:
            return self._handle_batch(ctx, <list>doc, payload)
        self._count_request(ctx)
        self._count_error(INVALID_REQUEST, ctx)
        return INVALID_REQUEST_NULL

    cdef object _handle_batch(self, CallContext ctx, list items, bytes payload):
        cdef Py_ssize_t n = len(items), i
        if n == 0:
            self._count_request(ctx)
            self._count_error(INVALID_REQUEST, ctx)
            return EMPTY_BATCH
        if n > self.max_batch:
            self._count_request(ctx)
            self._count_error(INVALID_REQUEST, ctx)
            return _encode_error(
                INVALID_REQUEST, MESSAGES[INVALID_REQUEST],
                {"reason": f"batch of {n} requests exceeds the limit of {self.max_batch}"}, _NULL)
        cdef list parts = []
        cdef bint deferred = False
        for i in range(n):
            item = items[i]
            if type(item) is dict:
                out = self._handle_one(ctx, <dict>item, payload, i)
            else:
                self._count_request(ctx)
                self._count_error(INVALID_REQUEST, ctx)
                out = INVALID_REQUEST_NULL
            if out is not None:
                if type(out) is _Deferred:
                    deferred = True
                parts.append(out)
        if deferred:
            self._spawn(self._finish_batch(ctx, parts))
            return None
        if not parts:
            return None
        return b"[" + b",".join(parts) + b"]"

    cdef object _handle_one(self, CallContext ctx, dict req, bytes payload, Py_ssize_t index):
        self._count_request(ctx)
        cdef bint has_id = "id" in req
        request_id = req.get("id")
        cdef bint id_ok = _is_valid_id(request_id)
        cdef bytes id_json
        if has_id and id_ok:
            if type(request_id) is float:
                request_id = self._exact_id(payload, index, request_id)
            id_json = _encode_id(request_id)
        else:
            id_json = _NULL

        # Envelope errors are answered even without an id: such an object is not a valid
        # notification (JSON-RPC 2.0 section 5, examples "invalid Request object").
        if has_id and not id_ok:
            return self._envelope_error(ctx, "id must be a string, a number or null", _NULL)
        version = req.get("jsonrpc")
        if type(version) is not str or version != "2.0":
            return self._envelope_error(ctx, 'jsonrpc must be exactly "2.0"', id_json)
        method = req.get("method")
        if type(method) is not str or not method:
            return self._envelope_error(ctx, "method must be a non-empty string", id_json)
        # A fresh dict when absent: a handler may keep or change what it is given.
        params = req.get("params")
        if params is None and "params" not in req:
            params = {}
        cdef type ptype = type(params)
        if ptype is not dict and ptype is not list:
            return self._envelope_error(ctx, "params must be an object or an array", id_json)

        entry = None
        try:
            self._admit(ctx)
            entry = self._methods.get(method)
            # The two commonest client mistakes are answered without raising: an exception
            # costs more than the whole successful request.
            if entry is None:
                self._count_error(METHOD_NOT_FOUND, ctx)
                if not has_id:
                    return None
                return _encode_error(METHOD_NOT_FOUND, MESSAGES[METHOD_NOT_FOUND],
                                     {"reason": "unknown method: " + method[:100]}, id_json)
            (<MethodEntry>entry).calls += 1
            if ptype is list:
                self._count_error(INVALID_PARAMS, ctx)
                (<MethodEntry>entry).errors += 1
                if not has_id:
                    return None
                return _encode_error(
                    INVALID_PARAMS, MESSAGES[INVALID_PARAMS], _NAMED_PARAMS, id_json)
            if (<MethodEntry>entry).role_level:
                self._authorize(ctx, <MethodEntry>entry, <dict>params)
        except RpcError as exc:
            self._count_error(exc.code, ctx)
            if entry is not None:
                (<MethodEntry>entry).errors += 1
            return _error_from(exc, id_json) if has_id else None
        except Exception:
            if entry is not None:
                (<MethodEntry>entry).errors += 1
            return self._internal_error(ctx, method, id_json, has_id, ctx.correlation_id)
        return self._invoke(ctx, <MethodEntry>entry, params, id_json, has_id)

    cdef object _invoke(self, CallContext ctx, MethodEntry entry, object params, bytes id_json,
                        bint has_id):
        """Run an admitted, authorized call; the response bytes, None, or a _Deferred."""
        if entry.is_async:
            return _Deferred(self._call_async(ctx, entry, params, id_json, has_id))
        if entry.constant is not None:
            return _encode_result(entry.constant, id_json) if has_id else None
        try:
            if entry.binds_context:
                result = self._call_bound(ctx, entry, params)
            else:
                result = entry.handler(ctx, params)
            if not has_id:
                return None
            return _encode_result(result, id_json)
        except RpcError as exc:
            self._count_error(exc.code, ctx)
            entry.errors += 1
            return _error_from(exc, id_json) if has_id else None
        except Exception:
            entry.errors += 1
            return self._internal_error(ctx, entry.name, id_json, has_id, ctx.correlation_id)

    cdef object _internal_error(self, CallContext ctx, str method, bytes id_json, bint has_id,
                                str correlation_id):
        """-32603 for an unexpected exception being handled; details go to the log only."""
        self._count_error(INTERNAL_ERROR, ctx)
        _log.error("internal error in %s", method, exc_info=True, extra={
            "correlation_id": correlation_id, "client_id": ctx.client_id})
        if not has_id:
            return None
        return _encode_error(INTERNAL_ERROR, MESSAGES[INTERNAL_ERROR], {
            "reason": "the server failed to process this request",
            "correlation_id": correlation_id}, id_json)

    cdef object _fast_path(self, CallContext ctx, bytes payload):
        """The common request, answered without building the envelope dict.

        Handles exactly `{"jsonrpc":"2.0","method":M,"id":ID}` in any key order, with `id`
        optional, ID an integer of at most 18 digits, null or a string without escapes, and M a
        string without escapes naming a known sync method the session may call. Anything else,
        and any failure, returns _NOT_SIMPLE before a counter moves, so the general path
        answers it with the same bytes it would have produced anyway.
        """
        cdef const char* p = PyBytes_AS_STRING(payload)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        cdef Py_ssize_t i, key_start, key_len, method_start = -1, method_len = 0
        cdef Py_ssize_t id_start = -1, id_len = 0
        cdef bint seen_version = False
        cdef char c
        i = _skip_ws(p, 0, n)
        if i >= n or p[i] != b'{':
            return _NOT_SIMPLE
        i += 1
        while True:
            i = _skip_ws(p, i, n)
            if i >= n or p[i] != b'"':
                return _NOT_SIMPLE
            key_start = i + 1
            key_len = _plain_string_end(p, key_start, n) - key_start
            if key_len < 0:
                return _NOT_SIMPLE
            i = _skip_ws(p, key_start + key_len + 1, n)
            if i >= n or p[i] != b':':
                return _NOT_SIMPLE
            i = _skip_ws(p, i + 1, n)
            if i >= n:
                return _NOT_SIMPLE
            if key_len == 7 and memcmp(p + key_start, b"jsonrpc", 7) == 0 and not seen_version:
                if i + 5 > n or memcmp(p + i, b'"2.0"', 5) != 0:
                    return _NOT_SIMPLE
                seen_version = True
                i += 5
            elif key_len == 6 and memcmp(p + key_start, b"method", 6) == 0 and method_start < 0:
                if p[i] != b'"':
                    return _NOT_SIMPLE
                method_start = i + 1
                method_len = _plain_string_end(p, method_start, n) - method_start
                if method_len <= 0:
                    return _NOT_SIMPLE
                i = method_start + method_len + 1
            elif key_len == 2 and memcmp(p + key_start, b"id", 2) == 0 and id_start < 0:
                id_start = i
                id_len = _simple_id_end(p, i, n) - i
                if id_len <= 0:
                    return _NOT_SIMPLE
                i += id_len
            else:
                return _NOT_SIMPLE  # params, unknown keys, duplicates: general path
            i = _skip_ws(p, i, n)
            if i >= n:
                return _NOT_SIMPLE
            c = p[i]
            i += 1
            if c == b'}':
                break
            if c != b',':
                return _NOT_SIMPLE
        if _skip_ws(p, i, n) != n or not seen_version or method_start < 0:
            return _NOT_SIMPLE

        entry = self._find_entry(p + method_start, method_len)
        if entry is None or (<MethodEntry>entry).is_async:
            return _NOT_SIMPLE
        if (<MethodEntry>entry).role_level:
            if ctx.role_level < (<MethodEntry>entry).role_level:
                return _NOT_SIMPLE
            if ctx.expires_at and _realtime() >= ctx.expires_at:
                return _NOT_SIMPLE
        bucket = ctx.bucket
        if bucket is not None:
            if type(bucket) is TokenBucket:
                if (<TokenBucket>bucket).take(_monotonic()):
                    return _NOT_SIMPLE  # refused: the general path asks again and answers
            else:
                return _NOT_SIMPLE  # some other limiter: the general path calls it
        self._count_request(ctx)
        (<MethodEntry>entry).calls += 1
        cdef bint has_id = id_start >= 0
        cdef bytes id_json = PyBytes_FromStringAndSize(p + id_start, id_len) if has_id else _NULL
        if (<MethodEntry>entry).constant is not None:  # no params to build
            return _encode_result((<MethodEntry>entry).constant, id_json) if has_id else None
        return self._invoke(ctx, <MethodEntry>entry, {}, id_json, has_id)

    cdef object _find_entry(self, const char* name, Py_ssize_t size):
        # A handful of methods: comparing lengths and bytes beats building a str to hash.
        cdef MethodEntry entry
        cdef bytes encoded
        for entry in self._entry_list:
            encoded = entry.name_utf8
            if PyBytes_GET_SIZE(encoded) == size and memcmp(
                    PyBytes_AS_STRING(encoded), name, size) == 0:
                return entry
        return None

    cdef object _exact_id(self, bytes payload, Py_ssize_t index, object fallback):
        # A float id may be an integer beyond 64 bits that orjson rounded: re-read it exactly.
        # The exact decode is done at most once per message, however many items need it.
        if self._exact_payload is not payload:
            self._exact_payload = payload
            try:
                self._exact_doc = _decode_exact(payload)
            except Exception:
                self._exact_doc = None
        doc = self._exact_doc
        try:
            value = doc[index]["id"] if index >= 0 else doc["id"]
        except Exception:
            return fallback
        return value if _is_valid_id(value) else fallback

    cdef object _envelope_error(self, CallContext ctx, str reason, bytes id_json):
        self._count_error(INVALID_REQUEST, ctx)
        return _encode_error(
            INVALID_REQUEST, MESSAGES[INVALID_REQUEST], {"reason": reason}, id_json)

    cdef void _count_request(self, CallContext ctx):
        ctx.request_count += 1
        self.stats.total_requests += 1

    cdef void _count_error(self, int code, CallContext ctx):
        self.stats.total_errors += 1
        ctx.error_count += 1
        cdef dict counts = self.stats._error_counts
        counts[code] = counts.get(code, 0) + 1

    cdef void _admit(self, CallContext ctx) except *:
        bucket = ctx.bucket
        if bucket is None:
            return
        if type(bucket) is TokenBucket:
            retry_after = (<TokenBucket>bucket).take(_monotonic())
        else:
            retry_after = bucket.try_take(_monotonic())
        if retry_after:
            raise RpcError(RATE_LIMITED, data={
                "reason": "too many requests on this connection",
                "retry_after": max(round(retry_after, 3), 0.001)})

    cdef void _authorize(self, CallContext ctx, MethodEntry entry, dict params) except *:
        # The session rules (per-request tokens, expiry, role) live in auth/gate.py; the fast
        # path only reads the level and expiry they store on the context.
        self.authorizer.authorize(ctx, entry.role_level, entry.name, params)

    cdef object _call_bound(self, CallContext ctx, MethodEntry entry, object params):
        cid_token = correlation_id_var.set(ctx.correlation_id)
        client_token = client_id_var.set(ctx.client_id)
        try:
            return entry.handler(ctx, params)
        finally:
            client_id_var.reset(client_token)
            correlation_id_var.reset(cid_token)

    async def _call_async(self, CallContext ctx, MethodEntry entry, params, bytes id_json,
                          bint has_id):
        """Run an async handler; returns the response bytes (None for a notification)."""
        # Kept: later requests on this connection move ctx.correlation_id on while this awaits.
        correlation_id = ctx.correlation_id
        correlation_id_var.set(correlation_id)  # the task has its own context copy
        client_id_var.set(ctx.client_id)
        try:
            result = await entry.handler(ctx, params)
            return _encode_result(result, id_json) if has_id else None
        except RpcError as exc:
            self._count_error(exc.code, ctx)
            entry.errors += 1
            return _error_from(exc, id_json) if has_id else None
        except asyncio.CancelledError:
            raise
        except Exception:
            entry.errors += 1
            return self._internal_error(ctx, entry.name, id_json, has_id, correlation_id)

    async def _finish_single(self, CallContext ctx, coro):
        out = await coro
        if out is not None and not ctx.closed:
            ctx.send(out)

    async def _finish_batch(self, CallContext ctx, list parts):
        cdef list done = []
        for part in parts:
            if type(part) is _Deferred:
                part = await part.coro
                if part is None:
                    continue
            done.append(part)
        if done and not ctx.closed:
            ctx.send(b"[" + b",".join(done) + b"]")

    cdef void _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def make_entry(str name, handler, int role_level, bint binds_context=True):
    """A dispatch-table row; async-ness is read from the handler itself. `handler` may also
    be a PreEncoded constant result."""
    return MethodEntry(name, handler, role_level,
                       inspect.iscoroutinefunction(handler), binds_context)
