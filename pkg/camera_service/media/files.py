"""An in-memory index of one service directory (snapshots now, recordings later).

PROTOCOL 5.12 wants a list of 10,000 files in well under 50 ms, so the directory is read once
at start and then followed through inotify (registered with the event loop: no polling and no
directory scan per call). Each kernel event makes the index look at that one name again
(`lstat`), so repeated or reordered events cannot leave it wrong; a queue overflow rescans the
directory. The service's own writes and deletes update the index at once (`note_written`,
`delete`), so a list right after `take_snapshot` or `delete_snapshot` already agrees with the
response the client just got, without waiting for the kernel's event.

Indexed are regular files only, seen through `lstat`: a symlink is never listed, so nothing
reachable through the index points outside the directory. Names that start with "." (the
temporary files of atomic writes) and names a client could not address (PROTOCOL 5.8) are
left out. A directory that disappears empties the index; the service keeps serving and picks
the directory up again when it writes there next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from camera_service.core.events import EventBus, FileDeleted
from camera_service.devices.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    InotifyEvent,
    InotifyWatcher,
)
from camera_service.media.image_info import image_resolution
from camera_service.media.names import check_base_name

if TYPE_CHECKING:
    from camera_service.config import Config

log = logging.getLogger("camera_service.files")

SNAPSHOT_KIND = "snapshot"
SNAPSHOT_URL_PREFIX = "/files/snapshots/"
DIRECTORY_MODE = 0o750

# A file is finished when its writer closes it (CLOSE_WRITE) or renames it into place
# (MOVED_TO); CREATE/DELETE/MOVED_FROM add and remove names; ATTRIB catches `touch` and
# chmod (the modification time orders the list). The *_SELF events and UNMOUNT say the
# directory itself is gone.
WATCH_MASK = (
    IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CLOSE_WRITE
    | IN_ATTRIB
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_DIRECTORY_GONE = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One regular file of the directory as `lstat` last saw it (times in epoch seconds)."""

    name: str
    size: int
    mtime: float
    ctime: float
    mtime_ns: int


# `FileIndex.list` would shadow the built-in inside the class body.
EntryList = list[FileEntry]
_BY_NAME = attrgetter("name")
_BY_MTIME = attrgetter("mtime_ns")


def indexable(name: str) -> bool:
    """Whether a directory entry called `name` belongs in the index: not hidden (temporary
    files of atomic writes) and addressable by clients (PROTOCOL 5.8)."""
    if name.startswith("."):
        return False
    try:
        check_base_name(name)
    except ValueError:
        return False
    return True


