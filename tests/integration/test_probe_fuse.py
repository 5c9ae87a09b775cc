"""probe() through real ioctls on the FUSE fake cameras: exact DeviceInfo per spec, errors, fds."""

from __future__ import annotations

import errno
import os
import time
from fractions import Fraction

import pytest

from camera_service.devices.errors import (
    DeviceBusy,
    DeviceGone,
    DeviceIOError,
    DevicePermission,
    NotAV4L2Device,
)
from camera_service.devices.v4l2 import DeviceInfo, Format, FrameSize, SizeRange, probe
from camera_service.testing import fakecams

pytestmark = pytest.mark.fuse

F = Fraction
# Raw capability words, spelled out instead of reusing fakecams' constants.
UVC_CAPS = 0x84A00001  # VIDEO_CAPTURE | EXT_PIX_FORMAT | META_CAPTURE | STREAMING | DEVICE_CAPS
UVC_VIDEO = 0x04200001  # VIDEO_CAPTURE | EXT_PIX_FORMAT | STREAMING
UVC_META = 0x04A00000  # META_CAPTURE | EXT_PIX_FORMAT | STREAMING
R30_15 = (F(30), F(15))


def uvc_formats() -> tuple[Format, ...]:
    return (
        Format(
            "YUYV",
            "YUYV 4:2:2",
            (
                FrameSize(640, 480, R30_15),
                FrameSize(320, 240, R30_15),
                FrameSize(1280, 720, (F(10), F(5))),
            ),
            flags=0,
        ),
        Format(
            "MJPG",
            "Motion-JPEG",
            (
                FrameSize(1920, 1080, R30_15),
                FrameSize(1280, 720, R30_15),
                FrameSize(640, 480, R30_15),
            ),
            flags=1,
        ),
    )


def test_typical_uvc_camera(fake_cameras):
    path = fake_cameras.add("video0", fakecams.uvc_camera())
    info = probe(path)
    assert info == DeviceInfo(
        path=path,
        driver="uvcvideo",
        card="Fake USB Camera",
        bus_info="usb-0000:00:14.0-1",
        version=0x060100,
        capabilities=UVC_CAPS,
        device_caps=UVC_VIDEO,
        formats=uvc_formats(),
        current_width=640,
        current_height=480,
        current_fourcc="YUYV",
        current_fps=F(30),
    )
    assert info.driver_version == "6.1.0"
    assert info.is_capture and not info.is_mplane


def test_stepwise_sizes_and_interval_range(fake_cameras):
    path = fake_cameras.add("video1", fakecams.stepwise_camera())
    rates = (F(30), F(15), F(10), F(15, 2), F(5))
    sizes = [
        (1920, 1080),
        (1280, 960),
        (1280, 720),
        (1024, 768),
        (800, 600),
        (640, 480),
        (640, 360),
        (352, 288),
        (320, 240),
    ]
    assert probe(path) == DeviceInfo(
        path=path,
        driver="fakestep",
        card="Fake Stepwise Camera",
        bus_info="platform:fakestep.0",
        version=0x06060C,
        capabilities=0x84000001,
        device_caps=0x04000001,
        formats=(
            Format(
                "NV12",
                "Y/UV 4:2:0",
                tuple(FrameSize(w, h, rates) for w, h in sizes),
                flags=0,
                size_range=SizeRange("stepwise", 320, 1920, 8, 240, 1080, 8),
            ),
        ),
        current_width=None,
        current_height=None,
        current_fourcc=None,
        current_fps=None,
    )


def test_continuous_sizes(fake_cameras):
    spec = fakecams.stepwise_camera()
    spec["formats"][0]["stepwise"] = {
        "min_width": 160,
        "max_width": 1280,
        "min_height": 120,
        "max_height": 720,
        "continuous": True,
    }
    spec["formats"][0]["interval_range"] = {"min": [1, 30], "max": [1, 1], "step": None}
    info = probe(fake_cameras.add("video9", spec))
    fmt = info.formats[0]
    assert fmt.size_range == SizeRange("continuous", 160, 1280, 1, 120, 720, 1)
    assert [(s.width, s.height) for s in fmt.sizes] == [
        (1280, 720),
        (800, 600),
        (640, 480),
        (640, 360),
        (352, 288),
        (320, 240),
        (176, 144),
        (160, 120),
    ]
    assert fmt.sizes[0].fps == (F(30), F(25), F(24), F(20), F(15), F(10), F(15, 2), F(5), F(1))


def test_fractional_rate(fake_cameras):
    path = fake_cameras.add("video2", fakecams.fractional_camera())
    assert probe(path) == DeviceInfo(
        path=path,
        driver="uvcvideo",
        card="Fake Slow Camera",
        bus_info="usb-0000:00:14.0-3",
        version=0x060100,
        capabilities=UVC_CAPS,
        device_caps=UVC_VIDEO,
        formats=(
            Format(
                "YUYV",
                "YUYV 4:2:2",
                (FrameSize(1280, 960, (F(15), F(15, 2))), FrameSize(640, 480, (F(15, 2),))),
                flags=0,
            ),
        ),
        current_width=1280,
        current_height=960,
        current_fourcc="YUYV",
        current_fps=F(15, 2),
    )


