"""Run the service against fake cameras: `python -m camera_service.testing.demo --config FILE`.

Mounts the FUSE fake-camera filesystem in a temporary directory with three cameras (plus the
metadata node a UVC camera also has, which the service must not list), points
`camera.device_dir` there and starts the service. Specs for video0..video9 are registered up
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


def demo_cameras() -> dict[str, dict]:
    """Node name -> spec: what is plugged in when the demo starts."""
    return {
        "video0": fakecams.uvc_camera(card="Demo USB Camera"),
        "video1": fakecams.metadata_node(card="Demo USB Camera"),
        "video2": fakecams.fractional_camera(),
        "video4": fakecams.stepwise_camera(),
    }


def spare_cameras(first: int = 5, last: int = 9) -> dict[str, dict]:
    """Specs registered but not plugged in: `touch DIR/videoN` brings one up."""
    return {
        f"video{n}": fakecams.uvc_camera(card=f"Demo Camera {n}", bus_info=f"usb-0000:00:14.0-{n}")
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
