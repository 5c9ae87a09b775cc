"""camera_service.config: defaults, layering, validation messages, helpers."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camera_service import config as config_module
from camera_service.config import (
    LIVE_KEYS,
    Config,
    ConfigError,
    LoggingSettings,
    SecuritySettings,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOML = REPO / "conf" / "default.toml"
TEST_TOML = REPO / "conf" / "test.toml"
SHIPPED_SEARCH_PATHS = config_module.DEFAULT_SEARCH_PATHS


def toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    raise TypeError(value)


def write_toml(path: Path, tables: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in tables.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {toml_literal('' if value is None else value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_default_search(tmp_path_factory, monkeypatch):
    """Keep `path=None` hermetic: the repo's conf/default.toml is in the working directory."""
    absent = tmp_path_factory.mktemp("nosearch") / "absent.toml"
    monkeypatch.setattr(config_module, "DEFAULT_SEARCH_PATHS", (str(absent),))


# --------------------------------------------------------------------------------------------
# Defaults and the shipped files

EXPECTED_DEFAULTS = {
    "server": {
        "host": "0.0.0.0",
        "port": 8002,
        "websocket_path": "/ws",
        "max_connections": 1000,
        "max_message_bytes": 1048576,
        "max_batch": 100,
        "max_send_buffer_bytes": 4194304,
        "ping_interval": 30.0,
        "ping_timeout": 10.0,
        "handshake_timeout": 5.0,
        "shutdown_timeout": 5.0,
        "tls_cert": None,
        "tls_key": None,
    },
    "security": {
        "jwt_secret": None,
        "jwt_secret_file": None,
        "jwt_algorithms": ["HS256"],
        "jwt_leeway": 0.0,
        "api_keys_file": os.path.join("./var", "api_keys.json"),
        "state_dir": "./var",
        "rate_limit_rpm": 1200,
        "rate_limit_burst": 200,
        "max_auth_failures": 5,
    },
    "camera": {"device_dir": "/dev", "device_range": [], "probe_timeout": 2.0},
    "media": {
        "host": "localhost",
        "rtsp_port": 8554,
        "webrtc_port": 8889,
        "hls_port": 8888,
        "publish_rtsp": False,
        "publish_on": "demand",
    },
    "logging": {"level": "info", "format": "json", "file": None},
    "capture": {
        "formats": ["MJPG", "YUYV"],
        "resolution": "",
        "fps": 0.0,
        "buffers": 4,
        "idle_stop_seconds": 5.0,
        "frame_timeout": 5.0,
    },
    "snapshots": {"path": "./var/snapshots", "quality": 85},
    "storage": {"warn_percent": 80, "block_percent": 90},
    "recording": {"path": "./var/recordings", "codec": "copy", "segment_minutes": 30},
    "retention": {
        "policy": "manual",
        "max_age_days": 30.0,
        "max_size_gb": 10.0,
        "interval": 600.0,
    },
    "mqtt": {
        "enabled": False,
        "host": "localhost",
        "port": 1883,
        "username": None,
        "password_file": None,
        "tls_ca": None,
        "node_id": None,
        "topic_prefix": "camera-service",
        "discovery": True,
        "discovery_prefix": "homeassistant",
        "commands": False,
        "snapshot_interval": 0.0,
    },
}


def test_defaults_without_any_file():
    cfg = load_config(env={})
    assert cfg.source is None
    assert cfg.to_dict() == EXPECTED_DEFAULTS
    assert cfg == Config()
    assert cfg.camera.device_range == ()
    assert cfg.security.jwt_algorithms == ("HS256",)
    assert type(cfg.server.ping_interval) is float


def test_default_toml_lists_every_key_with_its_default_and_a_comment():
    cfg = load_config(DEFAULT_TOML, env={})
    assert cfg.changed_keys(Config()) == set()
    assert cfg.source == str(DEFAULT_TOML)
    tables = tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))
    written = {f"{section}.{key}" for section, values in tables.items() for key in values}
    assert written == config_module.ALL_KEYS
    lines = DEFAULT_TOML.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[index - 1].startswith("# "), f"no comment above {line!r}"


