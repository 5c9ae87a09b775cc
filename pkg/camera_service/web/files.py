"""Downloads of indexed files: `GET /files/snapshots/NAME` (PROTOCOL 7), and the same route
for any other FileIndex (recordings) at its own URL prefix.

Checks in this order, so that nobody learns which names exist without credentials:
credentials (401/403), the name (400, PROTOCOL 5.8), the index (404). The file is then sent
by the HTTP layer (Range, ETag, sendfile) and opened without following a symlink, so a file
swapped for a link after the lookup is answered 404, never served from elsewhere.
"""

from __future__ import annotations

from camera_service.auth.authenticator import Authenticator
from camera_service.auth.http_credentials import http_session
from camera_service.auth.roles import ROLE_LEVELS
from camera_service.media.files import FileIndex
from camera_service.media.names import check_base_name
from camera_service.web.app import HttpApp
from camera_service.web.responses import (
    AnyResponse,
    FileResponse,
    Request,
    Response,
    bad_request,
    guess_type,
    not_found,
)


class FileDownloads:
    """The HTTP handler for the files of one index, below the index's URL prefix."""

    def __init__(
        self, index: FileIndex, authenticator: Authenticator, required_role: str = "viewer"
    ) -> None:
        self.index = index
        self.authenticator = authenticator
        self.required_level = ROLE_LEVELS[required_role]

    def __call__(self, request: Request) -> AnyResponse:
        session = http_session(self.authenticator, request, self.required_level)
        if isinstance(session, Response):
            return session  # 401 or 403
        name = request.path[len(self.index.url_prefix) :]
        try:
            check_base_name(name)
        except ValueError as exc:
            return bad_request(f"bad file name: {exc}")
        if self.index.get(name) is None:
            return not_found()
        return FileResponse(
            self.index.path_of(name),
            content_type=guess_type(name),
            attachment=name,
            follow_symlinks=False,
        )


def add_file_routes(http: HttpApp, index: FileIndex, authenticator: Authenticator) -> None:
    """Serve `index`'s files at its URL prefix to viewers and above."""
    http.add_prefix(index.url_prefix, FileDownloads(index, authenticator))
