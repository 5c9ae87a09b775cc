"""SegmentWriter (media/muxer.py) without a camera: frames built here, files read back with
Debian's ffprobe/ffmpeg (an independent FFmpeg build) to check codec, packets, timestamps."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from fractions import Fraction

import pytest
from PIL import Image

from camera_service.media.capture import Frame
from camera_service.media.muxer import SegmentWriter, SourceFormat, copies, h264_keyframe

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="Debian ffprobe needed")


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 96), (shade, 255 - shade, 40)).save(out, "JPEG", quality=80)
    return out.getvalue()


def frame(data: bytes, fourcc: str, ts: float, size=(160, 96)) -> Frame:
    return Frame(data, fourcc, size[0], size[1], 0, ts, ts, 1_700_000_000 + ts)


def packets(path: str) -> list[dict]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,size,flags:stream=codec_name,width,height",
            "-of",
            "json",
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def duration(path: str) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_mjpeg_copy_keeps_every_jpeg_and_its_time(tmp_path, container):
    # 10 frames at 30 fps, then the camera skips two frames (a gap of 3 intervals).
    times = [i / 30 for i in range(10)] + [(10 + 2 + i) / 30 for i in range(5)]
    data = [jpeg(i * 15) for i in range(len(times))]
    path = str(tmp_path / f"a.{container}")
    writer = SegmentWriter(path, container, SourceFormat("MJPG", 160, 96, Fraction(30)), "copy")
    for blob, ts in zip(data, times, strict=True):
        writer.write(frame(blob, "MJPG", 100.0 + ts))
    writer.close()
    assert writer.frames == 15
    assert writer.duration == pytest.approx(times[-1] + 1 / 30, abs=0.002)
    info = packets(path)
    assert info["streams"][0]["codec_name"] == "mjpeg"
    sizes = [int(p["size"]) for p in info["packets"]]
    assert sizes == [len(blob) for blob in data]  # not re-encoded
    pts = [float(p["pts_time"]) for p in info["packets"]]
    assert pts == pytest.approx(times, abs=0.002)
    assert duration(path) == pytest.approx(writer.duration, abs=0.01)
    # Byte for byte: the JPEGs come out as they went in.
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-c", "copy", "-f", "mjpeg", "-"],
        capture_output=True,
        check=True,
    )
    assert out.stdout == b"".join(data)


def test_yuyv_with_padded_lines_is_encoded_to_h264(tmp_path):
    width, height = 100, 64  # 200 bytes a line: FFmpeg pads its lines to 208
    gray = bytes([128, 128]) * width * height
    path = str(tmp_path / "y.mp4")
    writer = SegmentWriter(path, "mp4", SourceFormat("YUYV", width, height, Fraction(15)), "copy")
    assert not writer.copy and writer.codec_name == "h264"
    for i in range(20):
        writer.write(frame(gray, "YUYV", 5.0 + i / 15, (width, height)))
    writer.close()
    info = packets(path)
    stream = info["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 100, 64)
    assert len(info["packets"]) == 20
    assert info["packets"][0]["flags"].startswith("K")
    assert duration(path) == pytest.approx(20 / 15, abs=0.05)


def h264_stream(count: int) -> list[bytes]:
    import av
    import numpy as np

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 96, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.gop_size = 10
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    out = []
    for i in range(count):
        picture = av.VideoFrame.from_ndarray(
            np.full((96, 160, 3), i * 7 % 255, np.uint8), format="rgb24"
        ).reformat(format="yuv420p")
        picture.pts = i
        out += [bytes(p) for p in encoder.encode(picture)]
    out += [bytes(p) for p in encoder.encode(None)]
    return out


def test_h264_camera_is_copied_from_its_first_keyframe(tmp_path):
    units = h264_stream(25)
    assert h264_keyframe(units[0]) and not h264_keyframe(units[1])
    assert [i for i, u in enumerate(units) if h264_keyframe(u)] == [0, 10, 20]
    source = SourceFormat("H264", 160, 96, Fraction(30))
    assert copies(source, "h264") and copies(source, "copy")
    path = str(tmp_path / "h.mkv")
    writer = SegmentWriter(path, "mkv", source, "copy")
    # Joined mid-GOP: the units before the next keyframe cannot be decoded and are skipped.
    for i, unit in enumerate(units[5:], start=5):
        assert writer.can_start(frame(unit, "H264", i / 30)) is (i in (10, 20))
        writer.write(frame(unit, "H264", i / 30))
    writer.close()
    info = packets(path)
    assert info["streams"][0]["codec_name"] == "h264"
    # Unchanged NAL units; only Annex B start codes become length prefixes in the container.
    sizes = [int(p["size"]) for p in info["packets"]]
    assert len(sizes) == len(units) - 10
    assert all(abs(size - len(u)) <= 8 for size, u in zip(sizes, units[10:], strict=True))
    assert [p["flags"][0] for p in info["packets"]].count("K") == 2
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], check=False)
    assert decoded.returncode == 0


def test_abort_after_a_failure_never_raises(tmp_path):
    path = str(tmp_path / "x.mp4")
    writer = SegmentWriter(path, "mp4", SourceFormat("MJPG", 160, 96, None), "copy")
    writer.write(frame(jpeg(1), "MJPG", 1.0))
    writer.abort()
    writer.abort()