def test_test_toml_loads_with_loopback_and_free_port():
    cfg = load_config(TEST_TOML, env={})
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 0)
    assert (cfg.logging.level, cfg.logging.format) == ("debug", "console")


def test_search_order_prefers_first_existing_file(tmp_path, monkeypatch):
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    write_toml(second, {"server": {"port": 9100}})
    monkeypatch.setattr(config_module, "DEFAULT_SEARCH_PATHS", (str(first), str(second)))
    assert load_config(env={}).source == str(second)
    assert load_config(env={}).server.port == 9100
    write_toml(first, {"server": {"port": 9200}})
    assert load_config(env={}).server.port == 9200


def test_search_uses_conf_default_toml_of_working_directory(tmp_path, monkeypatch):
    assert SHIPPED_SEARCH_PATHS == ("./conf/default.toml", "/etc/camera-service/config.toml")
    monkeypatch.setattr(config_module, "DEFAULT_SEARCH_PATHS", SHIPPED_SEARCH_PATHS)
    (tmp_path / "conf").mkdir()
    write_toml(tmp_path / "conf" / "default.toml", {"media": {"host": "cams.example"}})
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={})
    assert cfg.source == "./conf/default.toml"
    assert cfg.media.host == "cams.example"


def test_settings_are_frozen_and_slotted():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server = cfg.server  # type: ignore[misc]
    assert not hasattr(cfg.server, "__dict__")


def test_live_keys_are_exactly_the_protocol_live_column():
    assert LIVE_KEYS == {
        "server.max_connections",
        "server.max_batch",
        "server.max_send_buffer_bytes",
        "security.jwt_secret",
        "security.jwt_secret_file",
        "security.jwt_algorithms",
        "security.jwt_leeway",
        "security.api_keys_file",
        "security.rate_limit_rpm",
        "security.rate_limit_burst",
        "security.max_auth_failures",
        "camera.device_range",
        "camera.probe_timeout",
        "media.host",
        "media.rtsp_port",
        "media.webrtc_port",
        "media.hls_port",
        "logging.level",
        "logging.format",
        "capture.formats",
        "capture.resolution",
        "capture.fps",
        "capture.idle_stop_seconds",
        "capture.frame_timeout",
        "snapshots.quality",
        "storage.warn_percent",
        "storage.block_percent",
        "media.publish_rtsp",
        "media.publish_on",
        "recording.codec",
        "recording.segment_minutes",
        "retention.policy",
        "retention.max_age_days",
        "retention.max_size_gb",
        "retention.interval",
        "mqtt.commands",
        "mqtt.snapshot_interval",
    }
    assert isinstance(LIVE_KEYS, frozenset)


# --------------------------------------------------------------------------------------------
# File values and layering


def test_file_values_are_typed(tmp_path):
    path = write_toml(
        tmp_path / "c.toml",
        {
            "server": {
                "port": 9000,
                "ping_interval": 17,
                "shutdown_timeout": 0.5,
                "tls_cert": "/c.pem",
                "tls_key": "/k.pem",
            },
            "security": {"jwt_algorithms": ["HS512", "HS256"], "jwt_leeway": 2},
            "camera": {"device_range": [0, 2]},
            "logging": {"level": "WARNING", "file": "/tmp/cs.log"},
        },
    )
    cfg = load_config(path, env={})
    assert cfg.server.port == 9000
    assert cfg.server.ping_interval == 17.0 and type(cfg.server.ping_interval) is float
    assert cfg.server.shutdown_timeout == 0.5
    assert (cfg.server.tls_cert, cfg.server.tls_key) == ("/c.pem", "/k.pem")
    assert cfg.security.jwt_algorithms == ("HS512", "HS256")
    assert cfg.security.jwt_leeway == 2.0
    assert cfg.camera.device_range == (0, 2)
    assert cfg.logging.level == "warning"
    assert cfg.logging.file == "/tmp/cs.log"
    assert cfg.source == str(path)


