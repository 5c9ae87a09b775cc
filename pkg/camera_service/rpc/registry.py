"""Method registry: collected at start-up, frozen into the dispatcher's table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camera_service.auth.roles import ROLE_LEVELS
from camera_service.rpc._jsonrpc import MethodEntry, PreEncoded, make_entry


class MethodRegistry:
    """Collects the JSON-RPC methods at start-up; `entries()` feeds the dispatcher."""

    def __init__(self) -> None:
        self._entries: dict[str, MethodEntry] = {}

    def add(
        self,
        name: str,
        handler: Callable[..., Any] | PreEncoded,
        role: str | None,
        *,
        binds_context: bool = True,
    ) -> None:
        """Register `handler(ctx, params)` under `name`; a PreEncoded `handler` is a constant
        result sent without any call (e.g. ping's "pong").

        `role` None means callable without a session (only `authenticate`). `binds_context`
        False skips setting the correlation-id context variables around the call: for trivial
        handlers on the hot path that never log.
        """
        if name in self._entries:
            raise ValueError(f"method registered twice: {name}")
        level = 0 if role is None else ROLE_LEVELS[role]
        self._entries[name] = make_entry(name, handler, level, binds_context)

    def handler(self, name: str) -> Callable[..., Any] | None:
        """The `handler(ctx, params)` registered under `name` (None when there is none), for
        other intakes of the same methods (the MQTT bridge's commands)."""
        entry = self._entries.get(name)
        return None if entry is None or entry.constant is not None else entry.handler

    def entries(self) -> list[MethodEntry]:
        return list(self._entries.values())
