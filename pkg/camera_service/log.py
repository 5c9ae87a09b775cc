"""Structured logging: one JSON object a line, correlation ids in contextvars, redaction.

Everything expensive (message formatting, redaction, encoding) happens in handler filters and
formatters, which the logging module only reaches for records that pass the level check; a
disabled `logger.debug(...)` on the request path costs one integer compare.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import logging
import logging.handlers
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any, Protocol

import orjson

__all__ = [
    "REDACTED",
    "ConsoleFormatter",
    "JsonFormatter",
    "RedactionFilter",
    "bind_correlation_id",
    "client_id_var",
    "configure_logging",
    "correlation_id_var",
    "format_timestamp",
    "get_logger",
    "new_correlation_id",
    "redact_text",
    "redact_value",
    "register_secret",
    "reset_logging",
]

ROOT_LOGGER_NAME = "camera_service"
REDACTED = "[REDACTED]"
DEFAULT_FILE_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_FILE_BACKUPS = 5

# Context, not thread-local: under asyncio many requests share one thread (PROTOCOL 9.11).
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "camera_service_correlation_id", default=None
)
client_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "camera_service_client_id", default=None
)


# --------------------------------------------------------------------------------------------
# Correlation ids

_cid_prefix = os.urandom(3).hex()
_cid_counter = itertools.count(1)


def _reseed_after_fork() -> None:
    # A forked child would otherwise hand out the same ids as its parent.
    global _cid_prefix, _cid_counter
    _cid_prefix = os.urandom(3).hex()
    _cid_counter = itertools.count(1)


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_correlation_id() -> str:
    """A short id unique within this process run: random process prefix plus a counter.

    Cheaper than uuid4 (no system call per id) and still unlikely to repeat across restarts.
    """
    return f"{_cid_prefix}-{next(_cid_counter):x}"


@contextlib.contextmanager
def bind_correlation_id(cid: str | None = None) -> Iterator[str]:
    """Set the correlation id for the current context (a new one if `cid` is None)."""
    if cid is None:
        cid = new_correlation_id()
    token = correlation_id_var.set(cid)
    try:
        yield cid
    finally:
        correlation_id_var.reset(token)


def get_logger(name: str) -> logging.Logger:
    """A logger under the `camera_service` hierarchy, so configure_logging governs it."""
    if name != ROOT_LOGGER_NAME and not name.startswith(ROOT_LOGGER_NAME + "."):
        name = f"{ROOT_LOGGER_NAME}.{name}"
    return logging.getLogger(name)


# --------------------------------------------------------------------------------------------
# Redaction

# A JWT is three base64url segments; the header (and payload) are JSON objects, which always
# encode to a leading "eyJ". The signature may be empty only for unsigned tokens.
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_SENSITIVE_NAMES = frozenset(
    {
        "token",
        "tokens",
        "auth_token",
        "access_token",
        "refresh_token",
        "id_token",
        "bearer",
        "api_key",
        "api_keys",
        "apikey",
        "key",
        "keys",
        "secret",
        "secrets",
        "client_secret",
        "jwt_secret",
        "password",
        "passwd",
        "passphrase",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "credentials",
    }
)
_SENSITIVE_SUFFIXES = ("_token", "_secret", "_password", "_key", "_apikey")
_MAX_DEPTH = 8

_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact every later occurrence of this exact string in our log output.

    Meant for real secrets (the JWT secret, API keys that authenticated): each new value
    recompiles one pattern, so it is not for arbitrary untrusted input.
    """
    global _secrets_re
    if not isinstance(value, str):
        raise TypeError(f"register_secret expects a str, got {type(value).__name__}")
    if not value:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first so that a secret containing another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


@functools.lru_cache(maxsize=1024)
def _is_sensitive_name(name: str) -> bool:
    normalized = name.lower().replace("-", "_")
    return normalized in _SENSITIVE_NAMES or normalized.endswith(_SENSITIVE_SUFFIXES)


