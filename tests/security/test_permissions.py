"""The permission matrix over the wire (PROTOCOL 3 and 4.1): every method x every role x
unauthenticated, with a session from `authenticate` and with a per-request token."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from camera_service.client import RpcCallError

ROLES = ("viewer", "operator", "admin")
LEVEL = {None: 0, "viewer": 1, "operator": 2, "admin": 3}
MISSING = "/dev/video99"

METRICS_KEYS = {
    "active_connections",
    "total_requests",
    "average_response_time",
    "p50_response_time",
    "p99_response_time",
    "error_rate",
    "memory_usage",
    "cpu_usage",
    "uptime",
}
SERVER_INFO_KEYS = {
    "name",
    "version",
    "capabilities",
    "supported_formats",
    "max_cameras",
    "max_connections",
}


def check_camera_list(result: Any) -> None:
    assert result == {"cameras": [], "total": 0, "connected": 0}


def check_camera_not_found(result: Any) -> None:
    assert isinstance(result, RpcCallError), result
    assert (result.code, result.message) == (-1000, "Camera not found")
    assert result.data["device"] == MISSING and result.data["reason"]


def check_snapshot_list(result: Any) -> None:
    assert result == {"files": [], "total": 0, "limit": 100, "offset": 0}


def check_snapshot_not_found(result: Any) -> None:
    assert isinstance(result, RpcCallError), result
    assert (result.code, result.message) == (-1005, "Snapshot file not found")
    assert result.data["filename"] == "missing.jpg" and result.data["reason"]


def check_recording_not_found(result: Any) -> None:
    assert isinstance(result, RpcCallError), result
    assert (result.code, result.message) == (-1005, "Recording file not found")
    assert result.data["filename"] == "missing.mp4" and result.data["reason"]


def check_storage_info(result: Any) -> None:
    assert isinstance(result, dict) and len(result) == 12, result
    assert (result["warn_threshold"], result["block_threshold"]) == (80, 90)


def check_retention_set(result: Any) -> None:
    assert result == {
        "policy_type": "manual",
        "enabled": False,
        "message": "Retention policy updated successfully",
    }


def check_cleanup(result: Any) -> None:
    assert (result["cleanup_executed"], result["files_deleted"], result["space_freed"]) == (
        True,
        0,
        0,
    )


def check_metrics(result: Any) -> None:
    assert isinstance(result, dict) and set(result) == METRICS_KEYS


def check_status(result: Any) -> None:
    assert set(result) == {"status", "uptime", "version", "components"}
    assert result["status"] in ("healthy", "degraded", "unhealthy")
    assert result["components"]["websocket_server"] == "running"


def check_server_info(result: Any) -> None:
    assert set(result) == SERVER_INFO_KEYS
    assert result["name"] == "Camera Service"
    assert result["max_connections"] == 1000


# method -> (role needed, params, check of the allowed outcome)
METHODS: dict[str, tuple[str, dict[str, Any], Any]] = {
    "ping": ("viewer", {}, lambda r: r == "pong" or pytest.fail(repr(r))),
    "get_camera_list": ("viewer", {}, check_camera_list),
    "get_camera_status": ("viewer", {"device": MISSING}, check_camera_not_found),
    "get_camera_capabilities": ("viewer", {"device": MISSING}, check_camera_not_found),
    "list_snapshots": ("viewer", {}, check_snapshot_list),
    "get_snapshot_info": ("viewer", {"filename": "missing.jpg"}, check_snapshot_not_found),
    "delete_snapshot": ("operator", {"filename": "missing.jpg"}, check_snapshot_not_found),
    "take_snapshot": ("operator", {"device": MISSING}, check_camera_not_found),
    "get_streams": ("viewer", {}, lambda r: r == [] or pytest.fail(repr(r))),
    "start_recording": ("operator", {"device": MISSING}, check_camera_not_found),
    "stop_recording": ("operator", {"device": MISSING}, check_camera_not_found),
    "list_recordings": ("viewer", {}, check_snapshot_list),
    "get_recording_info": ("viewer", {"filename": "missing.mp4"}, check_recording_not_found),
    "delete_recording": ("operator", {"filename": "missing.mp4"}, check_recording_not_found),
    "get_storage_info": ("admin", {}, check_storage_info),
    "get_retention_policy": (
        "viewer",
        {},
        lambda r: r == {"policy_type": "manual", "enabled": False} or pytest.fail(repr(r)),
    ),
    "set_retention_policy": (
        "admin",
        {"policy_type": "manual", "enabled": False},
        check_retention_set,
    ),
    "cleanup_old_files": ("admin", {}, check_cleanup),
    "get_metrics": ("admin", {}, check_metrics),
    "get_status": ("admin", {}, check_status),
    "get_server_info": ("admin", {}, check_server_info),
}

MATRIX = [(m, r) for m in METHODS for r in (None, *ROLES)]


@pytest.fixture
def token(test_overrides):
    secret = test_overrides["security"]["jwt_secret"]

    def make(role: str) -> str:
        now = int(time.time())
        return jwt.encode(
            {"user_id": f"{role}-user", "role": role, "iat": now, "exp": now + 3600},
            secret,
            algorithm="HS256",
        )

    return make


async def outcome(client, method: str, params: dict[str, Any]) -> Any:
    try:
        return await client.call(method, params, timeout=5)
    except RpcCallError as exc:
        return exc


def check(method: str, role: str | None, result: Any) -> None:
    needed, _, allowed = METHODS[method]
    if role is None:
        assert isinstance(result, RpcCallError), result
        assert (result.code, result.message) == (-32001, "Authentication required")
        assert set(result.data) == {"reason"} and result.data["reason"]
    elif LEVEL[role] >= LEVEL[needed]:
        allowed(result)
    else:
        assert isinstance(result, RpcCallError), result
        assert (result.code, result.message) == (-32003, "Insufficient permissions")
        assert set(result.data) == {"reason", "required_role", "role"}
        assert (result.data["required_role"], result.data["role"]) == (needed, role)
        assert result.data["reason"]


def test_matrix_covers_every_registered_method(app):
    registered = set(app.dispatcher.methods)
    assert registered == set(METHODS) | {"authenticate"}


@pytest.mark.parametrize("method, role", MATRIX)
async def test_session(connect, token, method, role):
    client = await connect()
    if role is not None:
        assert (await client.authenticate(token(role)))["role"] == role
    params = METHODS[method][1]
    check(method, role, await outcome(client, method, dict(params)))
    # The same answer again: a refusal changes nothing on the connection.
    check(method, role, await outcome(client, method, dict(params)))


@pytest.mark.parametrize("param", ["auth_token", "token"])
@pytest.mark.parametrize("method, role", [(m, r) for m, r in MATRIX if r is not None])
async def test_per_request_token(connect, token, method, role, param):
    client = await connect()
    params = {**METHODS[method][1], param: token(role)}
    check(method, role, await outcome(client, method, params))


@pytest.mark.parametrize("method", list(METHODS))
async def test_all_roles_in_one_batch(connect, token, method):
    """Per-request tokens of every role side by side in one batch: each item its own role."""
    client = await connect()
    params = METHODS[method][1]
    calls = [(method, dict(params))] + [(method, {**params, "auth_token": token(r)}) for r in ROLES]
    results = await client.batch(calls)
    for role, result in zip((None, *ROLES), results):
        check(method, role, result)


@pytest.mark.parametrize("role", [None, *ROLES])
async def test_authenticate_needs_no_session(connect, token, role):
    client = await connect()
    if role is not None:
        await client.authenticate(token(role))
    result = await client.authenticate(token("operator"))
    assert (result["role"], result["permissions"]) == ("operator", ["view", "control"])
