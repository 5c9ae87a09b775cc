"""`multipart/x-mixed-replace` bodies: a part per item, for as long as the source yields."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from camera_service.web.responses import StreamResponse

BOUNDARY = "camera-service-frame"


# (content type, body, capture time in epoch seconds or None)
Part = tuple[str, bytes, float | None]


async def _parts(items: AsyncIterator[Part], boundary: bytes) -> AsyncIterator[bytes]:
    async for content_type, body, taken_at in items:
        # X-Timestamp (as other MJPEG servers send it): when the frame left the camera driver,
        # so a viewer can tell how old what it shows is.
        stamp = b"" if taken_at is None else b"\r\nX-Timestamp: %.3f" % taken_at
        head = (
            b"--"
            + boundary
            + b"\r\nContent-Type: "
            + content_type.encode("latin-1")
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + stamp
            + b"\r\n\r\n"
        )
        # One chunk per part: the client never sees half a frame between two writes.
        yield head + body + b"\r\n"


def multipart_response(
    items: AsyncIterator[Part],
    boundary: str = BOUNDARY,
    on_close: Callable[[], None] | None = None,
) -> StreamResponse:
    """A never-ending response (until `items` ends or the client leaves) whose parts replace
    each other in the client, as browsers do for an `<img>` of MJPEG."""
    return StreamResponse(
        200,
        _parts(items, boundary.encode("latin-1")),
        {
            "Content-Type": f"multipart/x-mixed-replace; boundary={boundary}",
            "Cache-Control": "no-store",
        },
        on_close,
    )
