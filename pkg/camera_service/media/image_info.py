"""The pixel size of a JPEG or PNG file, read from its header without decoding the image.

Snapshot lists report each file's `resolution` (PROTOCOL 5.12). Decoding a whole image for
that would cost milliseconds per file; the size sits in the first bytes: PNG's IHDR chunk, or
the JPEG frame header (SOFn) after the APPn/DQT/DHT segments, which are skipped by their
length fields, so EXIF or ICC blocks of any size cost a few small reads, not a full read.
"""

from __future__ import annotations

import os
import stat
import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# First read; covers the header of nearly every camera JPEG (segments beyond it are preads).
HEAD_BYTES = 4096
# A JPEG with more segments than this before its frame header is not worth following.
MAX_SEGMENTS = 512

# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range
# but are other segments.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field (TEM, restart markers); SOI too, for robustness.
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_END_OF_HEADER = frozenset({0xD9, 0xDA})  # EOI, SOS: no frame header will follow
_U16 = struct.Struct(">H")
_SOF = struct.Struct(">BHH")  # precision, height, width


def image_resolution(path: str) -> str | None:
    """ "WxH" of the JPEG or PNG at `path`, or None when it is neither, is damaged, or cannot
    be read. Symlinks are not followed and only regular files are read (a FIFO swapped in
    cannot block the caller)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not _is_regular(fd):
            return None
        head = os.pread(fd, HEAD_BYTES, 0)
        if head.startswith(PNG_SIGNATURE):
            size = _png_size(head)
        elif head.startswith(b"\xff\xd8"):
            size = _jpeg_size(fd, head)
        else:
            size = None
    except OSError:
        return None
    finally:
        os.close(fd)
    if size is None:
        return None
    width, height = size
    return f"{width}x{height}"


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _png_size(head: bytes) -> tuple[int, int] | None:
    # Signature, then the IHDR chunk: length (4), type (4), width (4), height (4).
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", head, 16)
    return (width, height) if width and height else None


def _jpeg_size(fd: int, head: bytes) -> tuple[int, int] | None:
    def read(offset: int, count: int) -> bytes:
        if offset + count <= len(head):
            return head[offset : offset + count]
        return os.pread(fd, count, offset)

    offset = 2  # after SOI
    for _ in range(MAX_SEGMENTS):
        prefix = read(offset, 2)
        if len(prefix) < 2 or prefix[0] != 0xFF:
            return None
        marker = prefix[1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in _STANDALONE:
            offset += 2
            continue
        if marker in _END_OF_HEADER:
            return None
        segment = read(offset + 2, 2 + _SOF.size)
        if len(segment) < 2:
            return None
        (length,) = _U16.unpack_from(segment)
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if len(segment) < 2 + _SOF.size:
                return None
            _, height, width = _SOF.unpack_from(segment, 2)
            # Height 0 means "defined later by a DNL marker": not in the header, so unknown.
            return (width, height) if width and height else None
        offset += 2 + length
    return None
