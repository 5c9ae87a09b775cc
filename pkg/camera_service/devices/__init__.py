"""Device access: V4L2 probing and inotify through the cffi binding `_native`."""

from camera_service.devices.errors import (
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceIOError,
    DevicePermission,
    DeviceTimeout,
    NotAV4L2Device,
)
from camera_service.devices.v4l2 import DeviceInfo, Format, FrameSize, SizeRange, probe

__all__ = [
    "DeviceBusy",
    "DeviceError",
    "DeviceGone",
    "DeviceIOError",
    "DeviceInfo",
    "DevicePermission",
    "DeviceTimeout",
    "Format",
    "FrameSize",
    "NotAV4L2Device",
    "SizeRange",
    "probe",
]