def test_metadata_node_is_not_capture_and_not_enumerated(fake_cameras):
    path = fake_cameras.add("video3", fakecams.metadata_node())
    before = fake_cameras.stats()["ioctls"]
    info = probe(path)
    assert info == DeviceInfo(
        path=path,
        driver="uvcvideo",
        card="Fake USB Camera",
        bus_info="usb-0000:00:14.0-1",
        version=0x060100,
        capabilities=UVC_CAPS,
        device_caps=UVC_META,
    )
    assert not info.is_capture
    assert fake_cameras.stats()["ioctls"] - before == 1  # QUERYCAP only


def test_multiplanar_node(fake_cameras):
    path = fake_cameras.add("video4", fakecams.mplane_camera())
    info = probe(path)
    assert info == DeviceInfo(
        path=path,
        driver="fakeisp",
        card="Fake ISP Camera",
        bus_info="platform:fakeisp.0",
        version=0x060137,
        capabilities=0x84001000,
        device_caps=0x04001000,
        formats=(
            Format("NV12", "Y/UV 4:2:0", (FrameSize(1920, 1080, (F(60), F(30))),), flags=0),
            Format(
                "YU12",
                "Planar YUV 4:2:0",
                (FrameSize(1920, 1080, (F(30),)), FrameSize(1280, 720, (F(30),))),
                flags=0,
            ),
        ),
        current_width=1920,
        current_height=1080,
        current_fourcc="NV12",
        current_fps=None,  # G_PARM answers EINVAL: no timeperframe
    )
    assert info.is_mplane and info.is_capture


def test_driver_without_device_caps_uses_capabilities(fake_cameras):
    path = fake_cameras.add("video5", fakecams.legacy_caps_camera())
    info = probe(path)
    assert (info.capabilities, info.device_caps, info.driver_version) == (
        0x04000001,
        0x04000001,
        "4.19.200",
    )
    assert info.formats == (Format("GREY", "8-bit Greyscale", (FrameSize(752, 480, (F(60),)),)),)
    assert (info.current_width, info.current_height, info.current_fourcc, info.current_fps) == (
        752,
        480,
        "GREY",
        F(60),
    )


def test_eintr_is_retried(fake_cameras):
    path = fake_cameras.add("video6", fakecams.eintr_camera(times=2))
    info = probe(path)
    assert info.card == "Fake Interrupted Camera"
    assert info.formats == uvc_formats() and info.current_fps == F(30)


def test_querycap_eio(fake_cameras):
    path = fake_cameras.add("video7", fakecams.querycap_eio_camera())
    with pytest.raises(DeviceIOError) as exc:
        probe(path)
    assert (exc.value.errno, exc.value.operation, exc.value.path) == (
        errno.EIO,
        "VIDIOC_QUERYCAP",
        path,
    )


def test_vanishing_mid_probe(fake_cameras):
    path = fake_cameras.add("video8", fakecams.vanishing_camera())
    with pytest.raises(DeviceGone) as exc:
        probe(path)
    assert (exc.value.errno, exc.value.operation) == (errno.ENODEV, "VIDIOC_ENUM_FMT")


def test_unlinked_while_open_gives_enodev(fake_cameras):
    path = fake_cameras.add("video10", fakecams.uvc_camera())
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        fake_cameras.remove("video10")
        assert not os.path.exists(path)
        assert os.listdir(fake_cameras.dev_dir) == []  # hard_remove: no .fuse_hidden files
        import fcntl

        with pytest.raises(OSError) as exc:
            fcntl.ioctl(fd, 0x80685600, bytearray(104))  # VIDIOC_QUERYCAP
        assert exc.value.errno == errno.ENODEV
    finally:
        os.close(fd)
    with pytest.raises(DeviceGone) as gone:
        probe(path)
    assert (gone.value.errno, gone.value.operation) == (errno.ENOENT, "open")


def test_busy_and_permission_and_not_v4l2(fake_cameras):
    busy = fake_cameras.add("video11", fakecams.busy_camera())
    with pytest.raises(DeviceBusy) as exc:
        probe(busy)
    assert (exc.value.errno, exc.value.operation) == (errno.EBUSY, "open")

    locked = fake_cameras.add_unreadable("video12", fakecams.uvc_camera())
    with pytest.raises(DevicePermission) as perm:
        probe(locked)
    assert (perm.value.errno, perm.value.operation) == (errno.EACCES, "open")
    fake_cameras.chmod("video12", 0o660)
    assert probe(locked).card == "Fake USB Camera"

    plain = os.path.join(fake_cameras.dev_dir, "video13")
    os.close(os.open(plain, os.O_CREAT | os.O_WRONLY, 0o666))  # no spec registered
    with pytest.raises(NotAV4L2Device) as tty:
        probe(plain)
    assert (tty.value.errno, tty.value.operation) == (errno.ENOTTY, "VIDIOC_QUERYCAP")


