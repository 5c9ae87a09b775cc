"""Plain HTTP answers on the WebSocket port (PROTOCOL.md section 7), routed before any upgrade."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from picows import WSUpgradeResponse, WSUpgradeResponseWithListener

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
PROMETHEUS_HEADERS = {
    "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
    "Cache-Control": "no-store",
}


def respond(status: int, body: bytes, headers: dict[str, str]) -> WSUpgradeResponseWithListener:
    """A complete HTTP response that picows sends before closing the connection."""
    if status == HTTPStatus.OK:
        response = WSUpgradeResponse.create_ok_response(body, headers)
    else:  # picows builds every non-200 answer through its error constructor (>= 400)
        response = WSUpgradeResponse.create_error_response(HTTPStatus(status), body, headers)
    return WSUpgradeResponseWithListener(response, None)


def respond_json(status: int, payload: Any, extra_headers: dict[str, str] | None = None):
    headers = dict(JSON_HEADERS)
    if extra_headers:
        headers.update(extra_headers)
    return respond(status, orjson.dumps(payload), headers)


def not_found():
    return respond_json(404, {"error": "not found"})


def over_capacity(retry_after_s: int):
    return respond_json(
        503,
        {"error": "too many connections", "retry_after": retry_after_s},
        {"Retry-After": str(retry_after_s)},
    )


def internal_error():
    return respond_json(500, {"error": "internal server error"})
