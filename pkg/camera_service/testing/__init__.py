"""Test helpers: fake V4L2 cameras served by a FUSE filesystem (see fakecams.py).

Pytest fixtures live in `camera_service.testing.pytest_plugin`.
"""

from camera_service.testing.fakecams import (
    FakeV4L2Mount,
    FuseUnavailable,
    fuse_unavailable_reason,
)

__all__ = ["FakeV4L2Mount", "FuseUnavailable", "fuse_unavailable_reason"]
