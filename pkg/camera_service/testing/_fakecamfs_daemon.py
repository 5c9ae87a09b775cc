"""FUSE daemon serving fake V4L2 nodes as regular files (run as a subprocess by fakecams.py).

    python _fakecamfs_daemon.py MOUNTPOINT CONTROL_SOCKET [--log FILE] [--verbose]

Files created through the mount answer VIDIOC_QUERYCAP, ENUM_FMT, ENUM_FRAMESIZES,
ENUM_FRAMEINTERVALS, G_FMT and G_PARM from a camera spec (a JSON dict) that the test registered
for that path over the control socket beforehand. Registering goes through the socket, never
through the mount, so it makes no inotify event; the test then creates, chmods and unlinks the
file through the mount, which gives the real IN_CREATE / IN_ATTRIB / IN_DELETE.

The struct layouts are written out here with `struct` on purpose instead of borrowing the
project's cffi module: the fake is a second, independent reading of <linux/videodev2.h>, so a
layout mistake on either side shows up as a test failure instead of cancelling out. They are
the LP64 layouts (x86_64, aarch64); G_FMT checks the size the caller encoded in the request.

Rules from the measurements in the design note FUSE-FAKE-CAMERAS.md:
  * libfuse chdir()s to "/", so every path this process uses is made absolute first;
  * mfusepy registers any attribute named like a FUSE operation, so the mutex is `_mu`;
  * a handler must not block: the only wait is the opt-in "hang" fault, which is bounded
    (MAX_HANG_SECONDS) and is cut short by the control commands `release` and `reset`.

This module runs in a subprocess and is excluded from coverage; it imports nothing from
camera_service so that the daemon starts fast and stands on its own.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import socketserver
import stat
import struct
import sys
import threading
import time
from typing import Any

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

import mfusepy

log = logging.getLogger("fakecamfs")

MAX_HANG_SECONDS = 5.0

# Device capability bits and buffer types (linux/videodev2.h).
CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
BUF_TYPE_VIDEO_CAPTURE_MPLANE = 9
FRMSIZE_DISCRETE, FRMSIZE_CONTINUOUS, FRMSIZE_STEPWISE = 1, 2, 3
FRMIVAL_DISCRETE, FRMIVAL_CONTINUOUS, FRMIVAL_STEPWISE = 1, 2, 3
CAP_TIMEPERFRAME = 0x1000

# ioctl numbers are _IOC(dir, 'V', nr, size): identify by nr, check the size the caller sent.
IOC_TYPE_V = ord("V")
NR_NAMES = {
    0: "VIDIOC_QUERYCAP",
    2: "VIDIOC_ENUM_FMT",
    4: "VIDIOC_G_FMT",
    21: "VIDIOC_G_PARM",
    74: "VIDIOC_ENUM_FRAMESIZES",
    75: "VIDIOC_ENUM_FRAMEINTERVALS",
}
SIZES = {
    "VIDIOC_QUERYCAP": 104,
    "VIDIOC_ENUM_FMT": 64,
    "VIDIOC_G_FMT": 208,  # type + 4 bytes padding (the union holds pointers) + 200
    "VIDIOC_G_PARM": 204,
    "VIDIOC_ENUM_FRAMESIZES": 44,
    "VIDIOC_ENUM_FRAMEINTERVALS": 52,
}

CAPABILITY = struct.Struct("=16s32s32sIII12x")
FMTDESC = struct.Struct("=III32sII12x")
FRMSIZE_DISCRETE_S = struct.Struct("=IIIII16x8x")
FRMSIZE_STEPWISE_S = struct.Struct("=IIIIIIIII8x")
FRMIVAL_DISCRETE_S = struct.Struct("=IIIIIII16x8x")
FRMIVAL_STEPWISE_S = struct.Struct("=11I8x")
PIX_FORMAT = struct.Struct("=IIIIIIII16x")  # first 8 of the 12 u32 of v4l2_pix_format
PIX_FORMAT_MPLANE = struct.Struct("=IIIII")  # width height pixelformat field colorspace
CAPTUREPARM = struct.Struct("=IIIIII")  # capability capturemode num den extendedmode readbuffers


def fourcc(text: str) -> int:
    return int.from_bytes(text.encode("ascii").ljust(4, b" ")[:4], "little")


def _cstr(text: str, size: int) -> bytes:
    return text.encode("utf-8")[: size - 1]


class Fault(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


class Node:
    __slots__ = ("atime", "ctime", "gid", "kind", "mode", "mtime", "spec", "uid", "unlinked")

    def __init__(self, kind: int, mode: int, spec: dict | None = None) -> None:
        now = time.time_ns()
        self.kind = kind
        self.mode = mode & 0o7777
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.atime = self.mtime = self.ctime = now
        self.spec = spec
        self.unlinked = False


class Handle:
    __slots__ = ("eintr_left", "gone", "node")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.gone = False
        # Per-open countdown of EINTR answers, so the caller's retry loop is exercised.
        self.eintr_left = dict((node.spec or {}).get("faults", {}).get("ioctl_eintr", {}))


class FakeCamFS(mfusepy.Operations):
    use_ns = True
    # Operations on an open file arrive without a path. Without this, libfuse's high-level
    # layer holds a lock on the path for the whole request, so a hanging ioctl would block an
    # unlink of the same node: real unplugs are never held up by a stuck ioctl.
    flag_nullpath_ok = True
    flag_nopath = True

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._release = threading.Event()
        self.nodes: dict[str, Node] = {"/": Node(stat.S_IFDIR, 0o755)}
        self.registered: dict[str, dict] = {}
        self.handles: dict[int, Handle] = {}
        self.dir_handles: dict[int, str] = {}
        self.next_fh = 1
        self.opens = 0
        self.ioctls = 0
        self.verbose = False

    # ---- control commands (called from the control thread) --------------------------------

    def command(self, req: dict) -> dict:
        op = req.get("op")
        if op == "ping":
            return {"ok": True}
        if op == "register":
            with self._mu:
                self.registered[_norm(req["path"])] = req["spec"]
            return {"ok": True}
        if op == "unregister":
            with self._mu:
                self.registered.pop(_norm(req["path"]), None)
            return {"ok": True}
        if op == "faults":
            path = _norm(req["path"])
            with self._mu:
                faults = dict(req.get("faults") or {})
                if path in self.registered:
                    self.registered[path] = {**self.registered[path], "faults": faults}
                node = self.nodes.get(path)
                if node is not None and node.spec is not None:
                    node.spec = {**node.spec, "faults": faults}
            return {"ok": True}
        if op == "release":
            self._wake_hung()
            return {"ok": True}
        if op == "reset":
            with self._mu:
                self.registered.clear()
            self._wake_hung()
            return {"ok": True}
        if op == "stats":
            with self._mu:
                return {
                    "ok": True,
                    "open_handles": len(self.handles),
                    "opens": self.opens,
                    "ioctls": self.ioctls,
                    "nodes": sorted(p for p in self.nodes if p != "/"),
                }
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _wake_hung(self) -> None:
        # Wake every handler currently waiting in a hang fault, then arm a fresh event.
        with self._mu:
            old, self._release = self._release, threading.Event()
        old.set()

    # ---- tree helpers (caller holds _mu) -----------------------------------------------------

    def _node(self, path: str) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return node

    def _parent_dir(self, path: str) -> Node:
        parent = self.nodes.get(os.path.dirname(path))
        if parent is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        if parent.kind != stat.S_IFDIR:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return parent

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [
            p[len(prefix) :]
            for p in self.nodes
            if p != "/" and p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]

    def _new_handle(self, node: Node) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = Handle(node)
        self.opens += 1
        return fh

    # ---- FUSE operations ---------------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self._mu:
            handle = self.handles.get(fh) if fh is not None else None
            if handle is not None:
                node = handle.node
            else:
                fallback = self.dir_handles.get(fh, "") if fh is not None else ""
                node = self._node(path if path is not None else fallback)
            is_dir = node.kind == stat.S_IFDIR
            return {
                "st_mode": node.kind | node.mode,
                "st_nlink": 2 if is_dir else (0 if node.unlinked else 1),
                "st_size": 0,
                "st_uid": node.uid,
                "st_gid": node.gid,
                "st_atime": node.atime,
                "st_mtime": node.mtime,
                "st_ctime": node.ctime,
            }

    def opendir(self, path: str) -> int:
        # With nullpath_ok, readdir gets no path: remember it per directory handle.
        with self._mu:
            if self._node(path).kind != stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            fh = self.next_fh
            self.next_fh += 1
            self.dir_handles[fh] = path
            return fh

    def releasedir(self, path: str | None, fh: int) -> int:
        with self._mu:
            self.dir_handles.pop(fh, None)
        return 0

    def readdir(self, path: str | None, fh: int) -> list[str]:
        with self._mu:
            if path is None:
                path = self.dir_handles.get(fh, "")
            if self._node(path).kind != stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            return [".", "..", *sorted(self._children(path))]

    def mkdir(self, path: str, mode: int) -> int:
        with self._mu:
            self._parent_dir(path)
            if path in self.nodes:
                raise mfusepy.FuseOSError(errno.EEXIST)
            self.nodes[path] = Node(stat.S_IFDIR, mode)
        return 0

    def rmdir(self, path: str) -> int:
        with self._mu:
            node = self._node(path)
            if node.kind != stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            if self._children(path):
                raise mfusepy.FuseOSError(errno.ENOTEMPTY)
            del self.nodes[path]
        return 0

    def create(self, path: str, mode: int, flags: int) -> int:
        with self._mu:
            self._parent_dir(path)
            if path in self.nodes:
                raise mfusepy.FuseOSError(errno.EEXIST)
            node = Node(stat.S_IFREG, mode, self.registered.get(path))
            self.nodes[path] = node
            return self._new_handle(node)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        # Only regular files: a character device would be routed to a real driver by the kernel.
        if not stat.S_ISREG(mode):
            raise mfusepy.FuseOSError(errno.EPERM)
        with self._mu:
            self._parent_dir(path)
            if path in self.nodes:
                raise mfusepy.FuseOSError(errno.EEXIST)
            self.nodes[path] = Node(stat.S_IFREG, mode, self.registered.get(path))
        return 0

    def open(self, path: str, flags: int) -> int:
        with self._mu:
            node = self._node(path)
            faults = (node.spec or {}).get("faults", {})
            # As root the kernel would let us in whatever the mode; emulate the udev window in
            # which the node exists but its permissions are not set yet.
            if not node.mode & 0o444:
                raise mfusepy.FuseOSError(errno.EACCES)
            if faults.get("open_errno"):
                raise mfusepy.FuseOSError(int(faults["open_errno"]))
            return self._new_handle(node)

    def release(self, path: str, fh: int) -> int:
        with self._mu:
            self.handles.pop(fh, None)
        return 0

    def unlink(self, path: str) -> int:
        with self._mu:
            node = self._node(path)
            if node.kind == stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.EISDIR)
            del self.nodes[path]
            node.unlinked = True
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._mu:
            node = self._node(old)
            self._parent_dir(new)
            target = self.nodes.get(new)
            if target is not None:
                if target.kind == stat.S_IFDIR and self._children(new):
                    raise mfusepy.FuseOSError(errno.ENOTEMPTY)
                target.unlinked = True
            moved = {old: node}
            if node.kind == stat.S_IFDIR:
                prefix = old + "/"
                moved.update({p: n for p, n in self.nodes.items() if p.startswith(prefix)})
            for p in moved:
                del self.nodes[p]
            for p, n in moved.items():
                self.nodes[new + p[len(old) :]] = n
            for fh, p in list(self.dir_handles.items()):
                if p in moved:
                    self.dir_handles[fh] = new + p[len(old) :]
        return 0

    def chmod(self, path: str, mode: int) -> int:
        with self._mu:
            node = self._node(path)
            node.mode = mode & 0o7777
            node.ctime = time.time_ns()
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        with self._mu:
            node = self._node(path)
            if uid != -1 and uid != 0xFFFFFFFF:
                node.uid = uid
            if gid != -1 and gid != 0xFFFFFFFF:
                node.gid = gid
            node.ctime = time.time_ns()
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        with self._mu:
            node = self._node(path)
            now = time.time_ns()
            node.atime, node.mtime = times if times else (now, now)
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return b""

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return len(data)

    def ioctl(self, path: str, cmd: int, arg: Any, fh: int, flags: int, data: Any) -> int:
        cmd &= 0xFFFFFFFF
        size = (cmd >> 16) & 0x3FFF
        name = NR_NAMES.get(cmd & 0xFF) if (cmd >> 8) & 0xFF == IOC_TYPE_V else None
        with self._mu:
            self.ioctls += 1
            handle = self.handles.get(fh)
            if handle is None or handle.gone or handle.node.unlinked:
                raise mfusepy.FuseOSError(errno.ENODEV)
            spec = handle.node.spec
            if spec is None or name is None or SIZES[name] != size:
                raise mfusepy.FuseOSError(errno.ENOTTY)
            faults = spec.get("faults", {})
            if handle.eintr_left.get(name, 0) > 0:
                handle.eintr_left[name] -= 1
                raise mfusepy.FuseOSError(errno.EINTR)
            release = self._release
        hang = faults.get("hang")
        if hang and hang.get("ioctl", "VIDIOC_QUERYCAP") == name:
            # The one deliberate wait: bounded, and `release`/`reset` end it early.
            release.wait(min(float(hang.get("seconds", 1.0)), MAX_HANG_SECONDS))
        err = faults.get("ioctl_errno", {}).get(name)
        if err:
            raise mfusepy.FuseOSError(int(err))
        # _IOR requests hand us uninitialised memory: only read input for _IOWR ones.
        inbuf = mfusepy.ctypes.string_at(data, size) if data and cmd >> 30 == 3 else b""
        try:
            out = self._answer(spec, name, inbuf, size)
        except Fault as exc:
            raise mfusepy.FuseOSError(exc.err) from None
        if faults.get("gone_after") == name:
            with self._mu:
                handle.gone = True
        if self.verbose:
            log.info("ioctl %s %s in=%s -> %d bytes", path, name, inbuf[:16].hex(), len(out))
        mfusepy.ctypes.memmove(data, out, len(out))
        return 0

    # ---- V4L2 answers --------------------------------------------------------------------------

    @staticmethod
    def _buf_type(spec: dict) -> int | None:
        caps = spec.get("capabilities", 0)
        if caps & CAP_DEVICE_CAPS:  # old drivers describe the node in `capabilities` alone
            caps = spec.get("device_caps", 0)
        if caps & CAP_VIDEO_CAPTURE:
            return BUF_TYPE_VIDEO_CAPTURE
        if caps & CAP_VIDEO_CAPTURE_MPLANE:
            return BUF_TYPE_VIDEO_CAPTURE_MPLANE
        return None

    @staticmethod
    def _format(spec: dict, code: int) -> dict:
        for fmt in spec.get("formats", ()):
            if fourcc(fmt["fourcc"]) == code:
                return fmt
        raise Fault(errno.EINVAL)

    def _answer(self, spec: dict, name: str, inbuf: bytes, size: int) -> bytes:
        if name == "VIDIOC_QUERYCAP":
            return CAPABILITY.pack(
                _cstr(spec.get("driver", ""), 16),
                _cstr(spec.get("card", ""), 32),
                _cstr(spec.get("bus_info", ""), 32),
                spec.get("version", 0),
                spec.get("capabilities", 0),
                spec.get("device_caps", 0),
            )
        buf_type = self._buf_type(spec)
        if name == "VIDIOC_ENUM_FMT":
            index, req_type = struct.unpack_from("=II", inbuf)
            formats = spec.get("formats", [])
            if req_type != buf_type or index >= len(formats):
                raise Fault(errno.EINVAL)
            fmt = formats[index]
            return FMTDESC.pack(
                index,
                req_type,
                fmt.get("flags", 0),
                _cstr(fmt.get("description", ""), 32),
                fourcc(fmt["fourcc"]),
                0,
            )
        if name == "VIDIOC_ENUM_FRAMESIZES":
            index, code = struct.unpack_from("=II", inbuf)
            fmt = self._format(spec, code)
            if "stepwise" in fmt:
                if index != 0:
                    raise Fault(errno.EINVAL)
                sw = fmt["stepwise"]
                kind = FRMSIZE_CONTINUOUS if sw.get("continuous") else FRMSIZE_STEPWISE
                return FRMSIZE_STEPWISE_S.pack(
                    0,
                    code,
                    kind,
                    sw["min_width"],
                    sw["max_width"],
                    sw.get("step_width", 1),
                    sw["min_height"],
                    sw["max_height"],
                    sw.get("step_height", 1),
                )
            sizes = fmt.get("sizes", [])
            if index >= len(sizes):
                raise Fault(errno.EINVAL)
            return FRMSIZE_DISCRETE_S.pack(
                index, code, FRMSIZE_DISCRETE, sizes[index]["width"], sizes[index]["height"]
            )
        if name == "VIDIOC_ENUM_FRAMEINTERVALS":
            index, code, width, height = struct.unpack_from("=IIII", inbuf)
            fmt = self._format(spec, code)
            if "stepwise" in fmt:
                sw = fmt["stepwise"]
                if not (
                    sw["min_width"] <= width <= sw["max_width"]
                    and sw["min_height"] <= height <= sw["max_height"]
                ):
                    raise Fault(errno.EINVAL)
                intervals = fmt.get("intervals", [])
                ival_range = fmt.get("interval_range")
            else:
                match = [
                    s for s in fmt.get("sizes", []) if (s["width"], s["height"]) == (width, height)
                ]
                if not match:
                    raise Fault(errno.EINVAL)
                intervals = match[0].get("intervals", [])
                ival_range = match[0].get("interval_range")
            if ival_range is not None:
                if index != 0:
                    raise Fault(errno.EINVAL)
                step = ival_range.get("step")
                kind = FRMIVAL_STEPWISE if step else FRMIVAL_CONTINUOUS
                step = step or [1, 1]
                return FRMIVAL_STEPWISE_S.pack(
                    0,
                    code,
                    width,
                    height,
                    kind,
                    *ival_range["min"],
                    *ival_range["max"],
                    *step,
                )
            if index >= len(intervals):
                raise Fault(errno.EINVAL)
            num, den = intervals[index]
            return FRMIVAL_DISCRETE_S.pack(index, code, width, height, FRMIVAL_DISCRETE, num, den)
        if name == "VIDIOC_G_FMT":
            (req_type,) = struct.unpack_from("=I", inbuf)
            current = spec.get("current")
            if req_type != buf_type or not current:
                raise Fault(errno.EINVAL)
            out = bytearray(size)
            struct.pack_into("=I", out, 0, req_type)
            union_at = size - 200  # 8 on LP64: the union is pointer-aligned
            w, h, code = current["width"], current["height"], fourcc(current["fourcc"])
            if req_type == BUF_TYPE_VIDEO_CAPTURE_MPLANE:
                PIX_FORMAT_MPLANE.pack_into(out, union_at, w, h, code, 1, 0)
            else:
                PIX_FORMAT.pack_into(out, union_at, w, h, code, 1, w * 2, w * h * 2, 0, 0)
            return bytes(out)
        if name == "VIDIOC_G_PARM":
            (req_type,) = struct.unpack_from("=I", inbuf)
            tpf = spec.get("timeperframe")
            if req_type != buf_type or tpf is None:
                raise Fault(errno.EINVAL)
            out = bytearray(size)
            struct.pack_into("=I", out, 0, req_type)
            CAPTUREPARM.pack_into(out, 4, CAP_TIMEPERFRAME, 0, tpf[0], tpf[1], 0, 0)
            return bytes(out)
        raise Fault(errno.ENOTTY)


def _norm(path: str) -> str:
    return "/" + path.strip("/")


class _ControlHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        fs: FakeCamFS = self.server.fs  # type: ignore[attr-defined]
        for line in self.rfile:
            try:
                reply = fs.command(json.loads(line))
            except Exception as exc:  # a bad request must not kill the control thread
                log.exception("control request failed")
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class _ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _unmount_when_parent_exits(fd: int, mountpoint: str) -> None:
    # Blocks until the parent's end of the pipe closes, which happens however the parent ends
    # (even SIGKILL), so a crashed test run cannot leave a mount and a daemon behind.
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    log.info("parent gone: unmounting %s", mountpoint)
    import subprocess

    subprocess.run(["fusermount3", "-uz", mountpoint], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mountpoint")
    parser.add_argument("control_socket")
    parser.add_argument("--log", default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--parent-fd",
        type=int,
        default=None,
        help="read end of a pipe held by the parent: EOF (parent gone) unmounts",
    )
    args = parser.parse_args(argv)
    mountpoint = os.path.abspath(args.mountpoint)
    control = os.path.abspath(args.control_socket)
    logging.basicConfig(
        filename=os.path.abspath(args.log) if args.log else None,
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(levelname)s %(message)s",
    )
    fs = FakeCamFS()
    fs.verbose = args.verbose
    if os.path.exists(control):
        os.unlink(control)
    server = _ControlServer(control, _ControlHandler)
    server.fs = fs  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    if args.parent_fd is not None:
        threading.Thread(
            target=_unmount_when_parent_exits,
            args=(args.parent_fd, mountpoint),
            name="parent-watch",
            daemon=True,
        ).start()
    log.info("serving %s, control socket %s", mountpoint, control)
    try:
        mfusepy.FUSE(
            fs,
            mountpoint,
            foreground=True,
            fsname="fakecamfs",
            # Unlink must really remove the name (no .fuse_hidden files in the device dir).
            hard_remove=True,
            # Never cache lookups: the test adds nodes behind the kernel's back via the socket.
            entry_timeout=0,
            attr_timeout=0,
            negative_timeout=0,
        )
    except RuntimeError as exc:
        # mfusepy raises RuntimeError(code) when fuse_main fails or ends on a signal.
        log.error("fuse_main ended with %s", exc)
        return 1
    finally:
        fs._wake_hung()
        # No server.shutdown(): it waits out serve_forever's poll interval; the control thread
        # is a daemon thread and ends with the process.
        server.server_close()
        try:
            os.unlink(control)
        except FileNotFoundError:
            pass
        log.info("unmounted %s", mountpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