def test_empty_string_means_unset_for_optional_paths_and_secret(tmp_path):
    path = write_toml(
        tmp_path / "c.toml",
        {
            "security": {"jwt_secret": "", "jwt_secret_file": "", "api_keys_file": ""},
            "logging": {"file": ""},
        },
    )
    cfg = load_config(path, env={})
    assert cfg.security.jwt_secret is None
    assert cfg.security.jwt_secret_file is None
    assert cfg.security.api_keys_file == os.path.join("./var", "api_keys.json")
    assert cfg.logging.file is None


def test_precedence_defaults_file_env_overrides(tmp_path):
    path = write_toml(
        tmp_path / "c.toml",
        {"server": {"port": 9001, "max_batch": 11, "max_connections": 12}},
    )
    env = {"CAMERA_SERVICE_SERVER_PORT": "9002", "CAMERA_SERVICE_SERVER_MAX_BATCH": "21"}
    overrides = {"server": {"port": 9003}}
    cfg = load_config(path, env=env, overrides=overrides)
    assert cfg.server.port == 9003  # overrides beat env
    assert cfg.server.max_batch == 21  # env beats file
    assert cfg.server.max_connections == 12  # file beats defaults
    assert cfg.server.max_message_bytes == 1048576  # default
    assert load_config(path, env=env).server.port == 9002
    assert load_config(path, env={}).server.port == 9001


def test_env_none_reads_process_environment(tmp_path, monkeypatch):
    path = write_toml(tmp_path / "c.toml", {"server": {"port": 9001}})
    monkeypatch.setenv("CAMERA_SERVICE_SERVER_PORT", "9444")
    assert load_config(path).server.port == 9444
    assert load_config(path, env={}).server.port == 9001


@pytest.mark.parametrize(
    ("name", "text", "section", "key", "expected"),
    [
        ("CAMERA_SERVICE_SERVER_HOST", "127.0.0.1", "server", "host", "127.0.0.1"),
        ("CAMERA_SERVICE_SERVER_PORT", " 9000 ", "server", "port", 9000),
        ("CAMERA_SERVICE_SERVER_PING_INTERVAL", "12.5", "server", "ping_interval", 12.5),
        ("CAMERA_SERVICE_SERVER_SHUTDOWN_TIMEOUT", "0", "server", "shutdown_timeout", 0.0),
        (
            "CAMERA_SERVICE_SECURITY_JWT_SECRET",
            "s3cr3t-value",
            "security",
            "jwt_secret",
            "s3cr3t-value",
        ),
        (
            "CAMERA_SERVICE_SECURITY_JWT_ALGORITHMS",
            "HS256, HS512",
            "security",
            "jwt_algorithms",
            ("HS256", "HS512"),
        ),
        (
            "CAMERA_SERVICE_SECURITY_JWT_ALGORITHMS",
            '["HS384"]',
            "security",
            "jwt_algorithms",
            ("HS384",),
        ),
        ("CAMERA_SERVICE_CAMERA_DEVICE_RANGE", "0, 2,5", "camera", "device_range", (0, 2, 5)),
        ("CAMERA_SERVICE_CAMERA_DEVICE_RANGE", "[1, 3]", "camera", "device_range", (1, 3)),
        ("CAMERA_SERVICE_CAMERA_DEVICE_RANGE", "", "camera", "device_range", ()),
        ("CAMERA_SERVICE_LOGGING_LEVEL", "Debug", "logging", "level", "debug"),
        ("CAMERA_SERVICE_LOGGING_FILE", "", "logging", "file", None),
        ("CAMERA_SERVICE_MEDIA_HLS_PORT", "+8080", "media", "hls_port", 8080),
    ],
)
def test_env_values_are_parsed_per_type(name, text, section, key, expected):
    cfg = load_config(None, env={name: text}, overrides=None)
    assert getattr(getattr(cfg, section), key) == expected


def test_env_empty_string_unsets_a_path_set_by_the_file(tmp_path):
    path = write_toml(tmp_path / "c.toml", {"server": {"tls_cert": "/c", "tls_key": "/k"}})
    env = {"CAMERA_SERVICE_SERVER_TLS_CERT": "", "CAMERA_SERVICE_SERVER_TLS_KEY": ""}
    cfg = load_config(path, env=env)
    assert (cfg.server.tls_cert, cfg.server.tls_key) == (None, None)