def redact_text(text: str) -> str:
    """Replace registered secrets and JWT-looking strings in `text`."""
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "eyJ" in text:
        text = _JWT_RE.sub(REDACTED, text)
    return text


def redact_value(value: Any, _depth: int = 0) -> Any:
    """A JSON-friendly copy of `value` with secrets removed at any nesting depth.

    Mapping entries whose key is named like a credential are replaced whole; strings are
    scrubbed with redact_text; objects of other types are stringified first, because their
    str() is what would be logged and may carry a token.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if _depth >= _MAX_DEPTH:
        return "[...]"
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else str(key)
            result[name] = REDACTED if _is_sensitive_name(name) else redact_value(item, _depth + 1)
        return result
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(item, _depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    return redact_text(str(value))


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_MARK = "_camera_service_redacted"
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", _MARK}
)
_CONTEXT_ATTRS = ("correlation_id", "client_id")
_exception_formatter = logging.Formatter()


class RedactionFilter(logging.Filter):
    """Scrubs a record in place before any of our handlers formats it.

    In place, so the message is formatted and scrubbed once even when the record goes to
    several handlers (stdout and file); the mark makes the second pass free.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attrs = record.__dict__
        if attrs.get(_MARK):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not raise into the caller
            message = f"{record.msg!s} (unformattable log arguments {record.args!r})"
        record.msg = redact_text(message)
        record.args = None
        for name in [n for n in attrs if n not in _STANDARD_ATTRS]:
            attrs[name] = REDACTED if _is_sensitive_name(name) else redact_value(attrs[name])
        if record.exc_info and not record.exc_text:
            record.exc_text = _exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        attrs[_MARK] = True
        return True


# --------------------------------------------------------------------------------------------
# Formatting

_ts_cache: tuple[int, str] = (-1, "")


def format_timestamp(created: float) -> str:
    """ISO-8601 UTC with milliseconds and Z, e.g. 2026-11-26T03:04:05.123Z."""
    global _ts_cache
    # Rounded as a whole: subtracting the seconds first loses float precision and turns
    # .123 into .122 for present-day epochs.
    seconds, millis = divmod(round(created * 1000), 1000)
    cached_seconds, prefix = _ts_cache
    if cached_seconds != seconds:
        # gmtime, never localtime: the Z suffix promises UTC (PROTOCOL 9.13).
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _ts_cache = (seconds, prefix)
    return f"{prefix}.{millis:03d}Z"


