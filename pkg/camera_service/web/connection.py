"""One HTTP/1.1 connection on the service's port, spoken through h11.

The port server hands a connection here once its request line shows it is not the WebSocket
path, together with the bytes already read. One request is answered per connection
(`Connection: close`), so a response body may take as long as it needs (a multi-GB download, a
live stream that never ends) without holding up anything else: the body is written as the
client reads it (asyncio flow control), and files go out with `sendfile` straight from the
page cache when the transport is a plain socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

from camera_service.web.app import HttpApp
from camera_service.web.responses import (
    AnyResponse,
    FileResponse,
    Request,
    Response,
    StreamResponse,
    bad_request,
    content_disposition,
    etag_of,
    guess_type,
    http_date,
    internal_error,
    is_regular,
    method_not_allowed,
    not_found,
    parse_range,
)

log = logging.getLogger("camera_service.http")

ALLOWED_METHODS = ("GET", "HEAD")
# Largest read per copy when sendfile cannot be used (TLS): big enough for few syscalls,
# small enough that one download never holds the loop for long.
COPY_CHUNK = 256 * 1024
# Upper bound for one sendfile call; the kernel sends what fits in the socket buffer.
SENDFILE_CHUNK = 8 * 1024 * 1024
# Outgoing bytes buffered per connection before the writer waits for the client.
WRITE_HIGH_WATER = 256 * 1024
MAX_HEAD_BYTES = 16 * 1024


class _FileSpan:
    """A part of an open file passed through h11 in place of the bytes it stands for."""

    __slots__ = ("count", "fd", "offset")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd, self.offset, self.count = fd, offset, count

    def __len__(self) -> int:
        return self.count


class HttpConnection(asyncio.Protocol):
    """Reads one request, lets `app` answer it, writes the answer, closes."""

    def __init__(
        self,
        app: HttpApp,
        table: Any,
        handshake_timeout: float,
        refuse_with: Response | None = None,
    ) -> None:
        self._app = app
        self._table = table
        self._handshake_timeout = handshake_timeout
        self._refuse_with = refuse_with
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._request: Request | None = None

    # ---- asyncio protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no asyncio.Transport subclass, so no isinstance check.
        self._transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        self._table.http_open += 1
        self._timer = self._loop.call_later(self._handshake_timeout, self._on_timeout)

    def data_received(self, data: bytes) -> None:
        if self._task is not None:
            return  # one request per connection; anything after it is not read
        self._h11.receive_data(data)
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            self._start(self._reject(exc))
            return
        if isinstance(event, h11.Request):
            self._start(self._serve(event))
        elif isinstance(event, h11.ConnectionClosed):
            self._close()

    def eof_received(self) -> bool | None:
        if self._task is None:
            self._close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._table.http_open -= 1
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer()

    # ---- request handling --------------------------------------------------------------------

    def _on_timeout(self) -> None:
        self._timer = None
        if self._task is None and self._transport is not None:
            log.info("dropping an HTTP connection that sent no complete request in time")
            self._transport.abort()

    def _start(self, coro: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._task = self._loop.create_task(coro)

    async def _reject(self, exc: h11.RemoteProtocolError) -> None:
        try:
            await self._send(bad_request("malformed HTTP request"), head_only=False)
        finally:
            self._close()

    async def _serve(self, event: h11.Request) -> None:
        try:
            request = self._request = _request_of(event)
            head_only = request.method == "HEAD"
            response = await self._answer(request)
            await self._send(response, head_only)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.error("HTTP response failed", exc_info=True)
        finally:
            self._close()

    async def _answer(self, request: Request) -> AnyResponse:
        if self._refuse_with is not None:
            return self._refuse_with
        if request.method not in ALLOWED_METHODS:
            return method_not_allowed()
        try:
            return await self._app.respond(request)
        except Exception:
            log.error("HTTP handler for %s failed", request.path, exc_info=True)
            return internal_error()

    # ---- writing -----------------------------------------------------------------------------

    async def _send(self, response: AnyResponse, head_only: bool) -> None:
        if isinstance(response, Response):
            await self._send_bytes(response, head_only)
        elif isinstance(response, FileResponse):
            await self._send_file(response, head_only)
        else:
            await self._send_stream(response, head_only)

    def _head(self, status: int, headers: dict[str, str], length: int | None) -> None:
        items = [(name, value) for name, value in headers.items()]
        if length is not None:
            items.append(("Content-Length", str(length)))
        items.append(("Connection", "close"))
        reason = HTTPStatus(status).phrase.encode()
        self._write(self._h11.send(h11.Response(status_code=status, headers=items, reason=reason)))

    async def _send_bytes(self, response: Response, head_only: bool) -> None:
        self._head(response.status, response.headers, len(response.body))
        if response.body and not head_only:
            self._write(self._h11.send(h11.Data(data=response.body)))
        self._write(self._h11.send(h11.EndOfMessage()))

    async def _send_stream(self, response: StreamResponse, head_only: bool) -> None:
        chunks = response.chunks
        try:
            self._head(response.status, response.headers, None)
            if not head_only:
                async for chunk in chunks:
                    if self._closed:
                        return
                    if chunk:
                        self._write(self._h11.send(h11.Data(data=chunk)))
                        await self._drain()
            self._write(self._h11.send(h11.EndOfMessage()))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if response.on_close is not None:
                response.on_close()

    async def _send_file(self, response: FileResponse, head_only: bool) -> None:
        # O_NONBLOCK: a FIFO swapped in for the file must not block the open (it has no effect
        # on reads of a regular file). O_NOFOLLOW: a symlink in the file's place fails (ELOOP).
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
        if not response.follow_symlinks:
            flags |= os.O_NOFOLLOW
        try:
            fd = os.open(response.path, flags)
        except OSError:
            await self._send_bytes(not_found(), head_only)
            return
        try:
            st = os.fstat(fd)
            if not is_regular(st):
                await self._send_bytes(not_found(), head_only)
                return
            await self._send_open_file(fd, st, response, head_only)
        finally:
            os.close(fd)

    async def _send_open_file(
        self, fd: int, st: os.stat_result, response: FileResponse, head_only: bool
    ) -> None:
        size = st.st_size
        etag = etag_of(st)
        headers = {
            "Content-Type": response.content_type or guess_type(response.path),
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Last-Modified": http_date(st.st_mtime),
            "Cache-Control": response.cache_control,
            **response.headers,
        }
        if response.attachment is not None:
            headers["Content-Disposition"] = content_disposition(response.attachment)
        request_headers = self._request.headers if self._request is not None else {}
        if etag in _etags(request_headers.get("if-none-match")):
            del headers["Content-Type"]
            self._head(304, headers, None)
            self._write(self._h11.send(h11.EndOfMessage()))
            return
        wanted = parse_range(request_headers.get("range"), size)
        if wanted == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            await self._send_bytes(Response(416, b"", headers), head_only)
            return
        status, offset, count = 200, 0, size
        if isinstance(wanted, tuple):
            first, last = wanted
            status, offset, count = 206, first, last - first + 1
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        self._head(status, headers, count)
        if not head_only and count:
            pieces = self._h11.send_with_data_passthrough(
                h11.Data(data=_FileSpan(fd, offset, count))  # type: ignore[arg-type]
            )
            for piece in pieces or ():
                if isinstance(piece, _FileSpan):
                    await self._write_file(piece)
                else:
                    self._write(piece)
        self._write(self._h11.send(h11.EndOfMessage()))

    async def _write_file(self, span: _FileSpan) -> None:
        transport = self._transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        zero_copy = (
            sock is not None
            and transport.get_extra_info("sslcontext") is None
            and transport.get_write_buffer_size() == 0
        )
        if zero_copy:
            await self._sendfile(sock.fileno(), span)
        else:
            await self._copy_file(span)

    async def _sendfile(self, out_fd: int, span: _FileSpan) -> None:
        """Kernel-to-socket copy. The transport's own buffer is empty and nothing else writes
        to this connection, so writing to its socket directly keeps the byte order."""
        offset, remaining = span.offset, span.count
        writable_fd = -1
        try:
            while remaining > 0:
                if self._closed:
                    raise ConnectionError("client went away")
                try:
                    sent = os.sendfile(out_fd, span.fd, offset, min(remaining, SENDFILE_CHUNK))
                except BlockingIOError:
                    if writable_fd < 0:
                        # A second fd for the same socket: the transport owns the first one's
                        # registration with the event loop.
                        writable_fd = os.dup(out_fd)
                    await self._socket_writable(writable_fd)
                    continue
                except OSError as exc:
                    if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                        raise ConnectionError(str(exc)) from None
                    raise
                if sent == 0:
                    raise ConnectionError("file shrank while being sent")
                offset += sent
                remaining -= sent
                await asyncio.sleep(0)  # a fast reader must not keep the loop to itself
        finally:
            if writable_fd >= 0:
                os.close(writable_fd)

    def _socket_writable(self, fd: int) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self._loop.create_future()

        def ready() -> None:
            self._loop.remove_writer(fd)
            if not waiter.done():
                waiter.set_result(None)

        self._loop.add_writer(fd, ready)
        waiter.add_done_callback(lambda _: self._loop.remove_writer(fd))
        return waiter

    async def _copy_file(self, span: _FileSpan) -> None:
        offset, remaining = span.offset, span.count
        while remaining > 0:
            if self._closed:
                raise ConnectionError("client went away")
            data = os.pread(span.fd, min(remaining, COPY_CHUNK), offset)
            if not data:
                raise ConnectionError("file shrank while being sent")
            self._write(data)
            offset += len(data)
            remaining -= len(data)
            await self._drain()

    def _write(self, data: bytes | None) -> None:
        if data and not self._closed and self._transport is not None:
            self._transport.write(data)

    async def _drain(self) -> None:
        if self._closed:
            raise ConnectionError("client went away")
        if self._paused:
            waiter = self._drain_waiter = self._loop.create_future()
            await waiter
            if self._closed:
                raise ConnectionError("client went away")

    def _wake_writer(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


def _request_of(event: h11.Request) -> Request:
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
    return Request(
        method=event.method.decode("latin-1"),
        path=unquote(parts.path),
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
    )


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
