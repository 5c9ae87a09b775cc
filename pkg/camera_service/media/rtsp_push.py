"""The RTSP push of one camera, as a child process: `python -m camera_service.media.rtsp_push`.

Why a process: PyAV holds the GIL while FFmpeg's RTSP muxer talks to the server (ANNOUNCE,
SETUP and RECORD happen inside `avformat_write_header`), so in a thread of the service a slow
or silent media server would freeze the event loop for as long as FFmpeg waits (measured: the
whole socket timeout). Here it freezes only this process.

Protocol with the parent (`media/publisher.py`):
- stdin: one JSON line `{"url", "quality", "timeout"}`, then frames, each a `FRAME_HEAD`
  (fourcc, width, height, capture timestamp in seconds, data length) followed by the data
  (a whole JPEG for MJPG, packed YUYV 4:2:2, encoded here to JPEG).
- stdout: the line `connected` once the server accepted the stream (the first frame muxed),
  then `sent FRAMES BYTES` (totals of this connection) about once a second.
- exit 0 when stdin ends (the parent stopped it), 1 with a one-line reason on stderr when the
  server failed or refused; the parent then retries with its backoff.

The stream is MJPEG over RTP (RFC 2435), interleaved over the RTSP TCP connection.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from fractions import Fraction
from typing import Any, BinaryIO, TextIO

FRAME_HEAD = struct.Struct("<4sIIdI")
RTP_CLOCK = Fraction(1, 90000)  # RFC 3551: video timestamps at 90 kHz
REPORT_SECONDS = 1.0  # how often the totals sent go to the parent (for get_streams)


class PushError(Exception):
    """The stream cannot go on; the message is the reason the parent shows."""


def jpeg_pixel_format(jpeg: bytes) -> str:
    """`yuvj422p` or `yuvj420p` from the JPEG's frame header: RFC 2435 carries only these two,
    and FFmpeg's RTP packetizer announces the type the stream's pixel format names."""
    i = 2
    while i + 4 <= len(jpeg):
        if jpeg[i] != 0xFF:
            break
        marker = jpeg[i + 1]
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1) and i + 11 <= len(jpeg):  # baseline / extended sequential
            sampling = jpeg[i + 11]  # first component (Y): high nibble H, low nibble V
            return "yuvj420p" if sampling & 0x0F == 2 else "yuvj422p"
        if marker == 0xDA:  # start of scan: no frame header before it
            break
        i += 2 + length
    raise PushError("not a baseline JPEG: RFC 2435 cannot carry it")


def read_frame(stream: BinaryIO) -> tuple[str, int, int, float, bytes] | None:
    """The next frame from the parent, or None at the end of its input."""
    head = stream.read(FRAME_HEAD.size)
    if len(head) < FRAME_HEAD.size:
        return None
    fourcc, width, height, timestamp, length = FRAME_HEAD.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        return None
    return fourcc.decode("ascii"), width, height, timestamp, data


def to_jpeg(fourcc: str, width: int, height: int, data: bytes, quality: int) -> bytes:
    if fourcc == "MJPG":
        return data
    if fourcc == "YUYV":
        from camera_service.media.encoders import jpeg_from_yuyv

        return jpeg_from_yuyv(data, width, height, quality)
    raise PushError(f"cannot publish {fourcc} frames")


def push(settings: dict[str, Any], frames: BinaryIO, status: TextIO) -> None:
    """Send every frame from `frames` to the server until `frames` ends; PushError or
    PyAV's errors when the server fails."""
    import av

    first = read_frame(frames)
    if first is None:
        return
    fourcc, width, height, base, data = first
    jpeg = to_jpeg(fourcc, width, height, data, settings["quality"])
    timeout_us = str(int(settings["timeout"] * 1_000_000))
    sent_frames = sent_bytes = 0
    container = av.open(
        settings["url"],
        mode="w",
        format="rtsp",
        # `timeout`: FFmpeg's socket I/O limit (microseconds); without it a silent server
        # would keep the handshake waiting for ever.
        options={"rtsp_transport": "tcp", "timeout": timeout_us},
        timeout=settings["timeout"],
    )
    try:
        stream = container.add_stream("mjpeg", rate=30)
        stream.width, stream.height = width, height
        stream.pix_fmt = jpeg_pixel_format(jpeg)
        stream.time_base = RTP_CLOCK
        last_pts = -1
        timestamp = base
        reported_at = time.monotonic()
        while True:
            pts = max(int((timestamp - base) / RTP_CLOCK), last_pts + 1)
            packet = av.Packet(jpeg)
            packet.stream = stream
            packet.pts = packet.dts = last_pts = pts
            packet.time_base = RTP_CLOCK
            packet.is_keyframe = True
            container.mux(packet)  # the first one sends ANNOUNCE, SETUP and RECORD
            sent_frames += 1
            sent_bytes += len(jpeg)
            now = time.monotonic()
            if sent_frames == 1 or now - reported_at >= REPORT_SECONDS:
                if sent_frames == 1:
                    status.write("connected\n")
                status.write(f"sent {sent_frames} {sent_bytes}\n")
                status.flush()
                reported_at = now
            frame = read_frame(frames)
            if frame is None:
                return
            fourcc, frame_width, frame_height, timestamp, data = frame
            if (frame_width, frame_height) != (width, height):
                raise PushError("the capture changed size")
            jpeg = to_jpeg(fourcc, width, height, data, settings["quality"])
    finally:
        try:
            container.close()
        except Exception:  # the server is gone already: nothing left to tell it
            pass
        if sent_frames:
            status.write(f"sent {sent_frames} {sent_bytes}\n")  # the totals, however it ended
            status.flush()


def main() -> int:
    frames = sys.stdin.buffer
    try:
        settings = json.loads(frames.readline())
        push(settings, frames, sys.stdout)
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # PyAV raises OSError subclasses and av.FFmpegError
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
