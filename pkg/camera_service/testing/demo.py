"""Run the service against fake cameras: `python -m camera_service.testing.demo --config FILE`.

Mounts the FUSE fake-camera filesystem in a temporary directory with three cameras (plus the
metadata node a UVC camera also has, which the service must not list), points
`camera.device_dir` there and starts the service. Every camera streams (test patterns: MJPG
frames are real JPEGs, YUYV frames colour bars), so snapshots and live view work. Specs for video0..video9 are registered up
front, so cameras can be plugged and unplugged from a shell while it runs:

    touch DIR/video6     # plug in camera 6 (IN_CREATE)
    rm DIR/video6        # unplug it (IN_DELETE)

Everything is unmounted when the service stops (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from camera_service.testing import fakecams


def stepwise_streaming_camera() -> dict:
    """The stepwise camera with a stepwise YUYV format first, streaming 1280x720 at 30 fps
    (its NV12 format alone is not something the service captures)."""
    spec = fakecams.stepwise_camera()
    nv12 = spec["formats"][0]
    yuyv = {**nv12, "fourcc": "YUYV", "description": "YUYV 4:2:2"}
    spec["formats"] = [yuyv, nv12]
    spec["current"] = {"width": 1280, "height": 720, "fourcc": "YUYV"}
    spec["timeperframe"] = [1, 30]
    return spec


def demo_cameras() -> dict[str, dict]:
    """Node name -> spec: what is plugged in when the demo starts (all of them stream)."""
    return {
        # MJPG 1280x720 at 30 fps (and YUYV, 640x480, 15 fps).
        "video0": fakecams.streaming_camera(card="Demo USB Camera", bus_info="usb-0000:00:14.0-1"),
        "video1": fakecams.metadata_node(card="Demo USB Camera"),
        # YUYV 1280x960 at 7.5 fps: a slow camera with a fractional rate.
        "video2": fakecams.fractional_camera(),
        "video4": stepwise_streaming_camera(),
    }


def spare_cameras(first: int = 5, last: int = 9) -> dict[str, dict]:
    """Specs registered but not plugged in: `touch DIR/videoN` brings one up."""
    return {
        f"video{n}": fakecams.streaming_camera(
            card=f"Demo Camera {n}", bus_info=f"usb-0000:00:14.0-{n}"
        )
        for n in range(first, last + 1)
    }


def _run_service(config_path: str | None, device_dir: str) -> int:
    from camera_service.config import ConfigError, load_config

    try:
        config = load_config(config_path, overrides={"camera": {"device_dir": device_dir}})
    except (ConfigError, OSError) as exc:
        print(f"demo: invalid configuration: {exc}", file=sys.stderr)
        return 1
    from camera_service.app import run

    return run(config, config.source)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m camera_service.testing.demo",
        description="Start the camera service with FUSE fake cameras.",
    )
    parser.add_argument("--config", metavar="FILE", help="service configuration (TOML)")
    args = parser.parse_args(argv)

    try:
        mount = fakecams.FakeV4L2Mount.start()
    except fakecams.FuseUnavailable as exc:
        print(f"demo: cannot mount fake cameras: {exc}", file=sys.stderr)
        return 1
    try:
        for name, spec in spare_cameras().items():
            mount.register(name, spec)
        for name, spec in demo_cameras().items():
            mount.add(name, spec)
        print(
            f"demo: fake cameras in {mount.dev_dir}\n"
            f"demo: plug in:  touch {mount.dev_dir}/video5   (specs for video5..video9)\n"
            f"demo: unplug:   rm {mount.dev_dir}/video5",
            file=sys.stderr,
            flush=True,
        )
        return _run_service(args.config, mount.dev_dir)
    finally:
        mount.close()


if __name__ == "__main__":
    sys.exit(main())
