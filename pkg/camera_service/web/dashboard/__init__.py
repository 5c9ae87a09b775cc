"""The web dashboard (PROTOCOL 11): static files shipped in this package directory, served
at `GET /` (the page) and below `/dashboard/` (its modules and style sheet) with ETag and
Cache-Control (web/static.py).

The files are static: the page asks for credentials itself and talks to `/ws`, so nothing
here reads data or needs a session. Only the page's own file types are served (never this
module or its bytecode), each with headers that keep it to its own origin: the CSP allows
scripts, styles, images, media and WebSocket connections from the service only, and
`Referrer-Policy: no-referrer` keeps the `?token=` of live views and downloads out of any
Referer header.
"""

from __future__ import annotations

import os

from camera_service.web.app import HttpApp
from camera_service.web.responses import AnyResponse, FileResponse, Request, not_found
from camera_service.web.static import StaticFiles

DASHBOARD_DIR = os.path.dirname(os.path.abspath(__file__))
ASSET_PREFIX = "/dashboard/"
SERVED_SUFFIXES = (".html", ".js", ".css")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class DashboardFiles:
    """Static dashboard files at `prefix` (`/` gives index.html), with the headers above."""

    def __init__(self, prefix: str) -> None:
        self._files = StaticFiles(DASHBOARD_DIR, prefix)

    def __call__(self, request: Request) -> AnyResponse:
        if not (request.path.endswith("/") or request.path.endswith(SERVED_SUFFIXES)):
            return not_found()
        response = self._files(request)
        if isinstance(response, FileResponse):
            response.headers.update(SECURITY_HEADERS)
        return response


def add_dashboard_routes(http: HttpApp) -> None:
    """`GET /` is the page; `/dashboard/NAME` its assets."""
    http.add_route("/", DashboardFiles("/"))
    http.add_prefix(ASSET_PREFIX, DashboardFiles(ASSET_PREFIX))
