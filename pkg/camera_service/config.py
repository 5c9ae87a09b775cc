"""Typed, frozen settings loaded from TOML and the environment, plus live reload.

Layers, lowest first: built-in defaults, one TOML file, `CAMERA_SERVICE_<SECTION>_<KEY>`
environment variables, then `overrides` (tests and the CLI). Every value is checked when its
layer is merged, so an error always names the place the bad value came from. This module is
the only one that reads settings from files or the environment (ARCHITECTURE section 1).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import difflib
import json
import logging
import math
import os
import re
import signal
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_SEARCH_PATHS",
    "ENV_PREFIX",
    "HMAC_ALGORITHMS",
    "JWT_SECRET_ENV",
    "MQTT_PASSWORD_ENV",
    "LIVE_KEYS",
    "SECRET_KEYS",
    "SECTIONS",
    "CameraSettings",
    "Config",
    "ConfigError",
    "ConfigWatcher",
    "LoggingSettings",
    "MediaSettings",
    "MqttSettings",
    "RecordingSettings",
    "RetentionSettings",
    "SecuritySettings",
    "ServerSettings",
    "load_config",
]

ENV_PREFIX = "CAMERA_SERVICE_"
# Read by the auth module (PROTOCOL 4.3). Its second part, JWT, is not a section name, so the
# section-based typo check below never sees it; the name is kept here so both sides agree.
JWT_SECRET_ENV = "CAMERA_SERVICE_JWT_SECRET"
# Read by the MQTT bridge (PROTOCOL 8); a secret, so it is not a config key that could be
# written into a file or shown by `config show`.
MQTT_PASSWORD_ENV = "CAMERA_SERVICE_MQTT_PASSWORD"
DEFAULT_SEARCH_PATHS: tuple[str, ...] = ("./conf/default.toml", "/etc/camera-service/config.toml")
# Only shared-secret algorithms: with an HMAC secret configured, accepting an asymmetric
# algorithm invites key-confusion attacks, and "none" would accept unsigned tokens.
HMAC_ALGORITHMS: tuple[str, ...] = ("HS256", "HS384", "HS512")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
LOG_FORMATS: tuple[str, ...] = ("json", "console")
API_KEYS_FILENAME = "api_keys.json"
SNAPSHOTS_DIRNAME = "snapshots"
RECORDINGS_DIRNAME = "recordings"


class ConfigError(ValueError):
    """A setting is missing, unknown or invalid; the message is meant for the operator."""


class _Invalid(Exception):
    """Raised by a rule; the caller adds the key name, the value and the expectation."""

    def __init__(self, expected: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected


# --------------------------------------------------------------------------------------------
# Rules: one per kind of value. `check` takes a Python value (from TOML or overrides) and
# returns the stored form; `from_env` turns an environment string into such a Python value.


def _is_int(value: Any) -> bool:
    # bool is a subclass of int, but `port = true` is a mistake, not the number 1.
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def _parse_int_text(text: str) -> int:
    stripped = text.strip()
    if not _INT_TEXT.fullmatch(stripped):
        raise _Invalid()
    return int(stripped)


def _parse_list_text(text: str) -> list[Any]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value: list[Any] = json.loads(stripped)
        except ValueError:
            raise _Invalid() from None
        return value
    return [part.strip() for part in stripped.split(",") if part.strip()]


class _Rule(abc.ABC):
    expected = ""

    @abc.abstractmethod
    def check(self, value: Any) -> Any:
        """The stored form of `value`; raises _Invalid when the value breaks the rule."""

    def from_env(self, text: str) -> Any:
        return text


class _Str(_Rule):
    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix
        if prefix is None:
            self.expected = "a non-empty string"
        else:
            self.expected = f"a string starting with {prefix!r}"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise _Invalid()
        if self.prefix is not None and not value.startswith(self.prefix):
            raise _Invalid()
        return value


class _OptionalStr(_Rule):
    """A string that may be unset; "" also means unset because TOML has no null."""

    def __init__(self, what: str) -> None:
        self.expected = f'{what} (or "" for unset)'

    def check(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _Invalid()
        return value


class _Int(_Rule):
    def __init__(self, low: int, high: int | None = None) -> None:
        self.low = low
        self.high = high
        if high is None:
            self.expected = f"an integer >= {low}"
        else:
            self.expected = f"an integer {low}-{high}"

    def check(self, value: Any) -> int:
        if not _is_int(value) or value < self.low:
            raise _Invalid()
        if self.high is not None and value > self.high:
            raise _Invalid()
        return int(value)

    def from_env(self, text: str) -> int:
        return _parse_int_text(text)


class _Float(_Rule):
    def __init__(self, low: float, inclusive: bool) -> None:
        self.low = low
        self.inclusive = inclusive
        self.expected = f"a number {'>=' if inclusive else '>'} {low:g}"

    def check(self, value: Any) -> float:
        if not _is_number(value):
            raise _Invalid()
        number = float(value)
        # inf and nan are valid TOML floats but meaningless as durations.
        if not math.isfinite(number):
            raise _Invalid()
        if number < self.low or (not self.inclusive and number == self.low):
            raise _Invalid()
        return number

    def from_env(self, text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            raise _Invalid() from None


class _Bool(_Rule):
    expected = "true or false"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Invalid()
        return value

    def from_env(self, text: str) -> Any:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise _Invalid()


class _Pattern(_Rule):
    """A string matching a regular expression; `what` says what it is for the error message."""

    def __init__(self, pattern: str, what: str, optional: bool = False) -> None:
        self.pattern = re.compile(pattern)
        self.optional = optional
        self.expected = f'{what} (or "" for the default)' if optional else what

    def check(self, value: Any) -> str | None:
        if self.optional and (value is None or value == ""):
            return None
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            raise _Invalid()
        return value


class _Choice(_Rule):
    def __init__(self, options: tuple[str, ...], any_case: bool) -> None:
        self.options = options
        self.any_case = any_case
        suffix = " (any case)" if any_case else ""
        self.expected = f"one of {', '.join(options)}{suffix}"

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid()
        candidate = value.lower() if self.any_case else value
        if candidate not in self.options:
            raise _Invalid()
        return candidate


class _AlgorithmList(_Rule):
    expected = f"a non-empty list of {', '.join(HMAC_ALGORITHMS)}"

    def check(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise _Invalid()
        for item in value:
            if not isinstance(item, str):
                raise _Invalid()
            if item.lower() == "none":
                raise _Invalid(
                    f"{item!r} is never accepted (unsigned tokens); expected {self.expected}"
                )
            if item not in HMAC_ALGORITHMS:
                raise _Invalid(
                    f"{item!r} is not an HMAC algorithm (only shared-secret algorithms are "
                    f"accepted); expected {self.expected}"
                )
        return tuple(value)

    def from_env(self, text: str) -> list[Any]:
        return _parse_list_text(text)


class _FourccList(_Rule):
    expected = 'a non-empty list of FourCC codes (4 characters each, e.g. "MJPG")'

    def check(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise _Invalid()
        for item in value:
            if not isinstance(item, str) or len(item) != 4 or not item.isascii():
                raise _Invalid()
        return tuple(value)

    def from_env(self, text: str) -> list[Any]:
        return _parse_list_text(text)


_RESOLUTION_TEXT = re.compile(r"[1-9][0-9]{0,4}x[1-9][0-9]{0,4}")


class _Resolution(_Rule):
    expected = 'a resolution "WIDTHxHEIGHT" such as "1280x720", or "" for the camera\'s own'

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid()
        if value and not _RESOLUTION_TEXT.fullmatch(value):
            raise _Invalid()
        return value


class _IntList(_Rule):
    def __init__(self, low: int) -> None:
        self.low = low
        self.expected = f"a list of integers >= {low}"

    def check(self, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)):
            raise _Invalid()
        for item in value:
            if not _is_int(item) or item < self.low:
                raise _Invalid()
        return tuple(value)

    def from_env(self, text: str) -> list[Any]:
        items = _parse_list_text(text)
        return [_parse_int_text(item) if isinstance(item, str) else item for item in items]


def _setting(default: Any, rule: _Rule) -> Any:
    return field(default=default, metadata={"rule": rule})


_PATH = _Str()
_OPTIONAL_PATH = _OptionalStr("a path string")


# --------------------------------------------------------------------------------------------
# Sections. Field order is the order of conf/default.toml and of to_dict().


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """`[server]`: the listening port and its limits (PROTOCOL 1, 8)."""

    host: str = _setting("0.0.0.0", _Str())
    port: int = _setting(8002, _Int(0, 65535))
    websocket_path: str = _setting("/ws", _Str(prefix="/"))
    max_connections: int = _setting(1000, _Int(1))
    max_message_bytes: int = _setting(1048576, _Int(1))
    max_batch: int = _setting(100, _Int(1))
    max_send_buffer_bytes: int = _setting(4194304, _Int(1))
    ping_interval: float = _setting(30.0, _Float(0, inclusive=False))
    ping_timeout: float = _setting(10.0, _Float(0, inclusive=False))
    handshake_timeout: float = _setting(5.0, _Float(0, inclusive=False))
    shutdown_timeout: float = _setting(5.0, _Float(0, inclusive=True))
    tls_cert: str | None = _setting(None, _OPTIONAL_PATH)
    tls_key: str | None = _setting(None, _OPTIONAL_PATH)


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """`[security]`: JWT, API keys, state directory, rate limits (PROTOCOL 4, 8)."""

    jwt_secret: str | None = _setting(None, _OptionalStr("a string"))
    jwt_secret_file: str | None = _setting(None, _OPTIONAL_PATH)
    jwt_algorithms: tuple[str, ...] = _setting(("HS256",), _AlgorithmList())
    jwt_leeway: float = _setting(0.0, _Float(0, inclusive=True))
    # None until resolved; __post_init__ turns it into "<state_dir>/api_keys.json" so readers
    # always get a path.
    api_keys_file: str = _setting(None, _OPTIONAL_PATH)
    state_dir: str = _setting("./var", _PATH)
    rate_limit_rpm: int = _setting(1200, _Int(0))
    rate_limit_burst: int = _setting(200, _Int(0))
    max_auth_failures: int = _setting(5, _Int(1))

    def __post_init__(self) -> None:
        if self.api_keys_file is None:
            resolved = os.path.join(self.state_dir, API_KEYS_FILENAME)
            object.__setattr__(self, "api_keys_file", resolved)


@dataclass(frozen=True, slots=True)
class CameraSettings:
    """`[camera]`: where video nodes appear and how they are probed."""

    device_dir: str = _setting("/dev", _PATH)
    device_range: tuple[int, ...] = _setting((), _IntList(0))
    probe_timeout: float = _setting(2.0, _Float(0, inclusive=False))


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """`[media]`: the media server whose URLs the camera list reports."""

    host: str = _setting("localhost", _Str())
    rtsp_port: int = _setting(8554, _Int(1, 65535))
    webrtc_port: int = _setting(8889, _Int(1, 65535))
    hls_port: int = _setting(8888, _Int(1, 65535))
    publish_rtsp: bool = _setting(False, _Bool())
    publish_on: str = _setting("demand", _Choice(("demand", "always"), any_case=False))


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """`[capture]`: how the one capture per camera is set up (PROTOCOL 5.8)."""

    formats: tuple[str, ...] = _setting(("MJPG", "YUYV"), _FourccList())
    resolution: str = _setting("", _Resolution())
    fps: float = _setting(0.0, _Float(0, inclusive=True))
    buffers: int = _setting(4, _Int(2, 32))
    idle_stop_seconds: float = _setting(5.0, _Float(0, inclusive=True))
    frame_timeout: float = _setting(5.0, _Float(0, inclusive=False))


@dataclass(frozen=True, slots=True)
class SnapshotSettings:
    """`[snapshots]`: where snapshots go and their default JPEG quality (PROTOCOL 5.9)."""

    # None until resolved: "<state_dir>/snapshots" (Config.__post_init__).
    path: str = _setting(None, _OPTIONAL_PATH)
    quality: int = _setting(85, _Int(1, 100))


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """`[recording]`: where recordings go, how they are encoded and split (PROTOCOL 5.10)."""

    # None until resolved: "<state_dir>/recordings" (Config.__post_init__).
    path: str = _setting(None, _OPTIONAL_PATH)
    codec: str = _setting("copy", _Choice(("copy", "h264"), any_case=False))
    segment_minutes: int = _setting(30, _Int(1))


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """`[retention]`: the file-system policy for old files (PROTOCOL 5.15); the API's wins."""

    policy: str = _setting("manual", _Choice(("age", "size", "manual"), any_case=False))
    max_age_days: float = _setting(30.0, _Float(0, inclusive=False))
    max_size_gb: float = _setting(10.0, _Float(0, inclusive=False))
    interval: float = _setting(600.0, _Float(0, inclusive=False))


