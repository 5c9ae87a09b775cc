"""Protocol error codes and messages (PROTOCOL.md section 3) and the one error type handlers raise."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
AUTH_ERROR = -32001
RATE_LIMITED = -32002
PERMISSION_DENIED = -32003
CAMERA_NOT_FOUND = -1000
CAMERA_NOT_AVAILABLE = -1001
RECORDING_IN_PROGRESS = -1002
NOT_RECORDING = -1003
FILE_NOT_FOUND = -1005
ALREADY_RECORDING = -1006
STORAGE_CRITICAL = -1010

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid parameters",
    INTERNAL_ERROR: "Internal server error",
    RATE_LIMITED: "Rate limit exceeded",
    PERMISSION_DENIED: "Insufficient permissions",
    CAMERA_NOT_FOUND: "Camera not found",
    CAMERA_NOT_AVAILABLE: "Camera not available",
    RECORDING_IN_PROGRESS: "Recording in progress",
    NOT_RECORDING: "Camera is not recording",
    ALREADY_RECORDING: "Camera is currently recording",
    STORAGE_CRITICAL: "Storage space is critical",
}
# -1005 names the kind of file: "Recording file not found" / "Snapshot file not found".
FILE_NOT_FOUND_MESSAGES = {
    "recording": "Recording file not found",
    "snapshot": "Snapshot file not found",
}
AUTH_REQUIRED_MESSAGE = "Authentication required"
AUTH_FAILED_MESSAGE = "Authentication failed"


class RpcError(Exception):
    """A protocol error: becomes the response's error object as it is."""

    def __init__(self, code: int, message: str | None = None, data: dict[str, Any] | None = None):
        if message is None:
            message = MESSAGES[code]
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def __repr__(self) -> str:
        return f"RpcError({self.code}, {self.message!r}, {self.data!r})"


def invalid_params(reason: str) -> RpcError:
    """-32602 with `data.reason` naming the parameter and what was expected."""
    return RpcError(INVALID_PARAMS, data={"reason": reason})


def file_not_found(kind: str, filename: str) -> RpcError:
    """-1005 for a `kind` ("recording" or "snapshot") file that does not exist."""
    return RpcError(
        FILE_NOT_FOUND,
        FILE_NOT_FOUND_MESSAGES[kind],
        {"reason": f"no {kind} file with this name", "filename": filename},
    )


def auth_failed(reason: str) -> RpcError:
    """-32001 "Authentication failed" with the reason shown to the client."""
    return RpcError(AUTH_ERROR, AUTH_FAILED_MESSAGE, {"reason": reason})


def auth_required() -> RpcError:
    """-32001 "Authentication required": a protected call without a session."""
    return RpcError(
        AUTH_ERROR,
        AUTH_REQUIRED_MESSAGE,
        {"reason": "call authenticate first, or pass auth_token in params"},
    )
