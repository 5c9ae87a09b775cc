"""The listener's UTF-8 validator (close 1007 depends on it) against CPython's strict decoder."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camera_service.server._listener import is_valid_utf8


def reference(data: bytes) -> bool:
    try:
        data.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return False
    return True


VALID = [
    b"",
    b"a",
    b"1234567",
    b"12345678",
    b"123456789",
    b'{"jsonrpc":"2.0","method":"ping","id":1}',
    "é".encode(),
    "日本語".encode(),
    "😀".encode(),
    b"\x00",
    b"\x7f" * 17,
    "\u07ff".encode(),  # last 2-byte code point
    "\u0800".encode(),  # first 3-byte code point
    "\ud7ff".encode(),  # just below the surrogates
    "\ue000".encode(),  # just above the surrogates
    "\uffff".encode(),
    "\U00010000".encode(),  # first 4-byte code point
    "\U0010ffff".encode(),  # last code point
    b"x" * 7 + "é".encode(),  # multi-byte straddling the 8-byte ASCII fast path
    b"x" * 15 + "😀".encode() + b"y" * 9,
]

INVALID = [
    b"\xff",
    b"\xfe",
    b"\xff\xfe",
    b"\x80",  # lone continuation byte
    b"\xbf",
    b"\xc0\xaf",  # overlong "/"
    b"\xc1\xbf",  # overlong
    b"\xe0\x80\xaf",  # overlong 3-byte
    b"\xf0\x80\x80\xaf",  # overlong 4-byte
    b"\xed\xa0\x80",  # UTF-16 surrogate U+D800
    b"\xed\xbf\xbf",  # surrogate U+DFFF
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",  # 5-byte form
    b"\xfc\x84\x80\x80\x80\x80",  # 6-byte form
    b"\xc3",  # truncated 2-byte
    b"\xe6\x97",  # truncated 3-byte
    b"\xf0\x9f\x98",  # truncated 4-byte
    b"\xc3\x28",  # bad continuation
    b"\xe6\x28\xa5",
]


@pytest.mark.parametrize("data", VALID, ids=repr)
def test_valid(data):
    assert reference(data) is True
    assert is_valid_utf8(data) is True


@pytest.mark.parametrize("data", INVALID, ids=repr)
def test_invalid(data):
    assert reference(data) is False
    assert is_valid_utf8(data) is False


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xc3"])
def test_invalid_byte_at_every_offset(bad):
    """The ASCII fast path reads 8 bytes at a time: a bad sequence must be caught wherever
    it starts, in the aligned part, in the tail, and after valid multi-byte characters."""
    for prefix_len in range(20):
        for suffix_len in (0, 1, 7, 8, 9):
            data = b"a" * prefix_len + bad + b"b" * suffix_len
            assert is_valid_utf8(data) is False, data
            mixed = "é".encode() * prefix_len + bad + b"b" * suffix_len
            assert is_valid_utf8(mixed) is False, mixed


def test_random_bytes_agree_with_cpython():
    rng = random.Random(1234)
    alphabet = [
        b"a",
        b"\x00",
        b"\x7f",
        b"\x80",
        b"\xbf",
        b"\xc2",
        b"\xc3\xa9",
        b"\xe0",
        b"\xed",
        b"\xef\xbf\xbf",
        b"\xf0",
        b"\xf4",
        b"\xf5",
        b"\xff",
        "😀".encode(),
        "日".encode(),
    ]
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        assert is_valid_utf8(data) is reference(data), data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_agree_with_cpython(data):
    assert is_valid_utf8(data) is reference(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=64))
def test_any_encoded_text_is_valid(text):
    assert is_valid_utf8(text.encode("utf-8", "surrogatepass")) is reference(
        text.encode("utf-8", "surrogatepass")
    )


def test_rejects_non_bytes():
    with pytest.raises(TypeError):
        is_valid_utf8("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        is_valid_utf8(bytearray(b"abc"))  # type: ignore[arg-type]
