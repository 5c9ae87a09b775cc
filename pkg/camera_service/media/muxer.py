"""One recording segment written with PyAV (its wheels bundle FFmpeg): used by the recorder's
worker thread only, never on the event loop.

Two ways in (PROTOCOL 5.10):
- copy: the camera's MJPEG (or H.264) frames become packets as they are, timestamps from the
  driver's frame times (so a camera that slows down or drops frames still plays at the right
  speed); an H.264 segment starts at a keyframe, whose SPS/PPS describe the stream;
- encode: YUYV frames (or MJPEG frames, decoded) go through libx264 (ultrafast, zerolatency,
  a keyframe a second), for cameras without a compressed format or when `recording.codec` is
  "h264" (what browsers play).

Both containers are written so that a process killed mid-segment leaves a playable file:
MP4 is fragmented (an empty `moov` up front, then a `moof`+`mdat` pair at least every second)
and Matroska closes a cluster every second; `flush_packets` hands each finished piece to the
kernel at once. A clean `close()` adds the index (MP4 `mfra`, Matroska cues and duration).
PyAV is imported here, and this module is imported only when a recording starts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av

if TYPE_CHECKING:
    from camera_service.media.capture import Frame

# Millisecond timestamps: Matroska's native unit; plenty for frame times.
TIME_BASE = Fraction(1, 1000)
DEFAULT_FPS = Fraction(30)

CONTAINERS: dict[str, tuple[str, dict[str, str]]] = {
    "mp4": (
        "mp4",
        {
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "min_frag_duration": "1000000",  # us: every MJPEG frame is a keyframe
            "flush_packets": "1",
        },
    ),
    "mkv": ("matroska", {"cluster_time_limit": "1000", "flush_packets": "1"}),
}

X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency"}


@dataclass(frozen=True, slots=True)
class SourceFormat:
    """What the capture delivers."""

    fourcc: str  # "MJPG" | "YUYV" | ...
    width: int
    height: int
    fps: Fraction | None

    @property
    def rate(self) -> Fraction:
        return self.fps if self.fps else DEFAULT_FPS


def copies(source: SourceFormat, codec: str) -> bool:
    """Whether frames are muxed unchanged: `copy` of an MJPEG camera, and an H.264 camera
    always (encoding H.264 again would only lose quality). Raw YUYV cannot be stored as it is
    in MP4/Matroska for players, so it is always encoded."""
    return source.fourcc == "H264" or (codec == "copy" and source.fourcc == "MJPG")


def h264_keyframe(data: bytes) -> bool:
    """Whether an Annex B access unit holds an IDR slice (NAL type 5)."""
    start = data.find(b"\x00\x00\x01")
    while start >= 0 and start + 3 < len(data):
        if data[start + 3] & 0x1F == 5:
            return True
        start = data.find(b"\x00\x00\x01", start + 3)
    return False


class SegmentWriter:
    """One open output file. `write` each frame, then `close` (finalize) or `abort`."""

    def __init__(self, path: str, container_format: str, source: SourceFormat, codec: str):
        fmt, options = CONTAINERS[container_format]
        self.path = path
        self.source = source
        self.copy = copies(source, codec)
        self.frames = 0
        self._first_ts: float | None = None
        self._last_ts = 0.0
        self._last_pts = -1
        self._interval_ms = max(1, round(1000 / source.rate))
        self._container: Any = av.open(path, mode="w", format=fmt, options=dict(options))
        self.h264 = self.copy and source.fourcc == "H264"
        self._stream: Any = None
        if not self.h264:  # an H.264 stream is added at its first keyframe (SPS/PPS)
            try:
                self._stream = self._add_stream()
            except BaseException:
                self._container.close()
                raise
        self._decoder: Any = None
        if not self.copy and source.fourcc == "MJPG":
            self._decoder = av.CodecContext.create("mjpeg", "r")

    @property
    def codec_name(self) -> str:
        return "mjpeg" if self.copy and not self.h264 else "h264"

    def can_start(self, frame: Frame) -> bool:
        """Whether a segment may begin with `frame` (H.264 copy: only at a keyframe)."""
        return not self.h264 or h264_keyframe(frame.data)

    @property
    def duration(self) -> float:
        """Seconds of media written: first to last frame time plus one frame interval."""
        if self._first_ts is None:
            return 0.0
        return self._last_ts - self._first_ts + self._interval_ms / 1000

    def _add_stream(self) -> Any:
        source = self.source
        if self.copy:
            stream = self._container.add_stream("mjpeg", rate=source.rate)
            # Never used to encode; opened by the muxer to fill the stream's parameters.
            stream.pix_fmt = "yuvj422p"
        else:
            stream = self._container.add_stream(
                "libx264", rate=source.rate, options=dict(X264_OPTIONS)
            )
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = TIME_BASE
            stream.codec_context.gop_size = max(1, round(source.rate))
        stream.width, stream.height = source.width, source.height
        stream.time_base = TIME_BASE
        return stream

    def write(self, frame: Frame) -> None:
        """Add one frame at its capture time (relative to the segment's first frame)."""
        if self._stream is None:
            if not h264_keyframe(frame.data):
                return  # nothing before the first keyframe can be decoded
            self._stream = self._h264_stream(frame.data)
        if self._first_ts is None:
            self._first_ts = frame.timestamp
        pts = round((frame.timestamp - self._first_ts) * 1000)
        if pts <= self._last_pts:  # equal or backwards driver times: keep the order valid
            pts = self._last_pts + 1
        self._last_pts = pts
        self._last_ts = frame.timestamp
        if self.copy:
            packet = av.Packet(frame.data)
            packet.stream = self._stream
            packet.pts = packet.dts = pts
            packet.duration = self._interval_ms
            packet.time_base = TIME_BASE
            packet.is_keyframe = not self.h264 or h264_keyframe(frame.data)
            self._container.mux(packet)
        else:
            picture = self._picture(frame)
            if picture is None:
                return
            picture.pts = pts
            picture.time_base = TIME_BASE
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        self.frames += 1

    def _h264_stream(self, keyframe: bytes) -> Any:
        """A stream whose parameters (size, profile, SPS/PPS) FFmpeg reads from a keyframe."""
        with av.open(io.BytesIO(keyframe), format="h264") as parsed:
            stream = self._container.add_stream_from_template(parsed.streams.video[0])
        stream.time_base = TIME_BASE
        return stream

    def _picture(self, frame: Frame) -> Any:
        if self._decoder is not None:
            pictures = self._decoder.decode(av.Packet(frame.data))
            if not pictures:
                return None
            return pictures[0].reformat(format="yuv420p")
        picture = av.VideoFrame(frame.width, frame.height, "yuyv422")
        plane = picture.planes[0]
        if len(frame.data) == plane.buffer_size:
            plane.update(frame.data)
        else:  # the driver pads lines differently from FFmpeg: copy line by line
            line = frame.width * 2
            stride = len(frame.data) // frame.height
            view = memoryview(frame.data)
            target = memoryview(plane).cast("B")
            for row in range(frame.height):
                start = row * plane.line_size
                target[start : start + line] = view[row * stride : row * stride + line]
        return picture.reformat(format="yuv420p")

    def close(self) -> None:
        """Flush the encoder and write the index; the file is complete afterwards."""
        try:
            if not self.copy and self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close after a failure, keeping what is on disk; never raises."""
        try:
            self._container.close()
        except Exception:  # the disk may still be full: the fragments written stay playable
            pass
