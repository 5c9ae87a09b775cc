"""Fixtures for the integration tests that need fake V4L2 cameras (FUSE)."""

from camera_service.testing.pytest_plugin import fake_cameras, fake_v4l2_mount

__all__ = ["fake_cameras", "fake_v4l2_mount"]