def test_enumeration_error_other_than_einval_is_raised(fake_cameras):
    spec = fakecams.uvc_camera()
    spec["faults"] = {"ioctl_errno": {"VIDIOC_ENUM_FRAMEINTERVALS": errno.EPROTO}}
    path = fake_cameras.add("video14", spec)
    with pytest.raises(DeviceIOError) as exc:
        probe(path)
    assert (exc.value.errno, exc.value.operation) == (errno.EPROTO, "VIDIOC_ENUM_FRAMEINTERVALS")


def test_unsupported_optional_queries_are_none(fake_cameras):
    spec = fakecams.uvc_camera()
    spec["faults"] = {
        "ioctl_errno": {
            "VIDIOC_G_FMT": errno.ENOTTY,
            "VIDIOC_G_PARM": errno.ENOTTY,
            "VIDIOC_ENUM_FRAMESIZES": errno.ENOTTY,
        }
    }
    info = probe(fake_cameras.add("video15", spec))
    assert [f.fourcc for f in info.formats] == ["YUYV", "MJPG"]
    assert all(f.sizes == () for f in info.formats)
    assert (info.current_width, info.current_fourcc, info.current_fps) == (None, None, None)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_leak_over_1000_probes(fake_cameras):
    good = fake_cameras.add("video20", fakecams.legacy_caps_camera())
    failing = fake_cameras.add("video21", fakecams.querycap_eio_camera())
    locked = fake_cameras.add_unreadable("video22", fakecams.uvc_camera())
    probe(good)  # warm up imports and caches before counting
    before = _open_fds()
    for i in range(1000):
        if i % 10 == 1:
            with pytest.raises(DeviceIOError):
                probe(failing)
        elif i % 10 == 2:
            with pytest.raises(DevicePermission):
                probe(locked)
        else:
            assert probe(good).card == "Fake Legacy Camera"
    assert _open_fds() == before
    # The daemon agrees: every open was released (RELEASE is sent asynchronously).
    deadline = time.monotonic() + 2
    while fake_cameras.stats()["open_handles"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_cameras.stats()["open_handles"] == 0


# ---- the fake's own lifecycle: teardown must always win ------------------------------------------


def _own_mount(fake_v4l2_mount) -> fakecams.FakeV4L2Mount:
    # A private mount, so the session one survives whatever these tests do to theirs.
    return fakecams.FakeV4L2Mount.start()


def test_teardown_releases_a_caller_stuck_in_a_hung_ioctl(fake_v4l2_mount):
    import threading

    mount = _own_mount(fake_v4l2_mount)
    path = mount.add("video0", fakecams.hanging_camera(seconds=5.0))
    outcome: list[object] = []

    def stuck_probe() -> None:
        try:
            outcome.append(probe(path))
        except Exception as exc:  # noqa: BLE001 - any ending is fine, hanging is not
            outcome.append(exc)

    thread = threading.Thread(target=stuck_probe, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while mount.stats()["open_handles"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert thread.is_alive()  # inside the daemon's hang
    t0 = time.monotonic()
    mount.close()
    thread.join(3)
    assert not thread.is_alive() and outcome
    assert time.monotonic() - t0 < 3
    assert not fakecams.is_mounted(mount.dev_dir) and not os.path.exists(mount.root)
    assert mount._proc.returncode is not None


def test_teardown_with_an_open_node_detaches_lazily(fake_v4l2_mount):
    mount = _own_mount(fake_v4l2_mount)
    path = mount.add("video0", fakecams.uvc_camera())
    fd = os.open(path, os.O_RDWR)
    try:
        mount.close(grace=0.5)
        assert mount.teardown_steps[:2] == ["fusermount3 -u", "fusermount3 -uz"]
        assert not fakecams.is_mounted(mount.dev_dir)
        assert mount._proc.poll() is not None
        import fcntl

        # The daemon is gone: the leftover fd fails instead of blocking.
        with pytest.raises(OSError) as exc:
            fcntl.ioctl(fd, 0x80685600, bytearray(104))
        assert exc.value.errno in (errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV)
    finally:
        os.close(fd)


def test_teardown_kills_a_daemon_that_does_not_exit(fake_v4l2_mount):
    import signal

    mount = _own_mount(fake_v4l2_mount)
    mount.add("video0", fakecams.uvc_camera())
    os.kill(mount._proc.pid, signal.SIGSTOP)  # alive but never answers or exits
    mount.close(grace=0.3)
    assert "SIGKILL" in mount.teardown_steps
    assert mount._proc.returncode == -signal.SIGKILL
    assert not fakecams.is_mounted(mount.dev_dir)


def test_unavailability_reasons_name_the_missing_piece(monkeypatch):
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name == "fusermount3" else real_which(name)
    )
    reason = fakecams.fuse_unavailable_reason()
    assert reason == "fusermount3 not found (install the Debian package fuse3)"
    with pytest.raises(fakecams.FuseUnavailable, match="fusermount3 not found"):
        fakecams.FakeV4L2Mount.start()
    monkeypatch.undo()

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if p == "/dev/fuse" else real_access(p, m))
    assert fakecams.fuse_unavailable_reason() == (
        "/dev/fuse is not readable and writable by this user"
    )
