"""The four cameras every benchmark uses, as PROTOCOL 5.2 shows them to clients.

The same cards are mounted as FUSE fake cameras for the real server (`fake_camera_specs`), and
the baselines and micro benchmarks answer with `camera_list_result()` so that every server
under test returns a list of the same shape and roughly the same size.
"""

from __future__ import annotations

from typing import Any

CAMERA_COUNT = 4


def camera_entry(n: int, media_host: str = "localhost") -> dict[str, Any]:
    return {
        "device": f"/dev/video{n}",
        "status": "CONNECTED",
        "name": f"Fake Camera {n}",
        "resolution": "640x480",
        "fps": 30,
        "streams": {
            "rtsp": f"rtsp://{media_host}:8554/camera{n}",
            "webrtc": f"http://{media_host}:8889/camera{n}/webrtc",
            "hls": f"http://{media_host}:8888/camera{n}",
        },
    }


def camera_list_result(count: int = CAMERA_COUNT) -> dict[str, Any]:
    cameras = [camera_entry(n) for n in range(count)]
    return {"cameras": cameras, "total": len(cameras), "connected": len(cameras)}


def fake_camera_specs(count: int = CAMERA_COUNT, first: int = 0) -> dict[str, dict]:
    """Node name -> FUSE fake camera spec (640x480 YUYV at 30 fps, like `camera_entry`)."""
    from camera_service.testing.fakecams import uvc_camera

    return {
        f"video{n}": uvc_camera(card=f"Fake Camera {n}", bus_info=f"usb-0000:00:14.0-{n + 1}")
        for n in range(first, first + count)
    }
