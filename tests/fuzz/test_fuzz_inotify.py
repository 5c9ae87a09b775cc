"""Property-based fuzzing of the inotify event parser (devices/inotify.parse_events): it never
raises on arbitrary bytes, crafted kernel records round-trip exactly (also when cut short),
and names the real kernel reports for arbitrary file names come back byte for byte."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camera_service.devices.inotify import (
    IN_CREATE,
    IN_DELETE,
    InotifyEvent,
    InotifyWatcher,
    parse_events,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz"))

from fuzz_support import INOTIFY_HEADER, inotify_record, run_harness  # noqa: E402

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.binary(max_size=255).map(lambda b: b.replace(b"\0", b""))
events = st.lists(
    st.tuples(
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        names,
        st.integers(0, 24),
    ),
    max_size=12,
)


def encode(items) -> tuple[bytes, list[bytes], list[InotifyEvent]]:
    records = [inotify_record(wd, mask, cookie, name, pad) for wd, mask, cookie, name, pad in items]
    expected = [
        InotifyEvent(wd, mask, cookie, os.fsdecode(name)) for wd, mask, cookie, name, _ in items
    ]
    return b"".join(records), records, expected


def test_record_layout_matches_the_kernel_header():
    assert INOTIFY_HEADER.size == 16
    assert inotify_record(1, IN_CREATE, 0, b"video0", 9) == (
        INOTIFY_HEADER.pack(1, IN_CREATE, 0, 16) + b"video0" + b"\0" * 10
    )
    assert parse_events(inotify_record(3, IN_DELETE, 7, b"")) == [InotifyEvent(3, IN_DELETE, 7, "")]


@SETTINGS
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data):
    got = parse_events(data)
    assert type(got) is list
    assert len(got) <= len(data) // 16
    consumed = 0
    for event in got:
        assert type(event) is InotifyEvent
        assert "\0" not in event.name
        consumed += 16 + INOTIFY_HEADER.unpack_from(data, consumed)[3]
        assert consumed <= len(data)
    # what came out re-encodes to bytes that parse to the same events
    again = b"".join(inotify_record(e.wd, e.mask, e.cookie, os.fsencode(e.name)) for e in got)
    assert parse_events(again) == got


@SETTINGS
@given(items=events)
def test_crafted_events_round_trip(items):
    data, _, expected = encode(items)
    got = parse_events(data)
    assert got == expected
    # names survive byte for byte (undecodable bytes as surrogate escapes)
    assert [os.fsencode(e.name) for e in got] == [item[3] for item in items]


@SETTINGS
@given(items=events, cut=st.integers(0, 2**16))
def test_cut_anywhere_gives_exactly_the_whole_records(items, cut):
    data, records, expected = encode(items)
    cut = cut % (len(data) + 1)
    end, whole = 0, 0
    for record in records:
        if end + len(record) > cut:
            break
        end += len(record)
        whole += 1
    assert parse_events(data[:cut]) == expected[:whole]


@SETTINGS
@given(items=events, junk=st.binary(min_size=1, max_size=15))
def test_trailing_partial_header_is_ignored(items, junk):
    data, _, expected = encode(items)
    assert parse_events(data + junk) == expected


@settings(max_examples=40, deadline=None)
@given(
    name=st.binary(min_size=1, max_size=255).filter(
        lambda b: b"\0" not in b and b"/" not in b and b not in (b".", b"..")
    )
)
def test_real_kernel_events_for_arbitrary_file_names(tmp_path_factory, name):
    directory = tmp_path_factory.mktemp("inotify")
    with InotifyWatcher() as watcher:
        wd = watcher.add_watch(str(directory), IN_CREATE | IN_DELETE)
        path = os.path.join(os.fsencode(directory), name)
        with open(path, "wb"):
            pass
        os.unlink(path)
        got = watcher.read_events()
    decoded = os.fsdecode(name)
    assert got == [InotifyEvent(wd, IN_CREATE, 0, decoded), InotifyEvent(wd, IN_DELETE, 0, decoded)]


def test_atheris_inotify_harness_short_run(tmp_path):
    run_harness("fuzz_inotify.py", tmp_path)