def test_env_ignores_jwt_secret_variable_and_foreign_names():
    env = {
        "CAMERA_SERVICE_JWT_SECRET": "from-env",
        "CAMERA_SERVICE_DEBUG": "1",
        "CAMERA_SERVICE_FOO_BAR": "x",
        "camera_service_server_port": "1",
        "HOME": "/root",
    }
    assert load_config(None, env=env).changed_keys(Config()) == set()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CAMERA_SERVICE_SERVER_PROT": "1"},
            "unknown key server.prot in environment variable CAMERA_SERVICE_SERVER_PROT "
            "(did you mean server.port?)",
        ),
        (
            {"CAMERA_SERVICE_LOGGING_COLOUR": "1"},
            "unknown key logging.colour in environment variable CAMERA_SERVICE_LOGGING_COLOUR",
        ),
        (
            {"CAMERA_SERVICE_SERVER": "1"},
            "environment variable CAMERA_SERVICE_SERVER names section server but no key",
        ),
        (
            {"CAMERA_SERVICE_SERVER_PORT": "abc"},
            "server.port (environment variable CAMERA_SERVICE_SERVER_PORT): "
            "expected an integer 0-65535, got 'abc'",
        ),
        (
            {"CAMERA_SERVICE_SERVER_PORT": "80.5"},
            "server.port (environment variable CAMERA_SERVICE_SERVER_PORT): "
            "expected an integer 0-65535, got '80.5'",
        ),
        (
            {"CAMERA_SERVICE_SERVER_PORT": "70000"},
            "server.port (environment variable CAMERA_SERVICE_SERVER_PORT): "
            "expected an integer 0-65535, got '70000'",
        ),
        (
            {"CAMERA_SERVICE_SERVER_PING_TIMEOUT": "fast"},
            "server.ping_timeout (environment variable CAMERA_SERVICE_SERVER_PING_TIMEOUT): "
            "expected a number > 0, got 'fast'",
        ),
        (
            {"CAMERA_SERVICE_SERVER_PING_TIMEOUT": "nan"},
            "server.ping_timeout (environment variable CAMERA_SERVICE_SERVER_PING_TIMEOUT): "
            "expected a number > 0, got 'nan'",
        ),
        (
            {"CAMERA_SERVICE_CAMERA_DEVICE_RANGE": "0,x"},
            "camera.device_range (environment variable CAMERA_SERVICE_CAMERA_DEVICE_RANGE): "
            "expected a list of integers >= 0, got '0,x'",
        ),
        (
            {"CAMERA_SERVICE_CAMERA_DEVICE_RANGE": "[1,"},
            "camera.device_range (environment variable CAMERA_SERVICE_CAMERA_DEVICE_RANGE): "
            "expected a list of integers >= 0, got '[1,'",
        ),
        (
            {"CAMERA_SERVICE_CAMERA_DEVICE_RANGE": "[-1]"},
            "camera.device_range (environment variable CAMERA_SERVICE_CAMERA_DEVICE_RANGE): "
            "expected a list of integers >= 0, got '[-1]'",
        ),
        (
            {"CAMERA_SERVICE_SECURITY_JWT_ALGORITHMS": "none"},
            "security.jwt_algorithms (environment variable CAMERA_SERVICE_SECURITY_JWT_ALGORITHMS)"
            ": 'none' is never accepted (unsigned tokens); expected a non-empty list of HS256, "
            "HS384, HS512, got 'none'",
        ),
        (
            {"CAMERA_SERVICE_SECURITY_JWT_ALGORITHMS": ""},
            "security.jwt_algorithms (environment variable CAMERA_SERVICE_SECURITY_JWT_ALGORITHMS)"
            ": expected a non-empty list of HS256, HS384, HS512, got ''",
        ),
        (
            {"CAMERA_SERVICE_LOGGING_FORMAT": "xml"},
            "logging.format (environment variable CAMERA_SERVICE_LOGGING_FORMAT): "
            "expected one of json, console, got 'xml'",
        ),
    ],
)
def test_env_errors_name_variable_and_key(env, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, env=env)
    assert str(info.value) == message


@given(st.integers(min_value=0, max_value=65535))
@settings(max_examples=50)
def test_env_port_round_trips_every_valid_port(port):
    assert load_config(None, env={"CAMERA_SERVICE_SERVER_PORT": str(port)}).server.port == port


