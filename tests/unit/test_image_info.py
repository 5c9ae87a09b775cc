"""Snapshot resolutions read from JPEG and PNG headers (PROTOCOL 5.12), on real files that
Pillow wrote, including headers pushed far back by large EXIF and ICC blocks."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from camera_service.media.image_info import HEAD_BYTES, image_resolution


def encode(width: int, height: int, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("JPEG", {"quality": 85}),
        ("JPEG", {"progressive": True}),  # SOF2
        ("JPEG", {"subsampling": 0, "optimize": True}),
        ("PNG", {}),
    ],
)
def test_size_of_real_images(tmp_path, fmt, options):
    path = tmp_path / "image"
    path.write_bytes(encode(321, 123, fmt, **options))
    assert image_resolution(str(path)) == "321x123"


def test_jpeg_frame_header_behind_big_exif_and_icc_blocks(tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: an APP1 segment of ~60 KB
    icc = os.urandom(150_000)  # split by Pillow into several APP2 segments
    data = encode(1280, 720, "JPEG", exif=exif.tobytes(), icc_profile=icc)
    assert data.index(b"\xff\xc0") > 3 * HEAD_BYTES
    path = tmp_path / "big-header.jpg"
    path.write_bytes(data)
    assert image_resolution(str(path)) == "1280x720"


def test_fill_bytes_before_a_marker_are_skipped(tmp_path):
    data = encode(16, 8, "JPEG")
    path = tmp_path / "fill.jpg"
    path.write_bytes(data[:2] + b"\xff\xff\xff" + data[2:])
    assert image_resolution(str(path)) == "16x8"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not an image at all",
        b"\xff\xd8",  # SOI and nothing else
        b"\xff\xd8\xff\xe0\x00",  # cut inside a segment length
        b"\xff\xd8\xff\xda\x00\x08",  # scan data before any frame header
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00",  # height 0: defined later (DNL)
        b"\xff\xd8\xff\xe0\x00\x01",  # a segment length below 2
        b"\xff\xd8\x00\x00",  # no marker where one must be
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDX" + bytes(8),  # not IHDR first
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # cut before the size
    ],
)
def test_damaged_or_other_content_is_none(tmp_path, content):
    path = tmp_path / "file"
    path.write_bytes(content)
    assert image_resolution(str(path)) is None


def test_truncated_jpeg_of_a_real_image(tmp_path):
    data = encode(64, 48, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: data.index(b"\xff\xc0") + 5])
    assert image_resolution(str(path)) is None


def test_symlinks_fifos_and_missing_files_are_not_read(tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(encode(10, 10, "PNG"))
    link = tmp_path / "link.png"
    link.symlink_to(real)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # opening it for reading without O_NONBLOCK would wait for a writer
    assert image_resolution(str(real)) == "10x10"
    assert image_resolution(str(link)) is None
    assert image_resolution(str(fifo)) is None
    assert image_resolution(str(tmp_path / "missing.png")) is None
    assert image_resolution(str(tmp_path)) is None