# MQTT wildcards and NUL cannot appear in a topic name a client publishes to.
_TOPIC = _Pattern(r"[^#+\x00]+", "a topic name without '#' or '+'")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """`[mqtt]`: the fleet bridge to an MQTT broker (PROTOCOL 12); off by default."""

    enabled: bool = _setting(False, _Bool())
    host: str = _setting("localhost", _Str())
    port: int = _setting(1883, _Int(1, 65535))
    username: str | None = _setting(None, _OptionalStr("a string"))
    password_file: str | None = _setting(None, _OPTIONAL_PATH)
    tls_ca: str | None = _setting(None, _OPTIONAL_PATH)
    # None = the host name, sanitized (resolved by the bridge, which owns that rule).
    node_id: str | None = _setting(
        None, _Pattern(r"[A-Za-z0-9_-]+", "letters, digits, '_' and '-' only", optional=True)
    )
    topic_prefix: str = _setting("camera-service", _TOPIC)
    discovery: bool = _setting(True, _Bool())
    discovery_prefix: str = _setting("homeassistant", _TOPIC)
    commands: bool = _setting(False, _Bool())
    snapshot_interval: float = _setting(0.0, _Float(0, inclusive=True))


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """`[storage]`: disk use thresholds in percent (PROTOCOL 5.9, 5.14)."""

    warn_percent: int = _setting(80, _Int(1, 100))
    block_percent: int = _setting(90, _Int(1, 100))


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """`[logging]`: level, format and an optional rotated file."""

    level: str = _setting("info", _Choice(LOG_LEVELS, any_case=True))
    format: str = _setting("json", _Choice(LOG_FORMATS, any_case=False))
    file: str | None = _setting(None, _OPTIONAL_PATH)


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "security": SecuritySettings,
    "camera": CameraSettings,
    "media": MediaSettings,
    "logging": LoggingSettings,
    "capture": CaptureSettings,
    "snapshots": SnapshotSettings,
    "storage": StorageSettings,
    "recording": RecordingSettings,
    "retention": RetentionSettings,
    "mqtt": MqttSettings,
}

