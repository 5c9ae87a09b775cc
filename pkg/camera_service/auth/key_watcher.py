"""Applies API key changes made by the CLI without a restart (PROTOCOL 4.4)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from camera_service.auth.gate import SessionGate
from camera_service.devices.inotify import FileWatch
from camera_service.rpc._jsonrpc import CallContext

if TYPE_CHECKING:
    from camera_service.config import Config


class ApiKeyWatcher:
    """Reloads the key store when its file changes (inotify) and ends the sessions of revoked
    or expired keys on the open connections."""

    def __init__(self, gate: SessionGate, contexts: Callable[[], Iterable[CallContext]]) -> None:
        self.gate = gate
        self.contexts = contexts
        self._watch: FileWatch | None = None

    @property
    def path(self) -> str:
        return os.path.abspath(self.gate.authenticator.api_keys.path)

    async def start(self) -> None:
        # The directory is created if missing: `apikey create` writes the file into it later.
        watch = FileWatch(self.path, self._on_change, create_directory=True)
        watch.start(asyncio.get_running_loop())
        self._watch = watch

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def apply(self, config: Config) -> None:
        # The authenticator may have switched to another key file: follow it.
        if self._watch is not None and self._watch.path != self.path:
            self._watch.stop()
            self._watch = FileWatch(self.path, self._on_change, create_directory=True)
            self._watch.start(asyncio.get_running_loop())

    def _on_change(self) -> None:
        if self.gate.authenticator.api_keys.reload_if_changed():
            self.gate.end_revoked_sessions(self.contexts())
