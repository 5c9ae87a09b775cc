"""Where the JWT signing secret comes from (PROTOCOL 4.3).

Order: env CAMERA_SERVICE_JWT_SECRET, then `security.jwt_secret_file`, then
`security.jwt_secret`, then a random secret kept in `<state_dir>/jwt_secret`. There is no
built-in default: a secret compiled into the program is a secret every installation shares.
The `token` CLI command resolves the secret through the same function, so tokens minted on the
box verify on the server.
"""

from __future__ import annotations

import logging
import os
import secrets as _random
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from camera_service.config import JWT_SECRET_ENV
from camera_service.log import register_secret

log = logging.getLogger("camera_service.auth")

ENV_VAR = JWT_SECRET_ENV
GENERATED_NAME = "jwt_secret"
# 64 random bytes: RFC 7518 3.2 wants a key at least as long as the hash, and HS512 may be
# configured.
_GENERATED_BYTES = 64


class JwtSecretError(Exception):
    """The configured secret cannot be used; the message says which source and why."""


@dataclass(frozen=True, slots=True)
class JwtSecret:
    """The JWT secret in use and where it came from (for logs, never the value)."""

    value: bytes | str
    # "env", "file", "config", "generated" (created now) or "state" (created on an earlier start)
    source: str
    path: str | None = None

    def __repr__(self) -> str:
        # Keeps the value out of tracebacks and debug output.
        return f"JwtSecret(source={self.source!r}, path={self.path!r})"


def _register_for_redaction(value: bytes | str) -> None:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return
    register_secret(value)


def resolve_jwt_secret(security: Any, env: Mapping[str, str] | None = None) -> JwtSecret:
    """Find the secret per the order above; raise JwtSecretError for an unusable source.

    An explicitly configured source that is empty or unreadable is an error rather than a
    reason to fall through to the next one: silently signing with a different secret than the
    operator chose would make every token they mint fail for no visible reason.
    """
    env = os.environ if env is None else env
    result = _resolve(security, env)
    _register_for_redaction(result.value)
    return result


def _resolve(security: Any, env: Mapping[str, str]) -> JwtSecret:
    if ENV_VAR in env:
        value = env[ENV_VAR]
        if not value:
            raise JwtSecretError(f"environment variable {ENV_VAR} is set but empty")
        return JwtSecret(value, "env")

    path = getattr(security, "jwt_secret_file", None)
    if path:
        return JwtSecret(_read_secret_file(path), "file", str(path))

    configured = getattr(security, "jwt_secret", None)
    if configured is not None:
        value = configured
        if not isinstance(value, (str, bytes)) or not value:
            raise JwtSecretError("security.jwt_secret is set but empty")
        return JwtSecret(value, "config")

    return _generated_secret(str(getattr(security, "state_dir", None) or "./var"))


def _read_secret_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = fh.read()
    except OSError as exc:
        raise JwtSecretError(
            f"security.jwt_secret_file {path!r} cannot be read: {exc.strerror or exc}"
        ) from None
    data = data.rstrip(b"\r\n")
    if not data:
        raise JwtSecretError(f"security.jwt_secret_file {path!r} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # The operator's own file: point out the exposure but do not change it behind them.
        log.warning(
            "JWT secret file is accessible by group or others; chmod 600 it",
            extra={"path": str(path)},
        )
    return data


def _generated_secret(state_dir: str) -> JwtSecret:
    path = os.path.join(state_dir, GENERATED_NAME)
    existing = _read_state_secret(path)
    if existing is not None:
        return JwtSecret(existing, "state", path)

    _ensure_private_dir(state_dir)
    token = _random.token_urlsafe(_GENERATED_BYTES).encode("ascii")
    if _publish_new_file(path, token + b"\n"):
        log.info("generated a new JWT secret", extra={"path": path})
        return JwtSecret(token, "generated", path)
    # Another process (server or CLI) created it between our check and our link; use theirs
    # so that both sign with the same secret.
    existing = _read_state_secret(path)
    if existing is None:
        raise JwtSecretError(f"generated JWT secret {path!r} vanished while being created")
    return JwtSecret(existing, "state", path)


def _read_state_secret(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JwtSecretError(
            f"JWT secret {path!r} cannot be opened: {exc.strerror or exc}"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise JwtSecretError(f"JWT secret {path!r} is not a regular file")
        if stat.S_IMODE(st.st_mode) != 0o600:
            log.warning(
                "JWT secret file had loose permissions; set them to 0600",
                extra={"path": path, "mode": oct(stat.S_IMODE(st.st_mode))},
            )
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read().rstrip(b"\r\n")
    except OSError as exc:
        raise JwtSecretError(f"JWT secret {path!r} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if not data:
        raise JwtSecretError(f"JWT secret {path!r} is empty; delete it to generate a new one")
    return data


def _ensure_private_dir(path: str) -> None:
    if os.path.isdir(path):
        return
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        # makedirs is subject to the umask; the state dir must not be group-readable.
        os.chmod(path, 0o700)
    except OSError as exc:
        raise JwtSecretError(
            f"state directory {path!r} cannot be created: {exc.strerror or exc}"
        ) from None


def write_private_file(path: str, data: bytes, *, replace: bool) -> bool:
    """Write `data` to `path` atomically with mode 0600.

    The content goes to an exclusively created temp file in the same directory, is fsynced,
    and then appears under `path` in one step. With replace=False it is linked into place, which
    fails if `path` exists (returns False) so two processes can never overwrite each other's
    freshly created file; with replace=True it replaces any previous file.
    """
    directory = os.path.dirname(path) or "."
    base = os.path.basename(path)
    for _ in range(16):
        tmp = os.path.join(directory, f".{base}.{_random.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 16 collisions of 48 random bits
        raise OSError(f"cannot create a temporary file in {directory!r}")
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        _fsync_dir(directory)
        return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish_new_file(path: str, data: bytes) -> bool:
    try:
        return write_private_file(path, data, replace=False)
    except OSError as exc:
        raise JwtSecretError(
            f"JWT secret {path!r} cannot be written: {exc.strerror or exc}"
        ) from None
