"""What an HTTP handler returns: a complete body, a file (with Range), or a stream."""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import orjson

JSON_TYPE = "application/json"
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(slots=True)
class Request:
    """The parts of an HTTP request a handler looks at; header names are lower case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass(slots=True)
class Response:
    """A body known in full."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class FileResponse:
    """A file from disk, opened when the response is sent; answers Range and If-None-Match.

    `attachment` names the file for `Content-Disposition: attachment`; `cache_control` is sent
    as it is (static files) and an ETag from size and modification time comes with it.
    `follow_symlinks` False opens the file with O_NOFOLLOW: a symlink at `path` is 404.
    """

    path: str
    content_type: str | None = None
    attachment: str | None = None
    cache_control: str = "no-store"
    headers: dict[str, str] = field(default_factory=dict)
    follow_symlinks: bool = True


@dataclass(slots=True)
class StreamResponse:
    """A body produced over time by `chunks` (chunked transfer encoding); it may never end.

    The connection takes one chunk at a time and waits while the client is not reading, so a
    slow reader holds back only its own stream.
    """

    status: int
    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    # Called once when the response is over, however it ended (the client may leave before
    # the first chunk was even asked for, when `chunks` never started).
    on_close: Callable[[], None] | None = None


AnyResponse = Response | FileResponse | StreamResponse


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON body, never cached."""
    all_headers = {"Content-Type": JSON_TYPE, **NO_STORE}
    if headers:
        all_headers.update(headers)
    return Response(status, orjson.dumps(payload), all_headers)


def not_found() -> Response:
    return json_response(404, {"error": "not found"})


def method_not_allowed() -> Response:
    return json_response(405, {"error": "method not allowed"}, {"Allow": "GET, HEAD"})


def over_capacity(retry_after_s: int) -> Response:
    return json_response(
        503,
        {"error": "too many connections", "retry_after": retry_after_s},
        {"Retry-After": str(retry_after_s)},
    )


def bad_request(reason: str) -> Response:
    return json_response(400, {"error": reason})


def internal_error() -> Response:
    return json_response(500, {"error": "internal server error"})


def guess_type(path: str) -> str:
    """The Content-Type for a file name."""
    kind, _ = mimetypes.guess_type(path)
    return kind or "application/octet-stream"


def content_disposition(filename: str) -> str:
    """`attachment; filename="NAME"`; a name that is not plain ASCII also gets RFC 6266's
    `filename*` (UTF-8), with an ASCII stand-in in `filename` (header values are ASCII)."""
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    if quoted.isascii() and quoted.isprintable():
        return f'attachment; filename="{quoted}"'
    fallback = "".join(c if c.isascii() and c.isprintable() else "_" for c in quoted)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def etag_of(st: os.stat_result) -> str:
    """A strong validator from size and modification time."""
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


def http_date(ts: float) -> str:
    """An HTTP date (RFC 9110 IMF-fixdate)."""
    return formatdate(ts, usegmt=True)


def is_regular(st: os.stat_result) -> bool:
    """Whether a stat result is a regular file."""
    return stat.S_ISREG(st.st_mode)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """The one byte range `(first, last)` a `Range` header asks for.

    None: no header, a malformed one or several ranges (answered with the whole file, as
    RFC 9110 allows); "unsatisfiable": a valid range outside the file (416).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not (first_text.isdigit() or first_text == "") or not (
        last_text.isdigit() or last_text == ""
    ):
        return None
    if first_text == "":
        if last_text == "":
            return None
        suffix = int(last_text)  # the last N bytes
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid syntax per RFC 9110 14.1.1: ignored
    if first >= size:
        return "unsatisfiable"
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)