class FileIndex:
    """The files of `kind` ("snapshot", "recording") in `directory`, served at `url_prefix`.

    `probe(path)` reads one kind-specific detail from a file (a snapshot's resolution); it runs
    when a detail is first asked for and its answer is cached per (name, size, mtime), so a
    file is read once, not on every list call. Everything runs on the event loop.
    """

    def __init__(
        self,
        kind: str,
        directory: str,
        url_prefix: str,
        bus: EventBus,
        *,
        probe: Callable[[str], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.directory = os.path.abspath(directory)
        self.url_prefix = url_prefix
        self._bus = bus
        self._probe = probe
        self._entries: dict[str, FileEntry] = {}
        self._total_size = 0
        self._sorted: EntryList | None = None  # newest first; None after any change
        self._probed: dict[str, tuple[int, int, Any]] = {}  # name -> (size, mtime_ns, value)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: InotifyWatcher | None = None
        self._running = False

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Create the directory (mode 0750) if needed, watch it, then read it once.

        The watch comes before the scan, so a file written in between is seen by one or the
        other (or both: looking at a name twice is harmless)."""
        os.makedirs(self.directory, mode=DIRECTORY_MODE, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._watch()
        self._scan()
        log.info(
            "%s files indexed",
            self.kind,
            extra={"directory": self.directory, "count": self.count()},
        )

    async def stop(self) -> None:
        self._running = False
        self._unwatch()

    def apply(self, config: Config) -> None:
        """No live keys: the directory changes only with a restart (PROTOCOL 8)."""
        return None

    @property
    def watching(self) -> bool:
        """Whether the kernel currently reports this directory's changes."""
        return self._watcher is not None

    # ---- queries -------------------------------------------------------------------------

    def list(self, limit: int, offset: int) -> tuple[EntryList, int]:
        """(up to `limit` entries from `offset`, total): newest first by modification time,
        then by name. The order is built once per change of the index, not per call."""
        view = self._sorted
        if view is None:
            # Two stable sorts: by name, then by time descending (ties keep name order).
            view = sorted(self._entries.values(), key=_BY_NAME)
            view.sort(key=_BY_MTIME, reverse=True)
            self._sorted = view
        return view[offset : offset + limit], len(view)

    def get(self, name: str) -> FileEntry | None:
        """The entry for `name`, or None. A name the index does not know is looked at once
        on disk: its kernel event may still be on its way."""
        entry = self._entries.get(name)
        if entry is None and self._running:
            entry = self._refresh(name)
        return entry

    def count(self) -> int:
        return len(self._entries)

    def total_size(self) -> int:
        """Bytes of all indexed files."""
        return self._total_size

    def path_of(self, name: str) -> str:
        """Where the file called `name` (a checked base name) lives."""
        return os.path.join(self.directory, name)

    def download_url(self, name: str) -> str:
        return self.url_prefix + quote(name, safe="")

    def detail(self, entry: FileEntry) -> Any:
        """The probe's answer for `entry` (None without a probe or when it fails), cached
        until the file's size or modification time changes."""
        if self._probe is None:
            return None
        cached = self._probed.get(entry.name)
        if cached is not None and cached[0] == entry.size and cached[1] == entry.mtime_ns:
            return cached[2]
        try:
            value = self._probe(self.path_of(entry.name))
        except Exception:
            log.warning("could not read %s file details", self.kind, exc_info=True)
            value = None
        self._probed[entry.name] = (entry.size, entry.mtime_ns, value)
        return value

    # ---- changes made by the service -----------------------------------------------------

    def note_written(self, name: str) -> FileEntry | None:
        """The service has just finished writing `name` here: index it now, without waiting
        for the kernel's event. Returns its entry (None if it is not an indexable file)."""
        if self._running and self._watcher is None and os.path.isdir(self.directory):
            # The directory went away and is back: follow it again.
            self._rewatch()
        return self._refresh(name)

    def delete(self, name: str) -> FileEntry:
        """Unlink the regular file `name` (a checked base name), drop it from the index at
        once and publish FileDeleted. FileNotFoundError when there is no such file; a
        symlink or other non-regular entry counts as missing and is left alone."""
        path = self.path_of(name)
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or not indexable(name):
            raise FileNotFoundError(2, f"no {self.kind} file with this name", name)
        os.unlink(path)
        self._remove(name)
        self._bus.publish(FileDeleted(self.kind, name))
        # "filename" is a LogRecord attribute: as an extra it would raise KeyError.
        log.info("%s file deleted", self.kind, extra={"file": name})
        return _entry_of(name, st)

    # ---- index maintenance ---------------------------------------------------------------

    def _scan(self) -> None:
        entries: dict[str, FileEntry] = {}
        try:
            with os.scandir(self.directory) as listing:
                for item in listing:
                    name = item.name
                    if not indexable(name):
                        continue
                    try:
                        st = item.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed while listing
                    if stat.S_ISREG(st.st_mode):
                        entries[name] = _entry_of(name, st)
        except OSError as exc:
            log.warning(
                "cannot read the %s directory: %s",
                self.kind,
                exc.strerror,
                extra={"directory": self.directory},
            )
        self._entries = entries
        self._total_size = sum(entry.size for entry in entries.values())
        self._sorted = None
        self._probed = {name: v for name, v in self._probed.items() if name in entries}

    def _refresh(self, name: str) -> FileEntry | None:
        """Look at `name` on disk and make the index agree; returns its entry or None."""
        if not indexable(name):
            return None
        try:
            st = os.lstat(self.path_of(name))
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            self._remove(name)
            return None
        entry = _entry_of(name, st)
        old = self._entries.get(name)
        if old != entry:
            self._entries[name] = entry
            self._total_size += entry.size - (old.size if old is not None else 0)
            self._sorted = None
        return entry

    def _remove(self, name: str) -> None:
        old = self._entries.pop(name, None)
        if old is not None:
            self._total_size -= old.size
            self._sorted = None
            self._probed.pop(name, None)

    def _clear(self) -> None:
        self._entries = {}
        self._total_size = 0
        self._sorted = None
        self._probed = {}

    # ---- inotify -------------------------------------------------------------------------

    def _watch(self) -> None:
        assert self._loop is not None
        watcher = InotifyWatcher()
        try:
            watcher.add_watch(self.directory, WATCH_MASK)
            self._loop.add_reader(watcher.fileno(), self._on_readable)
        except BaseException:
            watcher.close()
            raise
        self._watcher = watcher

    def _unwatch(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(watcher.fileno())
        watcher.close()

    def _rewatch(self) -> None:
        try:
            self._watch()
        except OSError as exc:
            log.warning("cannot watch the %s directory: %s", self.kind, exc.strerror)
            return
        self._scan()
        log.info("%s directory is back", self.kind, extra={"directory": self.directory})

    def _on_readable(self) -> None:
        watcher = self._watcher
        if watcher is None:
            return
        try:
            self._handle(watcher.read_events())
        except Exception:
            # A failure here must not end the loop's reader callback for good: the next
            # event, or the next overflow rescan, repairs the index.
            log.exception("%s index update failed", self.kind)

    def _handle(self, events: Iterable[InotifyEvent]) -> None:
        names: set[str] = set()
        rescan = gone = False
        for event in events:
            if event.mask & IN_Q_OVERFLOW:
                rescan = True  # events were lost: only a full read is sure to be right
            elif event.mask & _DIRECTORY_GONE:
                gone = True
            elif event.name:
                names.add(event.name)
        if gone:
            self._directory_gone()
        elif rescan:
            self._scan()
        else:
            for name in names:  # one look per name, however many events it had
                self._refresh(name)

    def _directory_gone(self) -> None:
        log.warning(
            "the %s directory was deleted or moved: listing no files until it is back",
            self.kind,
            extra={"directory": self.directory},
        )
        self._unwatch()
        self._clear()


def _entry_of(name: str, st: os.stat_result) -> FileEntry:
    return FileEntry(name, st.st_size, st.st_mtime, st.st_ctime, st.st_mtime_ns)


def snapshot_index(config: Config, bus: EventBus) -> FileIndex:
    """The index of `snapshots.path`; each file's detail is its image resolution."""
    return FileIndex(
        SNAPSHOT_KIND, config.snapshots.path, SNAPSHOT_URL_PREFIX, bus, probe=image_resolution
    )
