"""Static files under a URL prefix (the dashboard's assets), with ETag and Cache-Control."""

from __future__ import annotations

import os

from camera_service.web.responses import FileResponse, Request, Response, not_found

# Assets change only with a new release; revalidating with the ETag keeps a reload cheap.
STATIC_CACHE_CONTROL = "public, max-age=300, must-revalidate"


class StaticFiles:
    """Serves the files below `directory` at `prefix` (ending with '/'); `prefix` itself
    serves `index.html`. Nothing outside `directory` is reachable: dot-segments, hidden names
    and symlinks that lead out are answered 404."""

    def __init__(self, directory: str, prefix: str = "/") -> None:
        self.root = os.path.realpath(directory)
        self.prefix = prefix

    def __call__(self, request: Request) -> FileResponse | Response:
        relative = request.path[len(self.prefix) :] or "index.html"
        parts = relative.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") or "\\" in part for part in parts):
            return not_found()
        path = os.path.realpath(os.path.join(self.root, *parts))
        if os.path.commonpath((self.root, path)) != self.root or not os.path.isfile(path):
            return not_found()
        return FileResponse(path, cache_control=STATIC_CACHE_CONTROL)