_RULES: dict[str, dict[str, _Rule]] = {
    name: {f.name: f.metadata["rule"] for f in dataclasses.fields(cls)}
    for name, cls in SECTIONS.items()
}

ALL_KEYS: frozenset[str] = frozenset(
    f"{section}.{key}" for section, rules in _RULES.items() for key in rules
)

LIVE_KEYS: frozenset[str] = frozenset(
    {
        "server.max_connections",
        "server.max_batch",
        "server.max_send_buffer_bytes",
        "camera.device_range",
        "camera.probe_timeout",
        "logging.level",
        "logging.format",
    }
    | {f"security.{key}" for key in _RULES["security"] if key != "state_dir"}
    | {f"media.{key}" for key in _RULES["media"]}
    | {f"capture.{key}" for key in _RULES["capture"] if key != "buffers"}
    | {"snapshots.quality"}
    | {f"storage.{key}" for key in _RULES["storage"]}
    | {"recording.codec", "recording.segment_minutes"}
    | {f"retention.{key}" for key in _RULES["retention"]}
    | {"mqtt.commands", "mqtt.snapshot_interval"}
)

SECRET_KEYS: frozenset[str] = frozenset({"security.jwt_secret"})
_MASK = "***"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration, one frozen section per table."""

    server: ServerSettings = field(default_factory=ServerSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    snapshots: SnapshotSettings = field(default_factory=SnapshotSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    # Where the file layer came from; None when only defaults, env and overrides were used.
    source: str | None = None

    def __post_init__(self) -> None:
        if self.snapshots.path is None:
            resolved = os.path.join(self.security.state_dir, SNAPSHOTS_DIRNAME)
            object.__setattr__(
                self, "snapshots", dataclasses.replace(self.snapshots, path=resolved)
            )
        if self.recording.path is None:
            resolved = os.path.join(self.security.state_dir, RECORDINGS_DIRNAME)
            object.__setattr__(
                self, "recording", dataclasses.replace(self.recording, path=resolved)
            )

    def to_dict(self, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for section in SECTIONS:
            values: dict[str, Any] = {}
            for key in _RULES[section]:
                value = getattr(getattr(self, section), key)
                if isinstance(value, tuple):
                    value = list(value)
                if mask_secrets and value is not None and f"{section}.{key}" in SECRET_KEYS:
                    value = _MASK
                values[key] = value
            result[section] = values
        return result

    def changed_keys(self, other: Config) -> set[str]:
        changed = set()
        for section in SECTIONS:
            mine = getattr(self, section)
            theirs = getattr(other, section)
            if mine == theirs:
                continue
            for key in _RULES[section]:
                if getattr(mine, key) != getattr(theirs, key):
                    changed.add(f"{section}.{key}")
        return changed


# --------------------------------------------------------------------------------------------
# Loading


def _unknown_key(section: str, key: str, where: str = "") -> str:
    message = f"unknown key {section}.{key}{where}"
    close = difflib.get_close_matches(key, list(_RULES[section]), n=1)
    if close:
        message += f" (did you mean {section}.{close[0]}?)"
    return message


def _unknown_section(section: str) -> str:
    message = f"unknown section {section}"
    close = difflib.get_close_matches(section, list(SECTIONS), n=1)
    if close:
        message += f" (did you mean {close[0]}?)"
    return message


def _checked(section: str, key: str, value: Any) -> Any:
    rule = _RULES[section][key]
    try:
        return rule.check(value)
    except _Invalid as exc:
        expected = exc.expected or f"expected {rule.expected}"
        raise ConfigError(f"{section}.{key}: {expected}, got {value!r}") from None


def _merge_tables(
    values: dict[str, dict[str, Any]], tables: Mapping[str, Any], origin: str
) -> None:
    for section, table in tables.items():
        if section not in SECTIONS:
            raise ConfigError(_unknown_section(section))
        if not isinstance(table, Mapping):
            raise ConfigError(f"{section}: expected a table of keys ({origin}), got {table!r}")
        for key, value in table.items():
            if key not in _RULES[section]:
                raise ConfigError(_unknown_key(section, key))
            values[section][key] = _checked(section, key, value)


def _read_file(source: str) -> dict[str, Any]:
    try:
        with open(source, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {source}: {exc.strerror}") from None


def _merge_env(values: dict[str, dict[str, Any]], env: Mapping[str, str]) -> None:
    # Sorted so that, with several bad variables, the reported one does not depend on the
    # order of the process environment.
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name == MQTT_PASSWORD_ENV:
            continue
        section_part, _, key_part = name[len(ENV_PREFIX) :].partition("_")
        section = section_part.lower()
        if section not in SECTIONS:
            # CAMERA_SERVICE_JWT_SECRET and other service-wide variables land here.
            continue
        if not key_part:
            raise ConfigError(f"environment variable {name} names section {section} but no key")
        key = key_part.lower()
        if key not in _RULES[section]:
            raise ConfigError(_unknown_key(section, key, f" in environment variable {name}"))
        text = env[name]
        rule = _RULES[section][key]
        try:
            values[section][key] = rule.check(rule.from_env(text))
        except _Invalid as exc:
            expected = exc.expected or f"expected {rule.expected}"
            raise ConfigError(
                f"{section}.{key} (environment variable {name}): {expected}, got {text!r}"
            ) from None


def _find_default_file() -> str | None:
    for candidate in DEFAULT_SEARCH_PATHS:
        if os.path.isfile(candidate):
            return candidate
    return None


def _check_consistency(config: Config) -> None:
    server = config.server
    if (server.tls_cert is None) != (server.tls_key is None):
        raise ConfigError(
            "server.tls_cert and server.tls_key: set both (for wss://) or neither, "
            f"got tls_cert={server.tls_cert!r} and tls_key={server.tls_key!r}"
        )
    storage = config.storage
    if storage.warn_percent > storage.block_percent:
        raise ConfigError(
            f"storage.warn_percent: expected at most storage.block_percent "
            f"({storage.block_percent!r}), got {storage.warn_percent!r}"
        )
    if server.ping_timeout > server.ping_interval:
        # picows waits for the pong inside the idle interval, so a longer timeout cannot work.
        raise ConfigError(
            f"server.ping_timeout: expected at most server.ping_interval "
            f"({server.ping_interval!r}), got {server.ping_timeout!r}"
        )


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build a validated Config; raises ConfigError with an operator-readable message."""
    if env is None:
        env = os.environ
    source = os.fspath(path) if path is not None else _find_default_file()
    values: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    if source is not None:
        _merge_tables(values, _read_file(source), f"in {source}")
    _merge_env(values, env)
    if overrides:
        _merge_tables(values, overrides, "in overrides")
    config = Config(
        **{section: cls(**values[section]) for section, cls in SECTIONS.items()},
        source=source,
    )
    _check_consistency(config)
    return config


