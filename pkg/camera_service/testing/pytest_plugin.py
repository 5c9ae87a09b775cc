"""Pytest fixtures for the FUSE fake cameras.

Use them from a conftest.py with `from camera_service.testing.pytest_plugin import *` (or load
this module with `-p camera_service.testing.pytest_plugin`):

    fake_v4l2_mount  session-scoped FakeV4L2Mount (one daemon for the whole run)
    fake_cameras     the same mount, emptied and reset before and after each test

Where FUSE cannot work the fixtures skip, and the skip message says exactly what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from camera_service.testing.fakecams import FakeV4L2Mount, FuseUnavailable

__all__ = ["fake_cameras", "fake_v4l2_mount"]


@pytest.fixture(scope="session")
def fake_v4l2_mount() -> Iterator[FakeV4L2Mount]:
    try:
        mount = FakeV4L2Mount.start()
    except FuseUnavailable as exc:
        pytest.skip(f"FUSE fake cameras unavailable: {exc}")
    try:
        yield mount
    finally:
        mount.close()


@pytest.fixture
def fake_cameras(fake_v4l2_mount: FakeV4L2Mount) -> Iterator[FakeV4L2Mount]:
    # Reset before too: a previous test may have been interrupted before its teardown.
    fake_v4l2_mount.reset()
    yield fake_v4l2_mount
    fake_v4l2_mount.reset()
