"""Exceptions for device access, and the single place where errno values become them.

Every failure the V4L2 layer reports is a `DeviceError` carrying the errno, the node's path and
the operation that failed (``"open"``, ``"VIDIOC_QUERYCAP"`` ...), so callers can react to the
kind of failure (gone, no permission, busy) without decoding errno themselves.
"""

from __future__ import annotations

import errno as _errno
import os


class DeviceError(OSError):
    """A device node could not be opened or queried."""

    def __init__(self, err: int, path: str, operation: str, message: str | None = None) -> None:
        text = message if message is not None else os.strerror(err)
        super().__init__(err, text, path)
        self.path = path
        self.operation = operation

    def __str__(self) -> str:
        return f"{self.operation} on {self.path}: {self.strerror} (errno {self.errno})"

    def __reduce__(self):  # OSError's default pickling would drop `operation`
        return (type(self), (self.errno, self.path, self.operation, self.strerror))


class DeviceGone(DeviceError):
    """The node or the hardware behind it no longer exists (unplugged, or removed mid-probe)."""


class DevicePermission(DeviceError):
    """The node exists but this process may not open it (yet: udev may still be fixing modes)."""


class DeviceBusy(DeviceError):
    """The driver refused because another user holds the device."""


class NotAV4L2Device(DeviceError):
    """The node does not understand V4L2 ioctls."""


class DeviceIOError(DeviceError):
    """Any other failure reported by the driver."""


class DeviceTimeout(DeviceError):
    """A probe took longer than allowed; the node may be stuck in the driver."""

    def __init__(self, path: str, operation: str, timeout: float) -> None:
        super().__init__(_errno.ETIMEDOUT, path, operation, f"no answer within {timeout:g} s")
        self.timeout = timeout

    def __reduce__(self):
        return (type(self), (self.path, self.operation, self.timeout))


_BY_ERRNO: dict[int, type[DeviceError]] = {
    _errno.ENODEV: DeviceGone,
    _errno.ENOENT: DeviceGone,
    _errno.ENXIO: DeviceGone,
    _errno.EACCES: DevicePermission,
    _errno.EPERM: DevicePermission,
    _errno.EBUSY: DeviceBusy,
    _errno.ENOTTY: NotAV4L2Device,
}


def error_from_errno(err: int, path: str, operation: str) -> DeviceError:
    """The exception for `err` raised by `operation` on `path`."""
    return _BY_ERRNO.get(err, DeviceIOError)(err, path, operation)
