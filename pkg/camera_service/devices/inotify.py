"""inotify through the cffi binding: a non-blocking watch fd and a pure event parser.

The watcher never polls: the caller registers `fileno()` with `loop.add_reader` and calls
`read_events()` when the kernel says the fd is readable.
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from camera_service.devices._native import ffi, lib

IN_ACCESS = lib.IN_ACCESS
IN_MODIFY = lib.IN_MODIFY
IN_ATTRIB = lib.IN_ATTRIB
IN_CLOSE_WRITE = lib.IN_CLOSE_WRITE
IN_MOVED_FROM = lib.IN_MOVED_FROM
IN_MOVED_TO = lib.IN_MOVED_TO
IN_CREATE = lib.IN_CREATE
IN_DELETE = lib.IN_DELETE
IN_DELETE_SELF = lib.IN_DELETE_SELF
IN_MOVE_SELF = lib.IN_MOVE_SELF
IN_UNMOUNT = lib.IN_UNMOUNT
IN_Q_OVERFLOW = lib.IN_Q_OVERFLOW
IN_IGNORED = lib.IN_IGNORED
IN_ONLYDIR = lib.IN_ONLYDIR
IN_ISDIR = lib.IN_ISDIR

# Fixed part of `struct inotify_event` as the kernel lays it out: wd, mask, cookie, len.
_HEADER = struct.Struct("=iIII")
assert _HEADER.size == ffi.sizeof("struct inotify_event"), "inotify_event layout changed"

# Room for many events per read(); a single event is at most header + NAME_MAX + 1.
_READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class InotifyEvent:
    """One parsed inotify event: watch descriptor, mask, cookie and name."""

    wd: int
    mask: int
    cookie: int
    name: str


def parse_events(data: bytes) -> list[InotifyEvent]:
    """Split the raw bytes of one or more inotify reads into events.

    Pure function (no fd involved) so it can be fed crafted bytes in tests and by the fuzzer.
    A truncated trailing record is ignored rather than raising: the kernel only ever returns
    whole events, so a partial one can only come from a bad caller.
    """
    events = []
    offset = 0
    size = len(data)
    header_size = _HEADER.size
    while offset + header_size <= size:
        wd, mask, cookie, name_len = _HEADER.unpack_from(data, offset)
        start = offset + header_size
        end = start + name_len
        if end > size:
            break
        raw_name = bytes(data[start:end]).split(b"\0", 1)[0]
        events.append(InotifyEvent(wd, mask, cookie, os.fsdecode(raw_name)))
        offset = end
    return events


class InotifyWatcher:
    """One non-blocking inotify fd with watches on some paths."""

    def __init__(self) -> None:
        fd = lib.inotify_init1(lib.IN_NONBLOCK | lib.IN_CLOEXEC)
        if fd < 0:
            err = ffi.errno
            raise OSError(err, f"inotify_init1 failed: {os.strerror(err)}")
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def add_watch(self, path: str, mask: int) -> int:
        wd = lib.inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            err = ffi.errno
            raise OSError(err, f"inotify_add_watch failed: {os.strerror(err)}", path)
        return wd

    def remove_watch(self, wd: int) -> None:
        # EINVAL means the kernel already dropped the watch (path deleted): nothing to do.
        if lib.inotify_rm_watch(self._fd, wd) < 0 and ffi.errno != errno.EINVAL:
            err = ffi.errno
            raise OSError(err, f"inotify_rm_watch failed: {os.strerror(err)}")

    def read_events(self) -> list[InotifyEvent]:
        """Drain everything the kernel has queued; [] when nothing is pending."""
        chunks = []
        while True:
            try:
                chunk = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
        return parse_events(b"".join(chunks)) if chunks else []

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Editors and our own atomic writers save by writing in place (CLOSE_WRITE) or by writing a
# temporary file and renaming it over the original (MOVED_TO): so the directory is watched,
# not the file's inode, which a rename replaces.
FILE_CHANGE_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE


class FileWatch:
    """Calls `on_change()` on the loop when the file at `path` is written, replaced, created or
    deleted, and `on_gone()` when its directory goes away (no polling).

    With `create_directory`, a missing directory is created (mode 0700) so that a file that
    appears later is seen; otherwise `start` raises FileNotFoundError for it.
    """

    def __init__(
        self,
        path: str,
        on_change: Callable[[], None],
        on_gone: Callable[[], None] | None = None,
        *,
        create_directory: bool = False,
    ) -> None:
        self.path = os.path.abspath(path)
        self._directory, self._name = os.path.split(self.path)
        self._on_change = on_change
        self._on_gone = on_gone
        self._create_directory = create_directory
        self._watcher: InotifyWatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def fileno(self) -> int:
        assert self._watcher is not None, "not started"
        return self._watcher.fileno()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._create_directory:
            os.makedirs(self._directory, mode=0o700, exist_ok=True)
        watcher = InotifyWatcher()
        try:
            watcher.add_watch(self._directory, FILE_CHANGE_MASK)
            loop.add_reader(watcher.fileno(), self._on_readable)
        except BaseException:
            watcher.close()
            raise
        self._watcher, self._loop = watcher, loop

    def stop(self) -> None:
        watcher, loop = self._watcher, self._loop
        self._watcher = self._loop = None
        if watcher is None:
            return
        if loop is not None and not loop.is_closed():
            loop.remove_reader(watcher.fileno())
        watcher.close()

    def _on_readable(self) -> None:
        assert self._watcher is not None
        changed = gone = False
        for event in self._watcher.read_events():
            if event.mask & IN_Q_OVERFLOW or event.name == self._name:
                changed = True  # after an overflow, assume the file changed
            elif event.mask & IN_IGNORED:
                gone = True  # the directory was deleted or unmounted: the kernel dropped it
        if gone and self._on_gone is not None:
            self._on_gone()
        if changed:
            self._on_change()
