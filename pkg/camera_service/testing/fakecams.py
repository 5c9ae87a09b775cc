"""Fake V4L2 cameras on a FUSE mount, for tests, benchmarks and the demo.

`FakeV4L2Mount.start()` runs `_fakecamfs_daemon.py` in a subprocess; its regular files answer the
discovery ioctls from camera specs (plain JSON dicts built by the factories below), and every
spec with a single-planar capture format also streams like a UVC camera: S_FMT/TRY_FMT/S_PARM,
REQBUFS/QUERYBUF/QBUF/DQBUF with MMAP buffers (mmap of the node shows a fixed test frame per
buffer: a real JPEG for MJPG, colour bars for YUYV), STREAMON/STREAMOFF at the spec's frame
interval, and poll() readiness. Only one open file of a node may hold buffers (EBUSY for the
others, as uvcvideo). Adding and
removing cameras is done with syscalls on the mount, exactly as udev does on /dev, so the kernel
raises the real inotify events:

    add(name, spec)      register over the control socket (no fs event), then
                         open(O_CREAT|O_EXCL) -> IN_CREATE, chmod -> IN_ATTRIB
    add_unreadable(...)  create with mode 0: open() gets EACCES until chmod() (IN_ATTRIB)
    remove(name)         unlink -> IN_DELETE; fds still open on it get ENODEV

Teardown escalates (fusermount3 -u, -uz, wait, fusectl abort, SIGKILL, umount -l) because a
FUSE request that a daemon never answers leaves its caller in an unkillable wait.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import errno
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Self

DAEMON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_fakecamfs_daemon.py")

# Capability bits (linux/videodev2.h); specs carry the raw numbers a driver would report.
CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_OUTPUT = 0x00000002
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_EXT_PIX_FORMAT = 0x00200000
CAP_META_CAPTURE = 0x00800000
CAP_STREAMING = 0x04000000
CAP_DEVICE_CAPS = 0x80000000
FMT_FLAG_COMPRESSED = 0x0001

# What the parent reports for a UVC camera: video + metadata nodes, as uvcvideo does.
UVC_ALL_CAPS = (
    CAP_VIDEO_CAPTURE | CAP_META_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT | CAP_DEVICE_CAPS
)
UVC_VIDEO_NODE_CAPS = CAP_VIDEO_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT
UVC_META_NODE_CAPS = CAP_META_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT


# The six ioctls a probe makes; the fake answers these (and fault specs name them).
PROBE_IOCTLS = (
    "VIDIOC_QUERYCAP",
    "VIDIOC_ENUM_FMT",
    "VIDIOC_ENUM_FRAMESIZES",
    "VIDIOC_ENUM_FRAMEINTERVALS",
    "VIDIOC_G_FMT",
    "VIDIOC_G_PARM",
)
# The streaming ioctls the fake also answers; fault specs ("ioctl_errno", "ioctl_eintr",
# "hang", "gone_after") may name them too.
STREAM_IOCTLS = (
    "VIDIOC_S_FMT",
    "VIDIOC_TRY_FMT",
    "VIDIOC_S_PARM",
    "VIDIOC_REQBUFS",
    "VIDIOC_QUERYBUF",
    "VIDIOC_QBUF",
    "VIDIOC_DQBUF",
    "VIDIOC_STREAMON",
    "VIDIOC_STREAMOFF",
    "VIDIOC_ENUMINPUT",
    "VIDIOC_G_INPUT",
    "VIDIOC_S_INPUT",
)


def kernel_version(major: int, minor: int, patch: int) -> int:
    return (major << 16) | (minor << 8) | patch


# ---- camera specs --------------------------------------------------------------------------


def camera_spec(
    *,
    card: str = "Fake USB Camera",
    driver: str = "uvcvideo",
    bus_info: str = "usb-0000:00:14.0-1",
    version: int = kernel_version(6, 1, 0),
    capabilities: int = UVC_ALL_CAPS,
    device_caps: int = UVC_VIDEO_NODE_CAPS,
    formats: list[dict] | None = None,
    current: dict | None = None,
    timeperframe: tuple[int, int] | None = None,
    faults: dict | None = None,
) -> dict:
    """A spec dict the daemon understands. `current` is {"width", "height", "fourcc"}.

    `faults` (all optional): {"ioctl_errno": {IOCTL_NAME: errno}, "ioctl_eintr": {IOCTL_NAME:
    times per open}, "hang": {"ioctl": IOCTL_NAME, "seconds": s}, "gone_after": IOCTL_NAME,
    "open_errno": errno, "stall_after_frames": n (frames delivered after each STREAMON)}.
    """
    spec: dict[str, Any] = {
        "driver": driver,
        "card": card,
        "bus_info": bus_info,
        "version": version,
        "capabilities": capabilities,
        "device_caps": device_caps,
        "formats": formats or [],
        "current": current,
        "timeperframe": list(timeperframe) if timeperframe else None,
    }
    if faults:
        spec["faults"] = faults
    return spec


def discrete_format(
    fourcc: str,
    description: str,
    sizes: list[tuple[int, int, list[tuple[int, int]]]],
    flags: int = 0,
) -> dict:
    """A format with discrete sizes: [(width, height, [(interval_num, interval_den), ...])]."""
    return {
        "fourcc": fourcc,
        "description": description,
        "flags": flags,
        "sizes": [
            {"width": w, "height": h, "intervals": [list(i) for i in intervals]}
            for w, h, intervals in sizes
        ],
    }


FPS_30_15 = [(1, 30), (1, 15)]


def uvc_camera(card: str = "Fake USB Camera", bus_info: str = "usb-0000:00:14.0-1") -> dict:
    """A typical UVC webcam: YUYV and MJPG, several discrete sizes at 30 and 15 fps.

    It streams (starting as YUYV 640x480 at 30 fps) like every capture spec."""
    return camera_spec(
        card=card,
        bus_info=bus_info,
        formats=[
            discrete_format(
                "YUYV",
                "YUYV 4:2:2",
                [(640, 480, FPS_30_15), (320, 240, FPS_30_15), (1280, 720, [(1, 10), (1, 5)])],
            ),
            discrete_format(
                "MJPG",
                "Motion-JPEG",
                [(1920, 1080, FPS_30_15), (1280, 720, FPS_30_15), (640, 480, FPS_30_15)],
                flags=FMT_FLAG_COMPRESSED,
            ),
        ],
        current={"width": 640, "height": 480, "fourcc": "YUYV"},
        timeperframe=(1, 30),
    )


def streaming_camera(
    card: str = "Fake Streaming Camera", bus_info: str = "usb-0000:00:14.0-2"
) -> dict:
    """A UVC webcam set up for streaming tests: MJPG and YUYV at 1280x720 and 640x480, 30 and
    15 fps; current MJPG 1280x720 at 30 fps."""
    sizes = [(1280, 720, FPS_30_15), (640, 480, FPS_30_15)]
    return camera_spec(
        card=card,
        bus_info=bus_info,
        formats=[
            discrete_format("MJPG", "Motion-JPEG", sizes, flags=FMT_FLAG_COMPRESSED),
            discrete_format("YUYV", "YUYV 4:2:2", sizes),
        ],
        current={"width": 1280, "height": 720, "fourcc": "MJPG"},
        timeperframe=(1, 30),
    )


def yuyv_only_camera(card: str = "Fake YUYV Camera", bus_info: str = "usb-0000:00:14.0-4") -> dict:
    """A camera without MJPG: YUYV 1280x720 and 640x480 at 30 and 15 fps (current 1280x720)."""
    return camera_spec(
        card=card,
        bus_info=bus_info,
        formats=[
            discrete_format("YUYV", "YUYV 4:2:2", [(1280, 720, FPS_30_15), (640, 480, FPS_30_15)])
        ],
        current={"width": 1280, "height": 720, "fourcc": "YUYV"},
        timeperframe=(1, 30),
    )


def streamon_fails_camera() -> dict:
    """A streaming camera whose VIDIOC_STREAMON answers EIO (it probes and maps fine)."""
    spec = streaming_camera(card="Fake Failing Camera")
    spec["faults"] = {"ioctl_errno": {"VIDIOC_STREAMON": errno.EIO}}
    return spec


def stalling_camera(frames: int = 3) -> dict:
    """A streaming camera that delivers `frames` frames after each STREAMON, then none, with no
    error: DQBUF keeps answering EAGAIN and poll() times out, as with a stalled sensor."""
    spec = streaming_camera(card="Fake Stalling Camera")
    spec["faults"] = {"stall_after_frames": frames}
    return spec


def stepwise_camera() -> dict:
    """Stepwise sizes 320x240 .. 1920x1080 in steps of 8, with a stepwise interval range."""
    return camera_spec(
        card="Fake Stepwise Camera",
        driver="fakestep",
        bus_info="platform:fakestep.0",
        version=kernel_version(6, 6, 12),
        capabilities=CAP_VIDEO_CAPTURE | CAP_STREAMING | CAP_DEVICE_CAPS,
        device_caps=CAP_VIDEO_CAPTURE | CAP_STREAMING,
        formats=[
            {
                "fourcc": "NV12",
                "description": "Y/UV 4:2:0",
                "flags": 0,
                "stepwise": {
                    "min_width": 320,
                    "max_width": 1920,
                    "step_width": 8,
                    "min_height": 240,
                    "max_height": 1080,
                    "step_height": 8,
                },
                # Intervals 1/30 .. 1/5 s in steps of 1/30 s (30, 15, 10, 7.5, 6, 5 fps are on the grid).
                "interval_range": {"min": [1, 30], "max": [1, 5], "step": [1, 30]},
            }
        ],
        current=None,
        timeperframe=None,
    )


def fractional_camera() -> dict:
    """A slow sensor whose only rates are 15 and 7.5 fps (interval 2/15 s)."""
    return camera_spec(
        card="Fake Slow Camera",
        bus_info="usb-0000:00:14.0-3",
        formats=[
            discrete_format(
                "YUYV", "YUYV 4:2:2", [(1280, 960, [(1, 15), (2, 15)]), (640, 480, [(2, 15)])]
            )
        ],
        current={"width": 1280, "height": 960, "fourcc": "YUYV"},
        timeperframe=(2, 15),
    )


def metadata_node(card: str = "Fake USB Camera") -> dict:
    """The second node of a UVC camera: metadata capture only, never a camera."""
    return camera_spec(card=card, device_caps=UVC_META_NODE_CAPS, formats=[], current=None)


def mplane_camera() -> dict:
    """A multi-planar capture node (ISP / SoC style), with no timeperframe support."""
    return camera_spec(
        card="Fake ISP Camera",
        driver="fakeisp",
        bus_info="platform:fakeisp.0",
        version=kernel_version(6, 1, 55),
        capabilities=CAP_VIDEO_CAPTURE_MPLANE | CAP_STREAMING | CAP_DEVICE_CAPS,
        device_caps=CAP_VIDEO_CAPTURE_MPLANE | CAP_STREAMING,
        formats=[
            discrete_format("NV12", "Y/UV 4:2:0", [(1920, 1080, [(1, 60), (1, 30)])]),
            discrete_format(
                "YU12", "Planar YUV 4:2:0", [(1920, 1080, [(1, 30)]), (1280, 720, [(1, 30)])]
            ),
        ],
        current={"width": 1920, "height": 1080, "fourcc": "NV12"},
        timeperframe=None,
    )


def legacy_caps_camera() -> dict:
    """An old driver without V4L2_CAP_DEVICE_CAPS: `capabilities` describes the node."""
    return camera_spec(
        card="Fake Legacy Camera",
        driver="fakelegacy",
        bus_info="pci:0000:00:05.0",
        version=kernel_version(4, 19, 200),
        capabilities=CAP_VIDEO_CAPTURE | CAP_STREAMING,
        device_caps=0,
        formats=[discrete_format("GREY", "8-bit Greyscale", [(752, 480, [(1, 60)])])],
        current={"width": 752, "height": 480, "fourcc": "GREY"},
        timeperframe=(1, 60),
    )


def querycap_eio_camera() -> dict:
    """A node whose QUERYCAP fails with EIO (a camera with broken firmware)."""
    return camera_spec(
        card="Fake Broken Camera", faults={"ioctl_errno": {"VIDIOC_QUERYCAP": errno.EIO}}
    )


def vanishing_camera() -> dict:
    """A node that answers QUERYCAP and then is gone (ENODEV), like an unplug mid-probe."""
    spec = uvc_camera(card="Fake Vanishing Camera")
    spec["faults"] = {"gone_after": "VIDIOC_QUERYCAP"}
    return spec


def hanging_camera(seconds: float = 2.0, ioctl: str = "VIDIOC_QUERYCAP") -> dict:
    """A node whose `ioctl` takes `seconds` to answer (the daemon caps it at 5 s).

    The delay is a bounded wait inside the daemon's handler for this node only; libfuse runs
    handlers on several threads, so every other node keeps answering meanwhile, and the control
    commands `release` / `reset` end the wait early so teardown never waits for it.
    """
    spec = uvc_camera(card="Fake Hanging Camera")
    spec["faults"] = {"hang": {"ioctl": ioctl, "seconds": seconds}}
    return spec


def busy_camera() -> dict:
    """A node whose open() fails with EBUSY."""
    spec = uvc_camera(card="Fake Busy Camera")
    spec["faults"] = {"open_errno": errno.EBUSY}
    return spec


def eintr_camera(times: int = 3) -> dict:
    """Every ioctl kind answers EINTR `times` times per open before answering normally."""
    spec = uvc_camera(card="Fake Interrupted Camera")
    spec["faults"] = {"ioctl_eintr": {name: times for name in PROBE_IOCTLS}}
    return spec


def many_cameras(count: int = 32, first: int = 0) -> dict[str, dict]:
    """`count` distinct UVC cameras keyed by node name (video{first} ...)."""
    return {
        f"video{n}": uvc_camera(card=f"Fake Camera {n}", bus_info=f"usb-0000:00:14.0-{n + 1}")
        for n in range(first, first + count)
    }


# ---- availability --------------------------------------------------------------------------


class FuseUnavailable(RuntimeError):
    """FUSE cannot be used here; the message says why (tests skip with it)."""


def fuse_unavailable_reason() -> str | None:
    """None when the fake can run here, else a sentence saying what is missing."""
    if not sys.platform.startswith("linux"):
        return f"FUSE fake cameras need Linux (this is {sys.platform})"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if shutil.which("fusermount3") is None:
        return "fusermount3 not found (install the Debian package fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "the Python package mfusepy is not installed"
    if ctypes.util.find_library("fuse3") is None:
        return "libfuse3 not found (install the Debian package libfuse3-3)"
    return None


def _unescape_mountinfo(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def is_mounted(path: str) -> bool:
    """From /proc/self/mountinfo: unlike os.path.ismount this never touches a dead mount."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return any(_unescape_mountinfo(line.split()[4]) == path for line in f)
    except OSError:
        return False