# --------------------------------------------------------------------------------------------
# Validation: every key with a bad value, through a real TOML file

N = "expected a non-empty string"
OPT = 'expected a path string (or "" for unset)'
ALGS = "expected a non-empty list of HS256, HS384, HS512"

FOURCC = 'expected a non-empty list of FourCC codes (4 characters each, e.g. "MJPG")'
RES = 'expected a resolution "WIDTHxHEIGHT" such as "1280x720", or "" for the camera\'s own'

BAD_VALUES = [
    ("server", "host", 5, f"{N}, got 5"),
    ("server", "host", "", f"{N}, got ''"),
    ("server", "port", 70000, "expected an integer 0-65535, got 70000"),
    ("server", "port", -1, "expected an integer 0-65535, got -1"),
    ("server", "port", True, "expected an integer 0-65535, got True"),
    ("server", "port", 8002.0, "expected an integer 0-65535, got 8002.0"),
    ("server", "port", "8002", "expected an integer 0-65535, got '8002'"),
    ("server", "websocket_path", "ws", "expected a string starting with '/', got 'ws'"),
    ("server", "websocket_path", 1, "expected a string starting with '/', got 1"),
    ("server", "max_connections", 0, "expected an integer >= 1, got 0"),
    ("server", "max_message_bytes", 0, "expected an integer >= 1, got 0"),
    ("server", "max_batch", 0, "expected an integer >= 1, got 0"),
    ("server", "max_batch", 1.5, "expected an integer >= 1, got 1.5"),
    ("server", "max_send_buffer_bytes", -5, "expected an integer >= 1, got -5"),
    ("server", "ping_interval", 0, "expected a number > 0, got 0"),
    ("server", "ping_interval", True, "expected a number > 0, got True"),
    ("server", "ping_interval", "30", "expected a number > 0, got '30'"),
    ("server", "ping_interval", math.inf, "expected a number > 0, got inf"),
    ("server", "ping_timeout", -1.5, "expected a number > 0, got -1.5"),
    ("server", "ping_timeout", math.nan, "expected a number > 0, got nan"),
    ("server", "handshake_timeout", 0.0, "expected a number > 0, got 0.0"),
    ("server", "shutdown_timeout", -0.5, "expected a number >= 0, got -0.5"),
    ("server", "tls_cert", 5, f"{OPT}, got 5"),
    ("server", "tls_key", ["a"], f"{OPT}, got ['a']"),
    ("security", "jwt_secret", 5, 'expected a string (or "" for unset), got 5'),
    ("security", "jwt_secret_file", False, f"{OPT}, got False"),
    ("security", "jwt_algorithms", [], f"{ALGS}, got []"),
    ("security", "jwt_algorithms", "HS256", f"{ALGS}, got 'HS256'"),
    ("security", "jwt_algorithms", [256], f"{ALGS}, got [256]"),
    (
        "security",
        "jwt_algorithms",
        ["none"],
        f"'none' is never accepted (unsigned tokens); {ALGS}, got ['none']",
    ),
    (
        "security",
        "jwt_algorithms",
        ["HS256", "None"],
        f"'None' is never accepted (unsigned tokens); {ALGS}, got ['HS256', 'None']",
    ),
    (
        "security",
        "jwt_algorithms",
        ["RS256"],
        "'RS256' is not an HMAC algorithm (only shared-secret algorithms are accepted); "
        f"{ALGS}, got ['RS256']",
    ),
    (
        "security",
        "jwt_algorithms",
        ["HS256", "ES256"],
        "'ES256' is not an HMAC algorithm (only shared-secret algorithms are accepted); "
        f"{ALGS}, got ['HS256', 'ES256']",
    ),
    (
        "security",
        "jwt_algorithms",
        ["PS512"],
        "'PS512' is not an HMAC algorithm (only shared-secret algorithms are accepted); "
        f"{ALGS}, got ['PS512']",
    ),
    (
        "security",
        "jwt_algorithms",
        ["hs256"],
        "'hs256' is not an HMAC algorithm (only shared-secret algorithms are accepted); "
        f"{ALGS}, got ['hs256']",
    ),
    ("security", "jwt_leeway", -1, "expected a number >= 0, got -1"),
    ("security", "api_keys_file", 1, f"{OPT}, got 1"),
    ("security", "state_dir", "", f"{N}, got ''"),
    ("security", "rate_limit_rpm", -1, "expected an integer >= 0, got -1"),
    ("security", "rate_limit_burst", -1, "expected an integer >= 0, got -1"),
    ("security", "max_auth_failures", 0, "expected an integer >= 1, got 0"),
    ("camera", "device_dir", 0, f"{N}, got 0"),
    ("camera", "device_range", [-1], "expected a list of integers >= 0, got [-1]"),
    ("camera", "device_range", "0,1", "expected a list of integers >= 0, got '0,1'"),
    ("camera", "device_range", [1.0], "expected a list of integers >= 0, got [1.0]"),
    ("camera", "device_range", [True], "expected a list of integers >= 0, got [True]"),
    ("camera", "probe_timeout", 0, "expected a number > 0, got 0"),
    ("media", "host", "", f"{N}, got ''"),
    ("media", "rtsp_port", 0, "expected an integer 1-65535, got 0"),
    ("media", "webrtc_port", 65536, "expected an integer 1-65535, got 65536"),
    ("media", "hls_port", "8888", "expected an integer 1-65535, got '8888'"),
    (
        "logging",
        "level",
        "verbose",
        "expected one of debug, info, warning, error (any case), got 'verbose'",
    ),
    ("logging", "level", 10, "expected one of debug, info, warning, error (any case), got 10"),
    ("logging", "format", "JSON", "expected one of json, console, got 'JSON'"),
    ("logging", "file", 3, f"{OPT}, got 3"),
    ("capture", "formats", [], f"{FOURCC}, got []"),
    ("capture", "formats", ["MJPEG"], f"{FOURCC}, got ['MJPEG']"),
    ("capture", "resolution", "1280*720", f"{RES}, got '1280*720'"),
    ("capture", "resolution", "0x720", f"{RES}, got '0x720'"),
    ("capture", "fps", -1, "expected a number >= 0, got -1"),
    ("capture", "buffers", 1, "expected an integer 2-32, got 1"),
    ("capture", "buffers", 33, "expected an integer 2-32, got 33"),
    ("capture", "idle_stop_seconds", -1, "expected a number >= 0, got -1"),
    ("capture", "frame_timeout", 0, "expected a number > 0, got 0"),
    ("snapshots", "path", 3, f"{OPT}, got 3"),
    ("snapshots", "quality", 0, "expected an integer 1-100, got 0"),
    ("snapshots", "quality", 101, "expected an integer 1-100, got 101"),
    ("storage", "warn_percent", 0, "expected an integer 1-100, got 0"),
    ("storage", "block_percent", 101, "expected an integer 1-100, got 101"),
    ("media", "publish_rtsp", "yes", "expected true or false, got 'yes'"),
    ("media", "publish_rtsp", 1, "expected true or false, got 1"),
    ("media", "publish_on", "never", "expected one of demand, always, got 'never'"),
    ("recording", "path", 3, f"{OPT}, got 3"),
    ("recording", "codec", "h265", "expected one of copy, h264, got 'h265'"),
    ("recording", "segment_minutes", 0, "expected an integer >= 1, got 0"),
    ("retention", "policy", "forever", "expected one of age, size, manual, got 'forever'"),
    ("retention", "max_age_days", 0, "expected a number > 0, got 0"),
    ("retention", "max_size_gb", -1, "expected a number > 0, got -1"),
    ("retention", "interval", 0, "expected a number > 0, got 0"),
    ("mqtt", "enabled", "true", "expected true or false, got 'true'"),
    ("mqtt", "host", "", f"{N}, got ''"),
    ("mqtt", "port", 0, "expected an integer 1-65535, got 0"),
    ("mqtt", "username", 5, 'expected a string (or "" for unset), got 5'),
    ("mqtt", "password_file", 5, f"{OPT}, got 5"),
    ("mqtt", "tls_ca", [], f"{OPT}, got []"),
    (
        "mqtt",
        "node_id",
        "box/1",
        "expected letters, digits, '_' and '-' only (or \"\" for the default), got 'box/1'",
    ),
    ("mqtt", "topic_prefix", "a/#", "expected a topic name without '#' or '+', got 'a/#'"),
    ("mqtt", "discovery", 0, "expected true or false, got 0"),
    ("mqtt", "discovery_prefix", "", "expected a topic name without '#' or '+', got ''"),
    ("mqtt", "commands", "off", "expected true or false, got 'off'"),
    ("mqtt", "snapshot_interval", -1, "expected a number >= 0, got -1"),
]


