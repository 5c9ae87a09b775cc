"""PROTOCOL 5.8: client-given file names are base names only. Every rule, with the message that
reaches clients after "filename: " (-32602) or "bad file name: " (HTTP 400)."""

from __future__ import annotations

import pytest

from camera_service.media.names import MAX_NAME_BYTES, check_base_name

SLASHES = 'must be a base name, without "/" or "\\"'
CONTROL = "must not contain NUL or control characters"


@pytest.mark.parametrize(
    "name",
    [
        "camera0_snapshot_2026-12-01_11-02-03.jpg",
        "a",
        "a b.jpg",
        "café.png",
        "日本語.jpg",
        "x..y",
        "name.",
        'quote".jpg',
        "%2e%2e",  # percent signs are literal here: URLs are decoded before the check
        "-rf",
        "a" * MAX_NAME_BYTES,
    ],
)
def test_accepted_names_come_back_unchanged(name):
    assert check_base_name(name) is name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        (".", 'must be a file name, not "."'),
        ("..", 'must be a file name, not ".."'),
        (".hidden", 'must not start with "."'),
        ("..x", 'must not start with "."'),
        ("...", 'must not start with "."'),
        (".snap.jpg.1a2b.tmp", 'must not start with "."'),
        ("a/b", SLASHES),
        ("/etc/passwd", SLASHES),
        ("../x", SLASHES),
        ("snap.jpg/", SLASHES),
        ("a\\b", SLASHES),
        ("..\\x", SLASHES),
        ("\x00", CONTROL),
        ("a\x00b.jpg", CONTROL),
        ("a\nb", CONTROL),
        ("a\rb", CONTROL),
        ("\tname", CONTROL),
        ("a\x1b[31m", CONTROL),
        ("a\x1f", CONTROL),
        ("del\x7f", CONTROL),
        ("c1\x85", CONTROL),  # NEL, a C1 control
        ("c1\x9f", CONTROL),
        ("lone\ud800", "must be valid Unicode text (no lone surrogates)"),
    ],
)
def test_refused_names_say_which_rule(name, message):
    with pytest.raises(ValueError) as caught:
        check_base_name(name)
    assert str(caught.value) == message


@pytest.mark.parametrize("value", [None, 5, b"a.jpg", ["a.jpg"]])
def test_non_strings_are_refused(value):
    with pytest.raises(ValueError) as caught:
        check_base_name(value)
    assert str(caught.value) == f"must be a string, got {type(value).__name__}"


@pytest.mark.parametrize(
    ("unit", "width"),
    [("a", 1), ("é", 2), ("€", 3), ("😀", 4)],
)
def test_the_limit_is_255_bytes_of_utf8_not_255_characters(unit, width):
    count, rest = divmod(MAX_NAME_BYTES, width)
    longest = unit * count + "a" * rest
    assert len(longest.encode()) == 255
    assert check_base_name(longest) == longest

    too_long = longest + "a"
    assert len(too_long.encode()) == 256
    with pytest.raises(ValueError) as caught:
        check_base_name(too_long)
    assert str(caught.value) == "must be at most 255 bytes in UTF-8, got 256"

    # Fewer than 255 characters can already be too many bytes.
    if width > 1:
        short_but_big = unit * (count + 1)
        assert len(short_but_big) < 255 < len(short_but_big.encode())
        with pytest.raises(ValueError, match="must be at most 255 bytes in UTF-8"):
            check_base_name(short_but_big)
