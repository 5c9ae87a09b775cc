"""MQTT commands (PROTOCOL 12): `P/N/cameras/C/command` payloads run the same handlers as
the JSON-RPC methods, so validation and error codes are the same by construction.

A payload is `{"action": ..., "params": {...}, "id": any}`; the answer is `{"id", "result"}`
or `{"id", "error": {"code", "message", "data"}}` with the codes of PROTOCOL 3. Anything a
publisher sends is answered (or, with commands off, ignored): a bad payload is an error
answer, never an exception out of the bridge.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import orjson

from camera_service.log import bind_correlation_id
from camera_service.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MESSAGES,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RATE_LIMITED,
    RpcError,
)

log = logging.getLogger(__name__)

# action -> JSON-RPC method
ACTIONS = {
    "snapshot": "take_snapshot",
    "start_recording": "start_recording",
    "stop_recording": "stop_recording",
}

HandlerLookup = Callable[[str], Callable[..., Any] | None]


class CommandContext:
    """What a handler sees as `ctx` for an MQTT command: no WebSocket session (the broker's
    ACLs decided who may publish), a correlation id for the log."""

    client_id = "mqtt"
    session = None

    def __init__(self, correlation_id: str) -> None:
        self.correlation_id = correlation_id


def error(code: int, reason: str) -> RpcError:
    return RpcError(code, data={"reason": reason})


def decode(payload: bytes) -> dict[str, Any]:
    """The command object; -32700 / -32600 when the payload is not a JSON object."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise error(PARSE_ERROR, "the command payload is not valid JSON") from None
    if not isinstance(message, dict):
        raise error(INVALID_REQUEST, "a command is a JSON object with action, params and id")
    return message


def method_and_params(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The JSON-RPC method and params of a decoded command; -32600 / -32601 / -32602."""
    action = message.get("action")
    if not isinstance(action, str) or not action:
        raise error(INVALID_REQUEST, "action is required: one of " + ", ".join(ACTIONS))
    if action not in ACTIONS:
        raise error(METHOD_NOT_FOUND, "unknown action; one of " + ", ".join(ACTIONS))
    params = message.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise error(INVALID_PARAMS, "params must be an object")
    return ACTIONS[action], params


def error_object(exc: RpcError) -> dict[str, Any]:
    out: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        out["data"] = exc.data
    return out


async def run(lookup: HandlerLookup, camera: str, payload: bytes) -> bytes:
    """The answer (JSON bytes) to one command for `camera` (`cameraN` from the topic)."""
    command_id: Any = None
    with bind_correlation_id() as cid:
        try:
            message = decode(payload)
            command_id = message.get("id")
            method, params = method_and_params(message)
            handler = lookup(method)
            if handler is None:
                raise error(METHOD_NOT_FOUND, f"{method} is not available in this build")
            # The topic names the camera; a `device` in params cannot point elsewhere.
            params = {**params, "device": camera}
            result = handler(CommandContext(cid), params)
            if inspect.isawaitable(result):
                result = await result
            answer: dict[str, Any] = {"id": command_id, "result": result}
        except RpcError as exc:
            answer = {"id": command_id, "error": error_object(exc)}
        except Exception:
            log.exception("MQTT command for %s failed", camera)
            answer = {
                "id": command_id,
                "error": {"code": INTERNAL_ERROR, "message": MESSAGES[INTERNAL_ERROR]},
            }
        try:
            return orjson.dumps(answer)
        except TypeError:  # an id that orjson cannot encode cannot come from JSON; be safe
            answer["id"] = None
            return orjson.dumps(answer)


def busy_answer(payload: bytes) -> bytes:
    """-32002 for a command that arrives while too many run: try again in a second."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        message = None
    command_id = message.get("id") if isinstance(message, dict) else None
    error = {
        "code": RATE_LIMITED,
        "message": MESSAGES[RATE_LIMITED],
        "data": {"reason": "too many commands in flight", "retry_after": 1},
    }
    return orjson.dumps({"id": command_id, "error": error})