def test_bad_value_table_covers_every_key():
    assert {f"{s}.{k}" for s, k, _, _ in BAD_VALUES} == config_module.ALL_KEYS


@pytest.mark.parametrize(("section", "key", "value", "message"), BAD_VALUES)
def test_bad_value_in_file_names_key_value_and_expectation(tmp_path, section, key, value, message):
    path = write_toml(tmp_path / "bad.toml", {section: {key: value}})
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{section}.{key}: {message}"


@pytest.mark.parametrize(("section", "key", "value", "message"), BAD_VALUES)
def test_bad_value_in_overrides_gives_the_same_message(section, key, value, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides={section: {key: value}})
    assert str(info.value) == f"{section}.{key}: {message}"


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serverr]\nport = 1\n", "unknown section serverr (did you mean server?)"),
        ("[plugins]\nx = 1\n", "unknown section plugins"),
        ("port = 1\n", "unknown section port"),
        ("[server]\nprot = 1\n", "unknown key server.prot (did you mean server.port?)"),
        ("[camera]\nresolution = '1x1'\n", "unknown key camera.resolution"),
    ],
)
def test_unknown_section_or_key_in_file(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == message


def test_section_that_is_not_a_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("server = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"server: expected a table of keys (in {path}), got 5"


def test_unknown_names_in_overrides():
    with pytest.raises(ConfigError, match=r"^unknown section nope$"):
        load_config(None, env={}, overrides={"nope": {}})
    with pytest.raises(ConfigError, match=r"^unknown key media\.hostname \(did you mean"):
        load_config(None, env={}, overrides={"media": {"hostname": "x"}})
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides={"media": "x"})  # type: ignore[dict-item]
    assert str(info.value) == "media: expected a table of keys (in overrides), got 'x'"


def test_overrides_accept_none_for_optional_values():
    cfg = load_config(
        None,
        env={"CAMERA_SERVICE_LOGGING_FILE": "/tmp/x.log"},
        overrides={"logging": {"file": None}, "security": {"jwt_secret": None}},
    )
    assert cfg.logging.file is None
    assert cfg.security.jwt_secret is None


def test_toml_syntax_error_names_file_and_parser_message(tmp_path):
    path = tmp_path / "broken.toml"
    text = "[server]\nport = = 1\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(tomllib.TOMLDecodeError) as parser:
        tomllib.loads(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: invalid TOML: {parser.value}"
    assert "line 2" in str(info.value)


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[media]\nhost = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: invalid TOML: not UTF-8 text (invalid continuation byte)"


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    assert str(info.value) == f"cannot read config file {missing}: No such file or directory"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert str(info.value) == f"cannot read config file {tmp_path}: Is a directory"


@pytest.mark.parametrize(
    ("cert", "key", "ok"),
    [
        (None, None, True),
        ("/c.pem", "/k.pem", True),
        ("/c.pem", None, False),
        (None, "/k.pem", False),
    ],
)
def test_tls_cert_and_key_both_or_neither(cert, key, ok):
    overrides = {"server": {"tls_cert": cert, "tls_key": key}}
    if ok:
        cfg = load_config(None, env={}, overrides=overrides)
        assert (cfg.server.tls_cert, cfg.server.tls_key) == (cert, key)
        return
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides=overrides)
    assert str(info.value) == (
        "server.tls_cert and server.tls_key: set both (for wss://) or neither, "
        f"got tls_cert={cert!r} and tls_key={key!r}"
    )


def test_api_keys_file_defaults_into_state_dir():
    cfg = load_config(None, env={}, overrides={"security": {"state_dir": "/srv/cs"}})
    assert cfg.security.api_keys_file == "/srv/cs/api_keys.json"
    cfg = load_config(
        None, env={}, overrides={"security": {"state_dir": "/srv/cs", "api_keys_file": "/k.json"}}
    )
    assert cfg.security.api_keys_file == "/k.json"
    assert SecuritySettings(state_dir="rel").api_keys_file == "rel/api_keys.json"


# --------------------------------------------------------------------------------------------
# to_dict and changed_keys


def test_to_dict_masks_secrets_unless_asked():
    cfg = load_config(None, env={}, overrides={"security": {"jwt_secret": "topsecret-value"}})
    assert cfg.to_dict()["security"]["jwt_secret"] == "***"
    assert cfg.to_dict(mask_secrets=False)["security"]["jwt_secret"] == "topsecret-value"
    assert "topsecret-value" not in repr(cfg.to_dict())
    assert Config().to_dict()["security"]["jwt_secret"] is None


def test_to_dict_round_trips_through_toml(tmp_path):
    overrides = {
        "server": {"port": 1234, "tls_cert": "/c", "tls_key": "/k"},
        "security": {"jwt_secret": "abc", "jwt_algorithms": ["HS384"]},
        "camera": {"device_range": [3, 1]},
        "logging": {"level": "error", "format": "console", "file": "/var/log/cs.log"},
    }
    cfg = load_config(None, env={}, overrides=overrides)
    path = write_toml(tmp_path / "dump.toml", cfg.to_dict(mask_secrets=False))
    again = load_config(path, env={})
    assert again.changed_keys(cfg) == set()
    assert dataclasses.replace(again, source=None) == cfg


def test_changed_keys_lists_dotted_keys_both_ways():
    a = Config()
    b = load_config(
        None,
        env={},
        overrides={
            "server": {"port": 1},
            "camera": {"device_range": [0]},
            "logging": {"level": "DEBUG"},
        },
    )
    expected = {"server.port", "camera.device_range", "logging.level"}
    assert a.changed_keys(b) == expected
    assert b.changed_keys(a) == expected
    assert a.changed_keys(a) == set()
    # Same values from another source are not a change.
    assert dataclasses.replace(a, source="/x.toml").changed_keys(a) == set()


def test_changing_state_dir_moves_the_default_key_store_and_snapshots():
    a = Config()
    b = load_config(None, env={}, overrides={"security": {"state_dir": "/elsewhere"}})
    assert a.changed_keys(b) == {
        "security.state_dir",
        "security.api_keys_file",
        "snapshots.path",
        "recording.path",
    }


def test_logging_settings_defaults():
    assert LoggingSettings() == LoggingSettings(level="info", format="json", file=None)


def test_ping_timeout_may_not_exceed_ping_interval():
    # picows waits for the pong inside the idle interval; a longer timeout cannot work.
    with pytest.raises(ConfigError) as err:
        load_config(None, env={}, overrides={"server": {"ping_interval": 5, "ping_timeout": 6}})
    assert (
        str(err.value)
        == "server.ping_timeout: expected at most server.ping_interval (5.0), got 6.0"
    )
    cfg = load_config(None, env={}, overrides={"server": {"ping_interval": 5, "ping_timeout": 5}})
    assert cfg.server.ping_timeout == 5.0


def test_storage_warn_may_not_exceed_block():
    with pytest.raises(ConfigError, match=r"^storage\.warn_percent: expected at most"):
        load_config(env={}, overrides={"storage": {"warn_percent": 95, "block_percent": 90}})


def test_snapshots_path_defaults_under_the_state_dir():
    cfg = load_config(env={}, overrides={"security": {"state_dir": "/srv/cam"}})
    assert cfg.snapshots.path == "/srv/cam/snapshots"
    cfg = load_config(env={}, overrides={"snapshots": {"path": "/data/snaps"}})
    assert cfg.snapshots.path == "/data/snaps"
    cfg = load_config(env={"CAMERA_SERVICE_CAPTURE_FORMATS": "YUYV,MJPG"})
    assert cfg.capture.formats == ("YUYV", "MJPG")
