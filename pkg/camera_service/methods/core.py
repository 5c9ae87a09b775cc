"""`ping` and `authenticate` (PROTOCOL 4.2, 5.1)."""

from __future__ import annotations

from camera_service.auth.gate import SessionGate
from camera_service.rpc._jsonrpc import PreEncoded
from camera_service.rpc.registry import MethodRegistry

PONG = PreEncoded(b'"pong"')


def register(registry: MethodRegistry, gate: SessionGate) -> None:
    """Add `ping` and `authenticate` to `registry`."""
    registry.add("ping", PONG, "viewer", binds_context=False)
    registry.add("authenticate", gate.authenticate, None)
