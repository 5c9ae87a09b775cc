"""Frames to image files: JPEG from YUYV (libjpeg-turbo through simplejpeg, which takes the
YUV planes directly: no RGB step), PNG from any frame (Pillow).

numpy, simplejpeg and Pillow are imported on first use, so a service that never encodes
never loads them. The functions block for milliseconds: call them from a worker thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camera_service.media.capture import Frame

# zlib level 1: a 1280x720 PNG in tens of ms instead of hundreds, a few % larger.
PNG_COMPRESS_LEVEL = 1


class EncodeError(Exception):
    """The frame could not be turned into the requested image."""


def _yuyv_planes(data: bytes, width: int, height: int) -> tuple[Any, Any, Any]:
    """Y (h x w), U and V (h x w/2) as contiguous planes of a YUYV 4:2:2 frame."""
    import numpy as np

    if len(data) < width * height * 2:
        raise EncodeError(f"YUYV frame of {len(data)} bytes is short for {width}x{height}")
    packed = np.frombuffer(data, dtype=np.uint8, count=width * height * 2).reshape(
        height, width * 2
    )
    y = np.ascontiguousarray(packed[:, 0::2])
    u = np.ascontiguousarray(packed[:, 1::4])
    v = np.ascontiguousarray(packed[:, 3::4])
    return y, u, v


def jpeg_from_yuyv(data: bytes, width: int, height: int, quality: int) -> bytes:
    """A baseline JPEG (4:2:2) of a YUYV frame at `quality` (1-100, higher is better)."""
    import simplejpeg

    y, u, v = _yuyv_planes(data, width, height)
    return bytes(simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality))


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's header; EncodeError when it is not a JPEG."""
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise EncodeError(f"not a decodable JPEG: {exc}") from None
    return width, height


def png_from_frame(frame: Frame) -> bytes:
    """A PNG of an MJPG or YUYV frame (RGB, full resolution)."""
    import io

    from PIL import Image

    if frame.fourcc == "MJPG":
        import simplejpeg

        try:
            rgb = simplejpeg.decode_jpeg(frame.data, colorspace="RGB")
        except ValueError as exc:
            raise EncodeError(f"the camera's JPEG does not decode: {exc}") from None
        image = Image.fromarray(rgb, "RGB")
    elif frame.fourcc == "YUYV":
        y, u, v = _yuyv_planes(frame.data, frame.width, frame.height)
        # Chroma is shared by two pixels in 4:2:2: repeat each sample once across.
        planes = [
            Image.fromarray(y, "L"),
            Image.fromarray(u.repeat(2, axis=1), "L"),
            Image.fromarray(v.repeat(2, axis=1), "L"),
        ]
        image = Image.merge("YCbCr", planes).convert("RGB")
    else:
        raise EncodeError(f"cannot encode {frame.fourcc} frames")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


def jpeg_from_frame(frame: Frame, quality: int) -> bytes:
    """MJPG frames are the camera's own JPEG, byte for byte; YUYV frames are encoded."""
    if frame.fourcc == "MJPG":
        return frame.data
    if frame.fourcc == "YUYV":
        return jpeg_from_yuyv(frame.data, frame.width, frame.height, quality)
    raise EncodeError(f"cannot encode {frame.fourcc} frames")
