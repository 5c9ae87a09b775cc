"""API key store (PROTOCOL 4.4).

Only a SHA-256 of each key is kept. A plain hash is enough because the keys are 256-bit random
strings: there is no dictionary to try, so a slow password hash would only slow every request.

The CLI changes the file and the running server picks the change up through
`reload_if_changed()` (called from an inotify watch), so a revocation works without a restart.
Writers hold an flock on the directory for their read-modify-write so two CLI runs cannot lose
each other's change; readers never lock because the file is only ever replaced atomically.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, replace
from typing import Any

from .roles import ROLE_LEVELS, role_level
from .secrets import write_private_file
from .sessions import AuthenticationFailed, format_utc, parse_utc

log = logging.getLogger("camera_service.auth")

KEY_PREFIX = "csk_"
MIN_KEY_LENGTH = 32
# Generous for keys made elsewhere, small enough that hashing junk costs nothing.
MAX_KEY_LENGTH = 512
MAX_NAME_LENGTH = 200
FILE_VERSION = 1
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_KEY_ID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")


class ApiKeyStoreError(Exception):
    """The key file cannot be read, parsed or written; the message says where and why."""


def hash_key(key: str) -> str:
    """The stored form of an API key (hex SHA-256); the key itself is never stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    """One stored key: id, name, role, times, active flag and the hash, never the key."""

    key_id: str
    name: str
    role: str
    hash: str
    created_at: str
    expires_at: str | None
    active: bool
    # Parsed once at load so that verify() compares floats instead of parsing dates.
    expires_ts: float | None = None

    def is_expired(self, now: float) -> bool:
        return self.expires_ts is not None and now >= self.expires_ts

    def status(self, now: float | None = None) -> str:
        if not self.active:
            return "revoked"
        if self.is_expired(time.time() if now is None else now):
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        """The stored form, field order fixed so diffs of the file stay readable."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role,
            "hash": self.hash,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "active": self.active,
        }

    def to_public(self) -> dict[str, Any]:
        """What listings show: everything but the hash."""
        data = self.to_json()
        del data["hash"]
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> ApiKeyEntry:
        if not isinstance(data, dict):
            raise ApiKeyStoreError(f"{where}: expected an object")

        def field(name: str, types: type | tuple[type, ...]) -> Any:
            if name not in data:
                raise ApiKeyStoreError(f"{where}: missing {name!r}")
            value = data[name]
            if not isinstance(value, types):
                raise ApiKeyStoreError(f"{where}: {name!r} has the wrong type")
            return value

        key_id = field("key_id", str)
        if not _KEY_ID_RE.fullmatch(key_id):
            raise ApiKeyStoreError(f"{where}: invalid key_id")
        role = field("role", str)
        if role not in ROLE_LEVELS:
            raise ApiKeyStoreError(f"{where}: unknown role {role!r}")
        digest = field("hash", str)
        if not _HASH_RE.fullmatch(digest):
            raise ApiKeyStoreError(f"{where}: 'hash' is not a lowercase SHA-256 hex digest")
        created_at = field("created_at", str)
        expires_at = field("expires_at", (str, type(None)))
        try:
            parse_utc(created_at)
            expires_ts = None if expires_at is None else parse_utc(expires_at)
        except ValueError:
            raise ApiKeyStoreError(f"{where}: timestamps must be ISO-8601 UTC") from None
        return cls(
            key_id=key_id,
            name=field("name", str),
            role=role,
            hash=digest,
            created_at=created_at,
            expires_at=expires_at,
            active=field("active", bool),
            expires_ts=expires_ts,
        )


def _parse(raw: bytes, path: str) -> list[ApiKeyEntry]:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiKeyStoreError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ApiKeyStoreError(f"{path}: expected an object with a 'keys' list")
    if doc.get("version") != FILE_VERSION:
        raise ApiKeyStoreError(f"{path}: unsupported version {doc.get('version')!r}")
    entries = [
        ApiKeyEntry.from_json(item, f"{path}: keys[{i}]") for i, item in enumerate(doc["keys"])
    ]
    if len({e.key_id for e in entries}) != len(entries):
        raise ApiKeyStoreError(f"{path}: duplicate key_id")
    if len({e.hash for e in entries}) != len(entries):
        raise ApiKeyStoreError(f"{path}: duplicate hash")
    return entries


Signature = tuple[int, int, int]


class ApiKeyStore:
    """The keys of one file, indexed by hash for the per-request lookup.

    A missing file means no keys. Construction raises ApiKeyStoreError for a corrupt file, so
    the server refuses to start on it and the CLI never overwrites it; a later `reload()` of a
    corrupt file logs and keeps the entries it had.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._entries: tuple[ApiKeyEntry, ...] = ()
        self._by_hash: dict[str, ApiKeyEntry] = {}
        self._signature: Signature | None = None
        entries, sig = self._read()
        self._install(entries, sig)

    def __len__(self) -> int:
        return len(self._entries)

    def _read(self) -> tuple[list[ApiKeyEntry], Signature | None]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return [], None
        except OSError as exc:
            raise ApiKeyStoreError(f"{self.path}: cannot open ({exc.strerror or exc})") from None
        try:
            # Stat and read the same open file so the signature always matches the content.
            st = os.fstat(fd)
            with os.fdopen(fd, "rb", closefd=False) as fh:
                raw = fh.read()
        except OSError as exc:
            raise ApiKeyStoreError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        finally:
            os.close(fd)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning(
                "API key file is writable by group or others; anyone who can write it can add keys",
                extra={"path": self.path},
            )
        return _parse(raw, self.path), (st.st_mtime_ns, st.st_size, st.st_ino)

    def _install(self, entries: list[ApiKeyEntry], sig: Signature | None) -> None:
        self._entries = tuple(entries)
        self._by_hash = {e.hash: e for e in entries}
        self._signature = sig

    def _current_signature(self) -> Signature | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self) -> bool:
        """Re-read the file. Returns True when the new content is in use.

        A corrupt or unreadable file is logged and the previous keys stay, so a half-edited
        file cannot lock every client out; its signature is remembered so the error is logged
        once per change rather than on every check.
        """
        try:
            entries, sig = self._read()
        except ApiKeyStoreError as exc:
            log.error(
                "API key file rejected; keeping the previous keys",
                extra={"path": self.path, "reason": str(exc)},
            )
            self._signature = self._current_signature()
            return False
        self._install(entries, sig)
        log.info("API keys loaded", extra={"path": self.path, "count": len(entries)})
        return True

    def reload_if_changed(self) -> bool:
        """Reload only when (mtime_ns, size, inode) moved; True when a reload happened.

        The inode is part of the check because the writer replaces the file, which can leave
        mtime and size unchanged within one timestamp tick.
        """
        if self._current_signature() == self._signature:
            return False
        return self.reload()

    def verify(self, key: Any, now: float | None = None) -> ApiKeyEntry:
        """Return the entry for a valid key or raise AuthenticationFailed(reason)."""
        if not isinstance(key, str):
            raise AuthenticationFailed("API key must be a string")
        if not MIN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH:
            # No lookup at all: no real key has this length.
            raise AuthenticationFailed("malformed API key")
        digest = hash_key(key)
        entry = self._by_hash.get(digest)
        # The dict lookup only finds candidates; the final comparison is constant-time so the
        # decision never depends on how many leading characters matched.
        if entry is None or not hmac.compare_digest(entry.hash, digest):
            raise AuthenticationFailed("unknown API key")
        if not entry.active:
            raise AuthenticationFailed("API key revoked")
        if entry.is_expired(time.time() if now is None else now):
            raise AuthenticationFailed("API key expired")
        return entry

    def list(self) -> tuple[ApiKeyEntry, ...]:  # noqa: A003 - the CLI verb
        """Entries as last loaded, in file order. Keys themselves are never stored."""
        return self._entries

    def get(self, key_id: str) -> ApiKeyEntry | None:
        for entry in self._entries:
            if entry.key_id == key_id:
                return entry
        return None

    # -- changes (CLI) ------------------------------------------------------------------------

    def _locked(self) -> _DirLock:
        return _DirLock(os.path.dirname(self.path) or ".")

    def _write(self, entries: builtins.list[ApiKeyEntry]) -> None:
        doc = {"version": FILE_VERSION, "keys": [e.to_json() for e in entries]}
        data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
        try:
            write_private_file(self.path, data, replace=True)
        except OSError as exc:
            raise ApiKeyStoreError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def create(
        self, role: str, name: str, expires_days: int | None = None, now: float | None = None
    ) -> tuple[str, ApiKeyEntry]:
        """Make a new key. Returns (key, entry); the key exists nowhere else afterwards."""
        role_level(role)
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name must be a non-empty string")
        if len(name) > MAX_NAME_LENGTH or not name.isprintable():
            raise ValueError(f"name must be printable and at most {MAX_NAME_LENGTH} characters")
        if expires_days is not None and (
            type(expires_days) is not int or not 1 <= expires_days <= 36500
        ):
            raise ValueError("expires_days must be an integer from 1 to 36500")
        now = time.time() if now is None else now
        created_ts = float(int(now))
        expires_ts = None if expires_days is None else created_ts + expires_days * 86400.0

        with self._locked():
            entries, _ = self._read()
            taken = {e.key_id for e in entries}
            key_id = secrets.token_hex(6)
            while key_id in taken:  # pragma: no cover - 48 random bits
                key_id = secrets.token_hex(6)
            key = KEY_PREFIX + secrets.token_urlsafe(32)
            entry = ApiKeyEntry(
                key_id=key_id,
                name=name,
                role=role,
                hash=hash_key(key),
                created_at=format_utc(created_ts),
                expires_at=None if expires_ts is None else format_utc(expires_ts),
                active=True,
                expires_ts=expires_ts,
            )
            entries.append(entry)
            self._write(entries)
            self._install(entries, self._current_signature())
        log.info(
            "API key created",
            extra={"key_id": key_id, "role": role, "key_name": name},
        )
        return key, entry

    def revoke(self, key_id: str) -> bool:
        """Mark the key inactive. False when no such key_id exists; revoking twice is fine."""
        with self._locked():
            entries, _ = self._read()
            for i, entry in enumerate(entries):
                if entry.key_id == key_id:
                    break
            else:
                return False
            if entry.active:
                entries[i] = replace(entry, active=False)
                self._write(entries)
            self._install(entries, self._current_signature())
        log.info("API key revoked", extra={"key_id": key_id})
        return True


class _DirLock:
    """flock on the key file's directory for the duration of a read-modify-write."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._fd = -1

    def __enter__(self) -> _DirLock:
        try:
            if not os.path.isdir(self._directory):
                os.makedirs(self._directory, mode=0o700, exist_ok=True)
                os.chmod(self._directory, 0o700)
            self._fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ApiKeyStoreError(
                f"{self._directory}: cannot use the key directory ({exc.strerror or exc})"
            ) from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing releases the lock
