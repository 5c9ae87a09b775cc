"""What the service reports about a camera, and the PROTOCOL dicts built from it.

A `Camera` is an immutable snapshot: the monitor replaces it on every change, so API handlers
can cache the JSON they build from it per registry version. Everything a client sees is derived
here, once, from the probe's `DeviceInfo`, following the fallbacks of PROTOCOL.md 5.2-5.4.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Protocol

from camera_service.devices.v4l2 import DeviceInfo, fps_value

CONNECTED = "CONNECTED"
DISCONNECTED = "DISCONNECTED"
ERROR = "ERROR"

Rate = int | float

_EMPTY_DEVICE_INFO: Mapping[str, str] = MappingProxyType(
    {"driver": "", "card": "", "bus_info": "", "driver_version": ""}
)


@dataclass(frozen=True, slots=True)
class Camera:
    """One camera as the service reports it: identity, status and what it can capture."""

    device: str  # the node's path, e.g. "/dev/video0"
    number: int  # N of videoN
    status: str  # CONNECTED | DISCONNECTED | ERROR
    name: str
    resolution: str  # "WxH" or ""
    fps: Rate
    formats: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    frame_rates: tuple[Rate, ...] = ()
    fps_options: tuple[Rate, ...] = ()
    device_info: Mapping[str, str] = field(default_factory=lambda: _EMPTY_DEVICE_INFO, hash=False)
    # Not part of what a client sees, so not part of equality: two probes that report the same
    # thing compare equal even though they ran at different times.
    detected_at: float = field(default=0.0, compare=False)
    error: str | None = None  # why the camera is in ERROR
    info: DeviceInfo | None = field(default=None, compare=False, repr=False)

    @property
    def stream_name(self) -> str:
        return f"camera{self.number}"

    @classmethod
    def from_device_info(
        cls, device: str, number: int, info: DeviceInfo, detected_at: float
    ) -> Camera:
        sizes = _sizes_largest_first(info)
        current = (
            (info.current_width, info.current_height)
            if info.current_width and info.current_height
            else None
        )
        shown = current or (sizes[0] if sizes else None)
        rates = _rates_at(info, shown) if shown else []
        if info.current_fps is not None and info.current_fps > 0:
            fps: Rate = fps_value(info.current_fps)
        else:
            fps = fps_value(rates[0]) if rates else 0
        return cls(
            device=device,
            number=number,
            status=CONNECTED,
            name=info.card or f"Camera {number}",
            resolution=f"{shown[0]}x{shown[1]}" if shown else "",
            fps=fps,
            formats=tuple(fmt.fourcc for fmt in info.formats),
            resolutions=tuple(f"{w}x{h}" for w, h in sizes),
            frame_rates=tuple(fps_value(r) for r in rates),
            fps_options=tuple(fps_value(r) for r in _all_rates(info)),
            device_info=MappingProxyType(
                {
                    "driver": info.driver,
                    "card": info.card,
                    "bus_info": info.bus_info,
                    "driver_version": info.driver_version,
                }
            ),
            detected_at=detected_at,
            info=info,
        )

    @classmethod
    def failed(cls, device: str, number: int, error: str, detected_at: float) -> Camera:
        """A node that exists but could not be opened or queried: nothing known but its name."""
        return cls(
            device=device,
            number=number,
            status=ERROR,
            name=f"Camera {number}",
            resolution="",
            fps=0,
            detected_at=detected_at,
            error=error,
        )

    def with_status(self, status: str) -> Camera:
        return replace(self, status=status)


def _sizes_largest_first(info: DeviceInfo) -> list[tuple[int, int]]:
    sizes = {(s.width, s.height) for fmt in info.formats for s in fmt.sizes}
    return sorted(sizes, key=lambda wh: (wh[0] * wh[1], wh[0]), reverse=True)


def _rates_at(info: DeviceInfo, size: tuple[int, int]) -> list[Fraction]:
    """Rates offered at `size`: those of the current format when it has that size, else any."""

    def collect(formats: Iterable[Any]) -> set[Fraction]:
        return {
            r for fmt in formats for s in fmt.sizes if (s.width, s.height) == size for r in s.fps
        }

    rates: set[Fraction] = set()
    if info.current_fourcc is not None:
        rates = collect(f for f in info.formats if f.fourcc == info.current_fourcc)
    if not rates:
        rates = collect(info.formats)
    return sorted(rates, reverse=True)


def _all_rates(info: DeviceInfo) -> list[Fraction]:
    return sorted({r for fmt in info.formats for s in fmt.sizes for r in s.fps}, reverse=True)


# ---- PROTOCOL dicts -------------------------------------------------------------------------


class _StreamSource(Protocol):
    def for_camera(self, camera: Camera) -> dict[str, str]: ...


def _streams(camera: Camera, streams: _StreamSource | Mapping[str, str] | None) -> dict[str, str]:
    if streams is None:
        return {}
    if hasattr(streams, "for_camera"):
        return streams.for_camera(camera)  # type: ignore[union-attr]
    return dict(streams)  # type: ignore[arg-type]


def camera_summary(camera: Camera) -> dict[str, Any]:
    """The CAMERA fields of PROTOCOL 5.2 that describe the device itself, in protocol order."""
    return {
        "device": camera.device,
        "status": camera.status,
        "name": camera.name,
        "resolution": camera.resolution,
        "fps": camera.fps,
    }


def camera_list_entry(
    camera: Camera, streams: _StreamSource | Mapping[str, str] | None
) -> dict[str, Any]:
    """One CAMERA object of `get_camera_list` (PROTOCOL 5.2), keys in protocol order.

    `streams` is either a `StreamUrls` (URLs are built for this camera) or the ready dict.
    """
    entry = camera_summary(camera)
    entry["streams"] = _streams(camera, streams)
    return entry


def camera_status(
    camera: Camera, streams: _StreamSource | Mapping[str, str] | None, now: float | None = None
) -> dict[str, Any]:
    """The `get_camera_status` result (PROTOCOL 5.3); `now` is a time.monotonic() value."""
    if now is None:
        now = time.monotonic()
    entry = camera_list_entry(camera, streams)
    entry["capabilities"] = {
        "formats": list(camera.formats),
        "resolutions": list(camera.resolutions),
        "frame_rates": list(camera.frame_rates),
    }
    entry["device_info"] = dict(camera.device_info)
    entry["metrics"] = {"uptime": round(max(0.0, now - camera.detected_at), 3)}
    return entry


def camera_capabilities(camera: Camera) -> dict[str, Any]:
    """The `get_camera_capabilities` result (PROTOCOL 5.4)."""
    confirmed = camera.status == CONNECTED and camera.info is not None
    return {
        "device": camera.device,
        "formats": list(camera.formats),
        "resolutions": list(camera.resolutions),
        "fps_options": list(camera.fps_options),
        "validation_status": "confirmed" if confirmed else "disconnected",
    }


__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "ERROR",
    "Camera",
    "camera_capabilities",
    "camera_list_entry",
    "camera_status",
    "camera_summary",
]
