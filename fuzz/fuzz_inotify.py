"""atheris harness: the inotify event parser (camera_service.devices.inotify.parse_events).

    .venv/bin/python fuzz/fuzz_inotify.py -max_total_time=60 -artifact_prefix=build/fuzz/

Even first byte: the rest is parsed as it is. parse_events must never raise; it returns
InotifyEvent objects whose names hold no NUL, never more events than whole 16-byte headers
fit, and re-encoding what it returned parses back to the same list.
Odd first byte: a list of events is built from the input (any wd, mask, cookie, a name of any
bytes but NUL and any NUL padding), encoded as the kernel lays it out, and must parse back to
exactly those events, also when cut at any point (only whole records come back).
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["camera_service", "fuzz_support"]):
    from fuzz_support import INOTIFY_HEADER, inotify_record

    from camera_service.devices.inotify import InotifyEvent, parse_events

HEADER = INOTIFY_HEADER.size


def check_raw(data: bytes) -> None:
    events = parse_events(data)  # must never raise
    assert type(events) is list
    assert len(events) <= len(data) // HEADER
    for event in events:
        assert type(event) is InotifyEvent
        assert type(event.name) is str and "\0" not in event.name
        assert -(2**31) <= event.wd < 2**31 and 0 <= event.mask < 2**32
        assert 0 <= event.cookie < 2**32
    again = b"".join(inotify_record(e.wd, e.mask, e.cookie, os.fsencode(e.name)) for e in events)
    assert parse_events(again) == events


def check_crafted(fdp: atheris.FuzzedDataProvider) -> None:
    records, expected = [], []
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        wd = fdp.ConsumeIntInRange(-(2**31), 2**31 - 1)
        mask = fdp.ConsumeIntInRange(0, 2**32 - 1)
        cookie = fdp.ConsumeIntInRange(0, 2**32 - 1)
        name = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 255)).replace(b"\0", b"")
        pad = fdp.ConsumeIntInRange(0, 20)
        records.append(inotify_record(wd, mask, cookie, name, pad))
        expected.append(InotifyEvent(wd, mask, cookie, os.fsdecode(name)))
    data = b"".join(records)
    got = parse_events(data)
    assert got == expected, (got, expected)
    assert [os.fsencode(e.name) for e in got] == [os.fsencode(e.name) for e in expected]
    # cut anywhere: exactly the records that end before the cut come back
    cut = fdp.ConsumeIntInRange(0, len(data)) if data else 0
    whole, end = 0, 0
    for record in records:
        if end + len(record) > cut:
            break
        end += len(record)
        whole += 1
    assert parse_events(data[:cut]) == expected[:whole]


def TestOneInput(data: bytes) -> None:
    if data and data[0] & 1:
        check_crafted(atheris.FuzzedDataProvider(data[1:]))
    else:
        check_raw(data[1:])


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