# ---- the mount -----------------------------------------------------------------------------


class FakeV4L2Mount:
    """A running fake-camera filesystem. `dev_dir` is what the monitor watches."""

    def __init__(self, root: str, proc: subprocess.Popen, verbose: bool = False) -> None:
        self.root = root
        self.dev_dir = os.path.join(root, "dev")
        self.control_path = os.path.join(root, "ctl.sock")
        self.log_path = os.path.join(root, "daemon.log")
        self._proc = proc
        self._sock: socket.socket | None = None
        self._sock_file: Any = None
        self._mu = threading.Lock()
        self._fuse_minor: int | None = None
        self._lifeline: int | None = None
        self.teardown_steps: list[str] = []
        self.closed = False

    # -- lifecycle --

    @classmethod
    def start(
        cls, root: str | None = None, timeout: float = 10.0, verbose: bool = False
    ) -> FakeV4L2Mount:
        reason = fuse_unavailable_reason()
        if reason:
            raise FuseUnavailable(reason)
        # realpath: mountinfo lists resolved paths, and /tmp may be a symlink.
        root = os.path.realpath(root or tempfile.mkdtemp(prefix="fakecams-"))
        dev_dir = os.path.join(root, "dev")
        os.makedirs(dev_dir, exist_ok=True)
        log_path = os.path.join(root, "daemon.log")
        cmd = [sys.executable, DAEMON, dev_dir, os.path.join(root, "ctl.sock"), "--log", log_path]
        if verbose:
            cmd.append("--verbose")
        env = dict(os.environ, FUSE_LIBRARY_NAME="fuse3")
        # The daemon unmounts itself when this pipe closes, i.e. when this process ends.
        lifeline_r, lifeline_w = os.pipe()
        cmd += ["--parent-fd", str(lifeline_r)]
        try:
            with open(os.path.join(root, "daemon.out"), "wb") as out:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=env,
                    close_fds=True,
                    pass_fds=(lifeline_r,),
                )
        except BaseException:
            os.close(lifeline_w)
            raise
        finally:
            os.close(lifeline_r)
        mount = cls(root, proc, verbose)
        mount._lifeline = lifeline_w
        try:
            mount._wait_ready(timeout)
        except BaseException:
            mount.close()
            raise
        return mount

    def _daemon_output(self) -> str:
        chunks = []
        for name in ("daemon.out", "daemon.log"):
            with (
                contextlib.suppress(OSError),
                open(os.path.join(self.root, name), errors="replace") as f,
            ):
                chunks.append(f.read()[-4000:])
        return "\n".join(c for c in chunks if c)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                output = self._daemon_output()
                lowered = output.lower()
                if "permission denied" in lowered or "operation not permitted" in lowered:
                    raise FuseUnavailable(
                        f"mounting FUSE is not permitted here: {output.strip()[-500:]}"
                    )
                raise RuntimeError(
                    f"fake camera daemon exited with {self._proc.returncode}:\n{output}"
                )
            if is_mounted(self.dev_dir) and os.path.exists(self.control_path):
                with contextlib.suppress(OSError):
                    self._request({"op": "ping"})
                    self._fuse_minor = os.minor(os.stat(self.dev_dir).st_dev)
                    return
            time.sleep(0.005)
        raise RuntimeError(
            f"fake camera mount not ready after {timeout} s:\n{self._daemon_output()}"
        )

    def close(self, grace: float = 5.0) -> None:
        """Unmount and stop the daemon, escalating until both are really gone.

        `grace` is how long the daemon gets to exit after the unmount before it is aborted and
        killed. The steps taken are recorded in `teardown_steps`.
        """
        if self.closed:
            return
        self.closed = True
        steps = self.teardown_steps
        # End any deliberate hang first so no caller stays blocked in the kernel.
        with contextlib.suppress(Exception):
            self._request({"op": "release"}, timeout=1.0)
        self._close_socket()
        if is_mounted(self.dev_dir):
            steps.append("fusermount3 -u")
            if _run(["fusermount3", "-u", self.dev_dir]) != 0:
                # EBUSY while something still has a node open: detach lazily instead.
                steps.append("fusermount3 -uz")
                _run(["fusermount3", "-uz", self.dev_dir])
        try:
            self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            if self._abort_connection():
                steps.append("fusectl abort")
            steps.append("SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if is_mounted(self.dev_dir):
            steps.append("umount -l")
            _run(["umount", "-l", self.dev_dir])
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _abort_connection(self) -> bool:
        # fusectl's abort fails every pending request with ECONNABORTED; only if it is mounted.
        if self._fuse_minor is None:
            return False
        try:
            with open(f"/sys/fs/fuse/connections/{self._fuse_minor}/abort", "w") as f:
                f.write("1")
        except OSError:
            return False
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control socket --

    def _close_socket(self) -> None:
        with self._mu:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock_file.close()
                    self._sock.close()
            self._sock = self._sock_file = None

    def _request(self, req: dict, timeout: float = 10.0) -> dict:
        with self._mu:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(self.control_path)
                self._sock, self._sock_file = sock, sock.makefile("rwb")
            self._sock.settimeout(timeout)
            try:
                self._sock_file.write(json.dumps(req).encode() + b"\n")
                self._sock_file.flush()
                line = self._sock_file.readline()
            except OSError:
                self._sock.close()
                self._sock = self._sock_file = None
                raise
        if not line:
            raise ConnectionError("fake camera daemon closed its control socket")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"fake camera daemon refused {req.get('op')}: {reply.get('error')}")
        return reply

    # -- cameras --

    def path(self, name: str) -> str:
        return os.path.join(self.dev_dir, name)

    def register(self, name: str, spec: dict) -> None:
        """Tell the daemon which spec a file created at `name` will serve (no fs event)."""
        self._request({"op": "register", "path": name, "spec": spec})

    def set_faults(self, name: str, faults: dict) -> None:
        """Replace the faults of a registered spec and of the live node, if any."""
        self._request({"op": "faults", "path": name, "faults": faults})

    def release_hangs(self) -> None:
        self._request({"op": "release"})

    def stats(self) -> dict:
        return self._request({"op": "stats"})

    def add(self, name: str, spec: dict, mode: int = 0o666) -> str:
        """Plug a camera in the way udev does: create (IN_CREATE), then chmod (IN_ATTRIB)."""
        self.register(name, spec)
        path = self.path(name)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        os.close(fd)
        os.chmod(path, mode)
        return path

    def add_unreadable(self, name: str, spec: dict) -> str:
        """A node that exists but cannot be opened (EACCES) until `chmod` gives it a read bit."""
        self.register(name, spec)
        path = self.path(name)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0))
        return path

    def chmod(self, name: str, mode: int) -> None:
        os.chmod(self.path(name), mode)

    def remove(self, name: str) -> None:
        """Unplug: unlink through the mount (IN_DELETE); open fds then get ENODEV."""
        os.unlink(self.path(name))

    def mkdir(self, name: str) -> str:
        path = self.path(name)
        os.mkdir(path)
        return path

    def reset(self) -> None:
        """Forget every spec, end hangs, and unlink whatever a test left in the mount."""
        self._request({"op": "reset"})
        for dirpath, dirnames, filenames in os.walk(self.dev_dir, topdown=False):
            for name in filenames:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
            for name in dirnames:
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(os.path.join(dirpath, name))


def _run(cmd: list[str]) -> int:
    try:
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        ).returncode
    except (OSError, subprocess.TimeoutExpired):
        return -1
