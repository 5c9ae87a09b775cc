"""The lifecycle every long-lived part of the service follows (ARCHITECTURE section 7).

`app.py` builds the components with their dependencies, starts them in dependency order,
stops them in reverse and hands every reloaded configuration to each one's `apply`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from camera_service.config import Config


@runtime_checkable
class Component(Protocol):
    """A long-lived part of the service."""

    async def start(self) -> None:
        """Acquire resources and begin work; raises when the component cannot run."""

    async def stop(self) -> None:
        """Release everything `start` acquired; safe to call when not started."""

    def apply(self, config: Config) -> None:
        """Take the live keys of a reloaded configuration; restart-only keys are ignored."""


class Passive:
    """Base for components with nothing to start or stop (they only follow the config)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def apply(self, config: Config) -> None:
        return None
