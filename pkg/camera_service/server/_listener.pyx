# cython: language_level=3
"""The per-connection WebSocket listener: frames in, JSON-RPC bytes out (PROTOCOL.md section 1).

picows parses frames in C and calls `on_ws_frame` with a frame whose payload points into its
read buffer; the payload is copied once into a bytes object for the dispatcher and the frame is
never kept beyond the callback.
"""

import logging

from picows.picows cimport WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from camera_service._clock cimport monotonic_now as _monotonic
from camera_service.rpc._jsonrpc cimport CallContext, Dispatcher

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef object _log = logging.getLogger("camera_service.server")

# A client that stopped reading gets this long to take the rest of its buffer and the close
# frame before the socket is aborted.
cdef double SLOW_READER_GRACE = 2.0


cdef bint _is_valid_utf8(const char* data, Py_ssize_t size):
    """ASCII is checked eight bytes at a time; anything else goes to CPython's strict decoder,
    which rejects overlong forms, surrogates and code points above U+10FFFF."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    while i + 8 <= size:
        memcpy(&word, data + i, 8)
        if word & 0x8080808080808080ULL:
            break
        i += 8
    while i < size:
        if <unsigned char>data[i] >= 0x80:
            try:
                PyUnicode_DecodeUTF8(data + i, size - i, "strict")
            except UnicodeDecodeError:
                return False
            return True
        i += 1
    return True


def is_valid_utf8(bytes data):
    """Python entry point of the validator (tests, fuzzing)."""
    return _is_valid_utf8(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef class LatencyHistogram:
    """Response times in fixed buckets: counts only, no per-request allocation."""
    cdef readonly tuple bounds
    cdef long long[64] _counts
    cdef int _n
    cdef readonly long long count
    cdef readonly double total

    def __init__(self, bounds):
        if len(bounds) > 63:
            raise ValueError("at most 63 bucket bounds")
        self.bounds = tuple(sorted(float(b) for b in bounds))
        self._n = len(self.bounds)
        for i in range(64):
            self._counts[i] = 0
        self.count = 0
        self.total = 0.0

    cdef inline void record(self, double seconds) noexcept:
        cdef int i = 0
        while i < self._n and seconds > <double>self.bounds[i]:
            i += 1
        self._counts[i] += 1
        self.count += 1
        self.total += seconds

    def counts(self):
        """Per-bucket counts; the last one is above the highest bound."""
        return [self._counts[i] for i in range(self._n + 1)]


def fan_out(listeners, bytes data, int role_at_least, double now):
    """Write the same notification bytes to every open listener whose session qualifies.

    In C because it runs for every connection on every camera event: no per-connection
    Python call or attribute lookup, just the role and expiry compare and one send.
    Returns how many connections were written to.
    """
    cdef RpcListener listener
    cdef CallContext ctx
    cdef int sent = 0
    for obj in listeners:
        listener = <RpcListener>obj
        ctx = listener.ctx
        if listener._closing or listener._transport is None or ctx.closed:
            continue
        if ctx.role_level < role_at_least or (ctx.expires_at and now >= ctx.expires_at):
            continue  # unauthenticated, too low, or an expired session
        try:
            listener._transport.send(WSMsgType.TEXT, data)
            sent += 1
        except Exception:  # one broken socket must not stop the fan-out
            _log.warning("notification to a connection failed", exc_info=True,
                         extra={"client_id": ctx.client_id})
    return sent


def keepalive_sweep(listeners, double now, double interval, double timeout):
    """Ping the connections idle for `interval` s, drop those whose pong is `timeout` s late.

    One timer for the whole server runs this (instead of a task per connection), so idle
    connections cost no wake-ups between their deadlines. Returns when the next connection
    is due (monotonic seconds), or None when there is nobody to watch.
    """
    cdef RpcListener listener
    cdef double due, next_due = -1.0
    for obj in listeners:
        listener = <RpcListener>obj
        if listener._transport is None or listener._transport.is_disconnected:
            continue
        if listener.ping_sent_at:
            due = listener.ping_sent_at + timeout
            if now >= due:
                _log.info("dropping a connection that did not answer a ping",
                          extra={"client_id": listener.ctx.client_id})
                listener._transport.disconnect(False)
                continue
        else:
            due = listener.last_seen + interval
            if now >= due:
                listener._transport.send_ping()
                listener.ping_sent_at = now
                due = now + timeout
        if next_due < 0 or due < next_due:
            next_due = due
    return None if next_due < 0 else next_due


cdef class RpcListener(WSListener):
    cdef public double last_seen
    cdef public double ping_sent_at
    cdef WSTransport _transport
    cdef Dispatcher _dispatcher
    cdef readonly CallContext ctx
    cdef object _table  # the ConnectionTable: add/remove at connect and disconnect only
    cdef LatencyHistogram _latency
    cdef Py_ssize_t _max_message
    cdef Py_ssize_t _send_buffer_limit
    cdef bytearray _fragments
    cdef bint _closing

    def __init__(self, Dispatcher dispatcher, table, LatencyHistogram latency,
                 Py_ssize_t max_message_bytes, Py_ssize_t max_send_buffer_bytes,
                 CallContext ctx):
        self._dispatcher = dispatcher
        self._table = table
        self._latency = latency
        self._max_message = max_message_bytes
        self._send_buffer_limit = max_send_buffer_bytes
        self._fragments = None
        self._closing = False
        self.ctx = ctx
        ctx.send = self.send_message

    cpdef on_ws_connected(self, WSTransport transport):
        self._transport = transport
        self.last_seen = _monotonic()
        self.ping_sent_at = 0.0
        # Above the high-water mark asyncio calls pause_writing(): the client is not reading.
        transport.underlying_transport.set_write_buffer_limits(
            high=self._send_buffer_limit, low=self._send_buffer_limit // 2)
        self._table.add(self)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.ctx.closed = True
        self._fragments = None
        self._table.remove(self)

    cpdef pause_writing(self):
        if self._closing:
            return
        _log.warning("closing a connection whose client stopped reading", extra={
            "client_id": self.ctx.client_id, "send_buffer_limit": self._send_buffer_limit})
        # The close frame queues behind the unread data; close_with aborts the socket if the
        # client has not taken it within the grace period.
        self.close_with(WSCloseCode.POLICY_VIOLATION, "send buffer overflow: client too slow")

    cpdef resume_writing(self):
        pass

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType msg_type = frame.msg_type
        # Any frame, the pong included, shows the peer is alive (keepalive_sweep).
        cdef double started = _monotonic()
        self.last_seen = started
        self.ping_sent_at = 0.0
        if msg_type == WSMsgType.TEXT:
            if self._fragments is not None:
                self.close_with(WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
                return
            if not frame.fin:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
                return
            if not _is_valid_utf8(frame.payload_ptr, frame.payload_size):
                self.close_with(WSCloseCode.INVALID_TEXT, "invalid UTF-8 in a text message")
                return
            self._dispatch(frame.get_payload_as_bytes(), started)
        elif msg_type == WSMsgType.CONTINUATION:
            self._continue_message(frame)
        elif msg_type == WSMsgType.BINARY:
            self.close_with(WSCloseCode.UNSUPPORTED_DATA, "binary messages are not supported")
        elif msg_type == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    cdef void _continue_message(self, WSFrame frame) except *:
        if self._fragments is None:
            self.close_with(WSCloseCode.PROTOCOL_ERROR, "continuation frame without a message")
            return
        if len(self._fragments) + frame.payload_size > self._max_message:
            self._fragments = None
            self.close_with(WSCloseCode.MESSAGE_TOO_BIG, "message exceeds max_message_bytes")
            return
        self._fragments += frame.get_payload_as_memoryview()
        if not frame.fin:
            return
        cdef bytes payload = bytes(self._fragments)
        self._fragments = None
        cdef double started = _monotonic()
        if not _is_valid_utf8(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload)):
            self.close_with(WSCloseCode.INVALID_TEXT, "invalid UTF-8 in a text message")
            return
        self._dispatch(payload, started)

    cdef void _dispatch(self, bytes payload, double started) except *:
        if self._closing:
            return
        response = self._dispatcher.handle(self.ctx, payload)
        if response is not None:
            self._transport.send(WSMsgType.TEXT, response)
            self._latency.record(_monotonic() - started)
        if self.ctx.close_after_response is not None:
            code, reason = self.ctx.close_after_response
            self.close_with(code, reason)

    cpdef send_message(self, bytes data):
        """Send a response or notification unless the connection is going away."""
        if self._closing or self._transport is None:
            return
        self._transport.send(WSMsgType.TEXT, data)

    cpdef close_with(self, int code, str reason):
        """Send a close frame once and stop answering; the client or a timer ends the TCP side."""
        if self._closing or self._transport is None:
            return
        self._closing = True
        self.ctx.closed = True
        self._transport.send_close(<WSCloseCode>code, reason.encode())
        self._table.loop.call_later(SLOW_READER_GRACE, self._abort)

    def _abort(self):
        if not self._transport.is_disconnected:
            self._transport.disconnect(False)

    @property
    def transport(self):
        return self._transport

    @property
    def closing(self):
        return self._closing
