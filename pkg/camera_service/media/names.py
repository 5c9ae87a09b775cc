"""The one rule for file names that clients give (PROTOCOL 5.8): base names only.

`filename` params and the NAME of `/files/.../NAME` URLs both pass through `check_base_name`,
so a name can never climb out of the service's directories, hide among the temporary files of
atomic writes (which start with "."), smuggle a line break into a log line or an HTTP header,
or exceed what a Linux file system can store. The JSON-RPC methods answer a refused name with
-32602 (naming `filename`), HTTP with 400.
"""

from __future__ import annotations

import re

# NAME_MAX of Linux file systems, counted in bytes of the UTF-8 encoding.
MAX_NAME_BYTES = 255

# Unicode category Cc: C0 controls (NUL included), DEL and the C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_base_name(name: str) -> str:
    """Return `name` unchanged when it is an acceptable base name, else raise ValueError.

    Refused: a non-string, empty, "." or "..", a leading ".", "/" or "\\", NUL or any other
    control character, text that has no UTF-8 form (lone surrogates), and more than 255 bytes
    of UTF-8. The message says which rule failed, in words that fit after "filename: ".
    """
    if not isinstance(name, str):
        raise ValueError(f"must be a string, got {type(name).__name__}")
    if not name:
        raise ValueError("must not be empty")
    if name in (".", ".."):
        raise ValueError(f'must be a file name, not "{name}"')
    if "/" in name or "\\" in name:
        raise ValueError('must be a base name, without "/" or "\\"')
    if _CONTROL.search(name):
        raise ValueError("must not contain NUL or control characters")
    if name.startswith("."):
        raise ValueError('must not start with "."')
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    if size > MAX_NAME_BYTES:
        raise ValueError(f"must be at most {MAX_NAME_BYTES} bytes in UTF-8, got {size}")
    return name
