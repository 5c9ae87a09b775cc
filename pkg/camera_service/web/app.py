"""Routing of HTTP requests to handlers by exact path or by path prefix."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from camera_service.web.responses import AnyResponse, Request, not_found

Handler = Callable[[Request], AnyResponse | Awaitable[AnyResponse]]


class HttpApp:
    """The HTTP routes of the port. A handler takes a `Request` and returns (or awaits) a
    response; prefix routes get the whole path and pick the rest themselves."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []

    def add_route(self, path: str, handler: Handler) -> None:
        """Answer `path` (exactly, without the query) with `handler`."""
        if path in self._exact:
            raise ValueError(f"HTTP route registered twice: {path}")
        self._exact[path] = handler

    def add_prefix(self, prefix: str, handler: Handler) -> None:
        """Every path that starts with `prefix` (which should end with '/')."""
        self._prefixes.append((prefix, handler))
        self._prefixes.sort(key=lambda item: -len(item[0]))  # the longest prefix wins

    def handler_for(self, path: str) -> Handler | None:
        """The handler for `path`, or None."""
        handler = self._exact.get(path)
        if handler is not None:
            return handler
        for prefix, candidate in self._prefixes:
            if path.startswith(prefix):
                return candidate
        return None

    async def respond(self, request: Request) -> AnyResponse:
        """The handler's response to `request`, 404 when no route matches."""
        handler = self.handler_for(request.path)
        if handler is None:
            return not_found()
        result = handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result