def _context_fields(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    attrs = record.__dict__
    cid = attrs.get("correlation_id") or correlation_id_var.get()
    if cid is not None:
        yield "correlation_id", cid
    client = attrs.get("client_id") or client_id_var.get()
    if client is not None:
        yield "client_id", client


def _extra_fields(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    for name, value in record.__dict__.items():
        if name not in _STANDARD_ATTRS and name not in _CONTEXT_ATTRS:
            yield name, value


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


def _json_safe(value: Any) -> Any:
    # orjson refuses integers beyond 64 bits (JSON-RPC ids may be such); strings keep them exact.
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _dumps(obj: Any) -> str:
    try:
        data = orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        data = orjson.dumps(_json_safe(obj), default=str, option=orjson.OPT_NON_STR_KEYS)
    return data.decode("utf-8")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, context, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": format_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_context_fields(record))
        for name, value in _extra_fields(record):
            # An extra named like a core field must not overwrite it.
            out[f"extra_{name}" if name in out else name] = value
        exc = _exception_text(self, record)
        if exc is not None:
            out["exc"] = exc
        if record.stack_info:
            out["stack"] = record.stack_info
        return _dumps(out)


_BARE_WORD = re.compile(r"[^\s\"=]+")


def _console_value(value: Any) -> str:
    if isinstance(value, str) and _BARE_WORD.fullmatch(value):
        return value
    return _dumps(value)


class ConsoleFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then key=value context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            format_timestamp(record.created),
            f"{record.levelname:<7}",
            f"{record.name}:",
            record.getMessage(),
        ]
        for name, value in _context_fields(record):
            parts.append(f"{name}={_console_value(value)}")
        for name, value in _extra_fields(record):
            parts.append(f"{name}={_console_value(value)}")
        line = " ".join(parts)
        exc = _exception_text(self, record)
        if exc is not None:
            line = f"{line}\n{exc}"
        if record.stack_info:
            line = f"{line}\n{record.stack_info}"
        return line


# --------------------------------------------------------------------------------------------
# Set-up


class LoggingSettingsLike(Protocol):
    @property
    def level(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def file(self) -> str | None: ...


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FORMATTERS: dict[str, type[logging.Formatter]] = {
    "json": JsonFormatter,
    "console": ConsoleFormatter,
}

_setup_lock = threading.Lock()
_installed: list[logging.Handler] = []
_saved_levels: dict[str, int] | None = None


def configure_logging(
    settings: LoggingSettingsLike,
    *,
    stream: IO[str] | None = None,
    max_file_bytes: int = DEFAULT_FILE_MAX_BYTES,
    file_backups: int = DEFAULT_FILE_BACKUPS,
) -> None:
    """Install (or replace) our handlers on the root logger per the `logging` settings.

    Safe to call again on a live reload: the new handlers are built first, so a file that
    cannot be opened raises here and leaves the previous set-up working.
    """
    global _saved_levels
    level_name = settings.level.lower()
    if level_name not in _LEVELS:
        raise ValueError(f"unknown log level {settings.level!r}")
    if settings.format not in _FORMATTERS:
        raise ValueError(f"unknown log format {settings.format!r}")
    level = _LEVELS[level_name]
    formatter = _FORMATTERS[settings.format]()
    redaction = RedactionFilter()

    handlers: list[logging.Handler] = [
        logging.StreamHandler(stream if stream is not None else sys.stdout)
    ]
    if settings.file:
        directory = os.path.dirname(settings.file)
        if directory:
            os.makedirs(directory, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.file,
                maxBytes=max_file_bytes,
                backupCount=file_backups,
                encoding="utf-8",
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redaction)

    root = logging.getLogger()
    ours = logging.getLogger(ROOT_LOGGER_NAME)
    with _setup_lock:
        if _saved_levels is None:
            _saved_levels = {
                "": root.level,
                ROOT_LOGGER_NAME: ours.level,
                "picows": logging.getLogger("picows").level,
            }
        old = list(_installed)
        _installed[:] = handlers
        for handler in handlers:
            root.addHandler(handler)
        for handler in old:
            root.removeHandler(handler)
        root.setLevel(level)
        ours.setLevel(level)
        # picows logs every connection and disconnection at info: only worth it when debugging.
        logging.getLogger("picows").setLevel(
            level if level <= logging.DEBUG else max(level, logging.WARNING)
        )
    for handler in old:
        handler.close()


def reset_logging() -> None:
    """Remove our handlers and restore the logger levels seen before configure_logging."""
    global _saved_levels
    with _setup_lock:
        old = list(_installed)
        _installed.clear()
        root = logging.getLogger()
        for handler in old:
            root.removeHandler(handler)
        if _saved_levels is not None:
            root.setLevel(_saved_levels[""])
            logging.getLogger(ROOT_LOGGER_NAME).setLevel(_saved_levels[ROOT_LOGGER_NAME])
            logging.getLogger("picows").setLevel(_saved_levels["picows"])
            _saved_levels = None
    for handler in old:
        handler.close()


class LoggingComponent:
    """Follows the live `logging.level` and `logging.format` keys (the first configuration is
    applied by the entry point, before anything logs)."""

    def __init__(self, settings: LoggingSettingsLike) -> None:
        self._settings = settings

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def apply(self, config: Any) -> None:
        settings = config.logging
        if (settings.level, settings.format) != (self._settings.level, self._settings.format):
            configure_logging(settings)
        self._settings = settings