def _apply_live(old: Config, new: Config) -> Config:
    """`new` with every restart-only key kept at its running value.

    The snapshot handed to the rest of the service then describes what is really in effect:
    a component that reads, say, `server.port` from it after a reload sees the port it is
    listening on, not the one the file now asks for.
    """
    sections = {}
    for section in SECTIONS:
        kept = {
            key: getattr(getattr(old, section), key)
            for key in _RULES[section]
            if f"{section}.{key}" not in LIVE_KEYS
        }
        sections[section] = dataclasses.replace(getattr(new, section), **kept)
    return Config(**sections, source=new.source)


# --------------------------------------------------------------------------------------------
# Live reload


class ConfigWatcher:
    """Reloads the configuration on SIGHUP and when its file changes (inotify, no polling).

    `current` is the configuration in effect. A valid new file replaces the live keys in it
    and `on_change(old, new, changed_live_keys)` runs; keys that need a restart are logged and
    kept at their running values. An invalid file is logged once and changes nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        on_change: Callable[[Config, Config, set[str]], None],
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        logger: logging.Logger | None = None,
        *,
        initial: Config | None = None,
        debounce: float = 0.1,
    ) -> None:
        self._path = os.fspath(path) if path is not None else None
        self._on_change = on_change
        self._env = env
        self._overrides = overrides
        self._log = logger if logger is not None else logging.getLogger("camera_service.config")
        self._debounce = debounce
        self.current: Config = (
            initial if initial is not None else load_config(self._path, env, overrides)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._file_watch: Any = None
        self._signal_installed = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def watched_path(self) -> str | None:
        """The file whose directory is watched, or None when there is no file to watch."""
        return self._path if self._path is not None else self.current.source

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if self._loop is not None:
            raise RuntimeError("ConfigWatcher already started")
        if loop is None:
            loop = asyncio.get_running_loop()
        target = self.watched_path
        if target is not None:
            # Imported here so that loading a config never needs the compiled binding.
            from camera_service.devices.inotify import FileWatch

            watch = FileWatch(target, self._schedule_reload, self._on_directory_gone)
            watch.start(loop)
            self._file_watch = watch
        self._loop = loop
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except BaseException:
            self.stop()
            raise
        self._signal_installed = True

    def stop(self) -> None:
        loop = self._loop
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._file_watch is not None:
            self._file_watch.stop()
            self._file_watch = None
        if self._signal_installed and loop is not None and not loop.is_closed():
            loop.remove_signal_handler(signal.SIGHUP)
        self._signal_installed = False
        self._loop = None

    def reload(self) -> bool:
        """Re-read the file now. True if it was valid (applied or unchanged), else False."""
        try:
            new = load_config(self._path, self._env, self._overrides)
        except ConfigError as exc:
            self._log.error("configuration reload rejected, keeping the running one: %s", exc)
            return False
        old = self.current
        changed = old.changed_keys(new)
        if not changed:
            self._log.debug("configuration reloaded from %s: nothing changed", new.source)
            return True
        self._log.info(
            "configuration reloaded from %s; changed keys: %s",
            new.source,
            ", ".join(sorted(changed)),
        )
        needs_restart = changed - LIVE_KEYS
        if needs_restart:
            self._log.warning(
                "changed configuration keys that take effect only after a restart: %s",
                ", ".join(sorted(needs_restart)),
            )
        live = changed & LIVE_KEYS
        if not live:
            return True
        effective = _apply_live(old, new)
        self.current = effective
        try:
            self._on_change(old, effective, live)
        except Exception:
            # The new snapshot stays: the file is valid, and a half-applied change is better
            # reported than silently rolled back in some components only.
            self._log.exception("configuration change handler failed")
        return True

    def _on_sighup(self) -> None:
        self._log.info("SIGHUP received, reloading configuration")
        self.reload()

    def _on_directory_gone(self) -> None:
        # The directory itself went away (deleted or unmounted): the kernel dropped the watch,
        # so only SIGHUP can trigger reloads from now on.
        self._log.warning(
            "configuration directory of %s is gone; file changes are no longer "
            "watched, SIGHUP still reloads",
            self.watched_path,
        )

    def _schedule_reload(self) -> None:
        # One save is often several events spread over a few reads (create, write, rename);
        # waiting for a short quiet period turns them into one reload of the finished file.
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None  # readers exist only between start() and stop()
        self._timer = self._loop.call_later(self._debounce, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.reload()
