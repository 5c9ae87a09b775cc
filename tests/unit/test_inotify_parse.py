"""inotify: the pure event parser on crafted bytes, and one real watch on a temp dir."""

from __future__ import annotations

import os
import struct

from camera_service.devices.inotify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_Q_OVERFLOW,
    InotifyEvent,
    InotifyWatcher,
    parse_events,
)

HEADER = struct.Struct("=iIII")


def record(wd: int, mask: int, name: bytes = b"", cookie: int = 0, pad_to: int = 16) -> bytes:
    """One event as the kernel writes it: the name NUL-padded to a multiple of `pad_to`."""
    if name:
        padded_len = (len(name) + 1 + pad_to - 1) // pad_to * pad_to
        name = name.ljust(padded_len, b"\0")
    return HEADER.pack(wd, mask, cookie, len(name)) + name


def test_several_events_with_padded_names():
    data = (
        record(1, IN_CREATE, b"video0")
        + record(1, IN_ATTRIB, b"video0")
        + record(1, IN_DELETE, b"video12", cookie=7)
        + record(1, IN_DELETE_SELF)
    )
    assert parse_events(data) == [
        InotifyEvent(1, IN_CREATE, 0, "video0"),
        InotifyEvent(1, IN_ATTRIB, 0, "video0"),
        InotifyEvent(1, IN_DELETE, 7, "video12"),
        InotifyEvent(1, IN_DELETE_SELF, 0, ""),
    ]


def test_name_exactly_filling_its_padding_and_long_padding():
    # 15 chars + NUL = 16 bytes; a second name padded far beyond its length.
    data = record(2, IN_CREATE, b"a" * 15) + record(2, IN_CREATE, b"v", pad_to=64)
    events = parse_events(data)
    assert [e.name for e in events] == ["a" * 15, "v"]
    assert HEADER.size + 16 + HEADER.size + 64 == len(data)


def test_overflow_event_has_wd_minus_one_and_no_name():
    assert parse_events(record(-1, IN_Q_OVERFLOW)) == [InotifyEvent(-1, IN_Q_OVERFLOW, 0, "")]


def test_truncated_trailing_record_is_dropped():
    whole = record(1, IN_CREATE, b"video1")
    second = record(1, IN_DELETE, b"video2")
    # Cut inside the second record's name, then inside its header.
    assert parse_events(whole + second[:-3]) == [InotifyEvent(1, IN_CREATE, 0, "video1")]
    assert parse_events(whole + second[:5]) == [InotifyEvent(1, IN_CREATE, 0, "video1")]
    assert parse_events(b"") == []
    assert parse_events(second[: HEADER.size - 1]) == []


def test_non_utf8_name_round_trips_through_fsdecode():
    events = parse_events(record(3, IN_CREATE, b"cam\xff"))
    assert events[0].name == os.fsdecode(b"cam\xff")
    assert os.fsencode(events[0].name) == b"cam\xff"


def test_bytearray_and_memoryview_input():
    data = record(1, IN_IGNORED)
    assert (
        parse_events(bytearray(data))
        == parse_events(memoryview(data))
        == [InotifyEvent(1, IN_IGNORED, 0, "")]
    )


def test_real_watch_reports_create_attrib_delete(tmp_path):
    with InotifyWatcher() as watcher:
        wd = watcher.add_watch(str(tmp_path), IN_CREATE | IN_ATTRIB | IN_DELETE)
        assert watcher.read_events() == []  # non-blocking: nothing pending
        node = tmp_path / "video3"
        node.touch()
        os.chmod(node, 0o600)
        node.unlink()
        events = watcher.read_events()
        assert [(e.wd, e.mask, e.name) for e in events] == [
            (wd, IN_CREATE, "video3"),
            (wd, IN_ATTRIB, "video3"),
            (wd, IN_DELETE, "video3"),
        ]
        watcher.remove_watch(wd)
        assert [e.mask for e in watcher.read_events()] == [IN_IGNORED]
    assert watcher.closed
