"""camera_service.log: line format, context ids, redaction, handlers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from camera_service import log as log_module
from camera_service.config import LoggingSettings
from camera_service.log import (
    REDACTED,
    bind_correlation_id,
    client_id_var,
    configure_logging,
    correlation_id_var,
    format_timestamp,
    get_logger,
    new_correlation_id,
    redact_text,
    redact_value,
    register_secret,
    reset_logging,
)

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JWT_KEY = "k" * 32


@pytest.fixture(autouse=True)
def clean_logging():
    yield
    reset_logging()


@pytest.fixture
def out() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="debug"), stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def make_jwt() -> str:
    return jwt.encode(
        {"user_id": "alice", "role": "admin", "exp": int(time.time()) + 60},
        JWT_KEY,
        algorithm="HS256",
    )


# --------------------------------------------------------------------------------------------
# Line format


def test_json_line_shape(out):
    before = datetime.now(UTC)
    get_logger("server").info("listening on %s:%d", "0.0.0.0", 8002, extra={"port": 8002})
    after = datetime.now(UTC)
    (line,) = lines(out)
    assert list(line) == ["ts", "level", "logger", "msg", "port"]
    assert line["level"] == "info"
    assert line["logger"] == "camera_service.server"
    assert line["msg"] == "listening on 0.0.0.0:8002"
    assert line["port"] == 8002
    assert TS_RE.match(line["ts"])
    stamped = datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    # Millisecond resolution, rounded: allow one millisecond either side.
    assert before - timedelta(milliseconds=1) <= stamped <= after + timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("method", "level"),
    [("debug", "debug"), ("warning", "warning"), ("error", "error"), ("critical", "critical")],
)
def test_level_names_are_lower_case(out, method, level):
    getattr(get_logger("x"), method)("m")
    assert lines(out)[0]["level"] == level


def test_timestamp_is_utc_even_with_a_local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        moment = 1795000000.123
        expected = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert format_timestamp(moment) == expected + ".123Z"
        assert format_timestamp(0.0) == "1970-01-01T00:00:00.000Z"
        assert format_timestamp(86399.9994) == "1970-01-01T23:59:59.999Z"
        assert format_timestamp(86399.9996) == "1970-01-02T00:00:00.000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_exception_text_is_included(out):
    try:
        raise KeyError("missing-camera")
    except KeyError:
        get_logger("x").exception("lookup failed")
    (line,) = lines(out)
    assert line["msg"] == "lookup failed"
    assert line["level"] == "error"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("KeyError: 'missing-camera'")


def test_stack_info_is_included(out):
    get_logger("x").info("where", stack_info=True)
    assert lines(out)[0]["stack"].startswith("Stack (most recent call last):")


def test_extra_cannot_overwrite_core_fields(out):
    get_logger("x").info("m", extra={"level": "fake", "ts": "then"})
    line = lines(out)[0]
    assert (line["level"], line["extra_level"], line["extra_ts"]) == ("info", "fake", "then")
    assert TS_RE.match(line["ts"])


def test_values_json_cannot_hold_are_kept_readable(out):
    class Camera:
        def __str__(self) -> str:
            return "Camera(/dev/video0)"

    huge = 2**70
    get_logger("x").info(
        "m", extra={"id": huge, "cam": Camera(), "raw": b"\xffab", "ids": (1, 2), "tags": {"a"}}
    )
    line = lines(out)[0]
    assert line["id"] == str(huge)
    assert line["cam"] == "Camera(/dev/video0)"
    assert line["raw"] == "\ufffdab"
    assert line["ids"] == [1, 2]
    assert line["tags"] == ["a"]


def test_bad_format_arguments_do_not_raise(out):
    get_logger("x").info("two %s %s", "only-one")
    assert lines(out)[0]["msg"] == "two %s %s (unformattable log arguments ('only-one',))"


def test_console_format_is_one_readable_line():
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="info", format="console"), stream=stream)
    with bind_correlation_id("c-1"):
        get_logger("cameras").warning(
            "camera %s gone", "/dev/video0", extra={"reason": "unplugged", "note": "two words"}
        )
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING camera_service\.cameras: "
        r'camera /dev/video0 gone correlation_id=c-1 reason=unplugged note="two words"\n',
        text,
    )


def test_console_format_appends_exception_and_stack():
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="info", format="console"), stream=stream)
    try:
        raise OSError("disk")
    except OSError:
        get_logger("x").error("failed", exc_info=True, stack_info=True)
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("ERROR   camera_service.x: failed")
    assert rest[0] == "Traceback (most recent call last):"
    assert "OSError: disk" in rest
    assert "Stack (most recent call last):" in rest


# --------------------------------------------------------------------------------------------
# Correlation and client ids


def test_context_ids_appear_only_when_set(out):
    logger = get_logger("rpc")
    logger.info("outside")
    with bind_correlation_id("abc-1") as cid:
        assert cid == "abc-1"
        token = client_id_var.set("client-7")
        try:
            logger.info("inside")
        finally:
            client_id_var.reset(token)
    first, second = lines(out)
    assert "correlation_id" not in first and "client_id" not in first
    assert (second["correlation_id"], second["client_id"]) == ("abc-1", "client-7")
    assert correlation_id_var.get() is None


def test_explicit_extra_correlation_id_wins(out):
    with bind_correlation_id("from-context"):
        get_logger("x").info("m", extra={"correlation_id": "explicit"})
    assert lines(out)[0]["correlation_id"] == "explicit"


def test_bind_generates_and_restores():
    with bind_correlation_id() as outer:
        with bind_correlation_id() as inner:
            assert correlation_id_var.get() == inner != outer
        assert correlation_id_var.get() == outer
    assert correlation_id_var.get() is None


def test_new_correlation_ids_are_short_and_unique():
    ids = [new_correlation_id() for _ in range(10000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= 16 and re.fullmatch(r"[0-9a-f]{6}-[0-9a-f]+", i) for i in ids)


async def test_correlation_ids_do_not_leak_between_tasks(out):
    logger = get_logger("rpc")
    a_bound, b_bound = asyncio.Event(), asyncio.Event()

    async def request(name: str, mine: asyncio.Event, other: asyncio.Event) -> None:
        with bind_correlation_id(f"cid-{name}"):
            client_id_var.set(f"client-{name}")
            mine.set()
            # Interleave: each task logs only after the other has bound its own id.
            await other.wait()
            logger.info("handling %s", name)
            await asyncio.sleep(0)
            logger.info("done %s", name)

    await asyncio.gather(request("a", a_bound, b_bound), request("b", b_bound, a_bound))
    records = [r for r in lines(out) if r["logger"] == "camera_service.rpc"]
    assert len(records) == 4
    for record in records:
        name = record["msg"].split()[-1]
        assert record["correlation_id"] == f"cid-{name}"
        assert record["client_id"] == f"client-{name}"
    assert correlation_id_var.get() is None and client_id_var.get() is None


# --------------------------------------------------------------------------------------------
# Redaction


def test_real_jwt_is_redacted_from_message_and_args(out):
    token = make_jwt()
    logger = get_logger("auth")
    logger.info("token %s rejected", token)
    logger.info(f"Authorization: Bearer {token}")
    text = out.getvalue()
    assert token not in text
    assert token.split(".")[2] not in text
    msgs = [line["msg"] for line in lines(out)]
    assert msgs == [f"token {REDACTED} rejected", f"Authorization: Bearer {REDACTED}"]


def test_registered_secret_is_redacted_everywhere(out):
    secret = secrets.token_urlsafe(32)
    register_secret(secret)
    register_secret(secret)  # idempotent
    get_logger("auth").warning(
        "key %s failed", secret, extra={"detail": f"got {secret}!", "items": [secret]}
    )
    assert secret not in out.getvalue()
    line = lines(out)[0]
    assert line["msg"] == f"key {REDACTED} failed"
    assert line["detail"] == f"got {REDACTED}!"
    assert line["items"] == [REDACTED]


def test_longer_secret_containing_a_shorter_one_is_removed_whole():
    short = "pw-" + secrets.token_hex(8)
    long = short + "-and-more-" + secrets.token_hex(8)
    register_secret(short)
    register_secret(long)
    assert redact_text(f"a {long} b {short}") == f"a {REDACTED} b {REDACTED}"


def test_register_secret_rejects_non_strings_and_ignores_empty():
    with pytest.raises(TypeError, match="expects a str, got bytes"):
        register_secret(b"x")  # type: ignore[arg-type]
    register_secret("")
    assert redact_text("nothing to hide") == "nothing to hide"


def test_api_key_in_extra_fields_and_nested_structures(out):
    api_key = secrets.token_urlsafe(32)
    get_logger("auth").info(
        "authenticate",
        extra={
            "api_key": api_key,
            "params": {
                "auth_token": api_key,
                "auth_type": "api_key",
                "headers": [{"Authorization": f"Bearer {api_key}"}],
            },
            "key_id": "k-123",
            "client": {
                "x-api-key": api_key,
                "refresh_token": api_key,
                "password": "pw",
                "Secret": "s",
                "jwt_secret": "j",
                "token": "t",
                "key": "k",
            },
        },
    )
    assert api_key not in out.getvalue()
    line = lines(out)[0]
    assert line["api_key"] == REDACTED
    assert line["params"] == {
        "auth_token": REDACTED,
        "auth_type": "api_key",
        "headers": [{"Authorization": REDACTED}],
    }
    assert line["key_id"] == "k-123"
    assert line["client"] == {
        k: REDACTED
        for k in ("x-api-key", "refresh_token", "password", "Secret", "jwt_secret", "token", "key")
    }


def test_exception_text_is_redacted(out, monkeypatch):
    # Only our handlers, so our filter is what formats the traceback.
    monkeypatch.setattr(logging.getLogger(), "handlers", our_handlers())
    token = make_jwt()
    secret = secrets.token_hex(20)
    register_secret(secret)
    try:
        raise ValueError(f"bad token {token} for secret {secret}")
    except ValueError:
        get_logger("auth").exception("verification crashed")
    text = out.getvalue()
    assert token not in text and secret not in text
    assert lines(out)[0]["exc"].endswith(f"ValueError: bad token {REDACTED} for secret {REDACTED}")


def test_redaction_also_reaches_the_file(tmp_path):
    path = tmp_path / "cs.log"
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="info", file=str(path)), stream=stream)
    token = make_jwt()
    get_logger("x").info("t=%s", token, extra={"api_key": "abc"})
    for text in (stream.getvalue(), path.read_text()):
        record = json.loads(text)
        assert (record["msg"], record["api_key"]) == (f"t={REDACTED}", REDACTED)


def test_redact_value_limits_depth_and_keeps_numbers():
    deep: dict = {}
    node = deep
    for _ in range(20):
        node["next"] = {}
        node = node["next"]
    result = redact_value(deep)
    for _ in range(8):
        result = result["next"]
    assert result == "[...]"
    assert redact_value({1: 2.5, "ok": True, "none": None}) == {"1": 2.5, "ok": True, "none": None}


def test_jwt_like_strings_without_three_segments_stay():
    assert redact_text("eyJhbGciOi only one segment") == "eyJhbGciOi only one segment"
    assert redact_text("version 1.2.3") == "version 1.2.3"


# --------------------------------------------------------------------------------------------
# Cost when disabled, handlers, files


class CountingArg:
    def __init__(self) -> None:
        self.count = 0

    def __str__(self) -> str:
        self.count += 1
        return "arg"


def test_disabled_level_does_no_work(tmp_path, monkeypatch):
    configure_logging(
        LoggingSettings(level="warning", file=str(tmp_path / "cs.log")), stream=io.StringIO()
    )
    # Only our handlers: pytest's capture handlers would format the record on their own.
    monkeypatch.setattr(logging.getLogger(), "handlers", our_handlers())
    logger = get_logger("rpc")
    assert not logger.isEnabledFor(logging.INFO)
    arg = CountingArg()
    logger.info("request %s", arg)
    logger.debug("request %s", arg)
    assert arg.count == 0
    # An emitted record is formatted once, although two of our handlers write it.
    logger.warning("request %s", arg)
    assert arg.count == 1
    assert json.loads((tmp_path / "cs.log").read_text())["msg"] == "request arg"


def our_handlers() -> list[logging.Handler]:
    return [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, log_module.RedactionFilter) for f in h.filters)
    ]


def test_configure_is_idempotent_and_reset_restores_levels():
    root, ours = logging.getLogger(), logging.getLogger("camera_service")
    levels = (root.level, ours.level)
    first = io.StringIO()
    configure_logging(LoggingSettings(level="error"), stream=first)
    assert (root.level, ours.level) == (logging.ERROR, logging.ERROR)
    second = io.StringIO()
    configure_logging(LoggingSettings(level="DEBUG", format="console"), stream=second)
    assert len(our_handlers()) == 1
    assert ours.level == logging.DEBUG
    get_logger("x").debug("only in the second stream")
    assert first.getvalue() == ""
    assert "only in the second stream" in second.getvalue()
    reset_logging()
    assert our_handlers() == []
    assert (root.level, ours.level) == levels


def test_configure_rejects_unknown_level_and_format():
    with pytest.raises(ValueError, match="unknown log level 'trace'"):
        configure_logging(LoggingSettings(level="trace"))
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging(LoggingSettings(format="xml"))


def test_unopenable_file_keeps_the_previous_setup(tmp_path):
    stream = io.StringIO()
    configure_logging(LoggingSettings(level="info"), stream=stream)
    with pytest.raises(IsADirectoryError):
        configure_logging(LoggingSettings(level="info", file=str(tmp_path)), stream=io.StringIO())
    get_logger("x").info("still here")
    assert lines(stream)[0]["msg"] == "still here"


def test_default_stream_is_stdout(capsys):
    configure_logging(LoggingSettings(level="info"))
    get_logger("x").info("to stdout")
    assert json.loads(capsys.readouterr().out)["msg"] == "to stdout"


def test_file_output_rotates(tmp_path):
    path = tmp_path / "logs" / "deep" / "cs.log"
    configure_logging(
        LoggingSettings(level="info", file=str(path)),
        stream=io.StringIO(),
        max_file_bytes=2000,
        file_backups=2,
    )
    logger = get_logger("rotation")
    for i in range(200):
        logger.info("line %03d", i, extra={"pad": "x" * 40})
    names = sorted(os.listdir(path.parent))
    assert names == ["cs.log", "cs.log.1", "cs.log.2"]
    for name in names:
        content = (path.parent / name).read_text()
        assert os.path.getsize(path.parent / name) <= 2000
        for text in content.splitlines():
            assert json.loads(text)["logger"] == "camera_service.rotation"
    assert json.loads(path.read_text().splitlines()[-1])["msg"] == "line 199"


def test_get_logger_places_names_under_camera_service():
    assert get_logger("server").name == "camera_service.server"
    assert get_logger("camera_service").name == "camera_service"
    assert get_logger("camera_service.auth").name == "camera_service.auth"
    assert get_logger("camera_servicex").name == "camera_service.camera_servicex"
    assert get_logger("rpc") is logging.getLogger("camera_service.rpc")


def test_third_party_records_get_the_same_treatment(out):
    token = make_jwt()
    logging.getLogger("picows").warning("handshake with %s", token)
    line = lines(out)[0]
    assert (line["logger"], line["msg"]) == ("picows", f"handshake with {REDACTED}")


def test_formatter_alone_formats_exceptions():
    try:
        raise RuntimeError("plain")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "m", None, sys.exc_info()
        )
    data = json.loads(log_module.JsonFormatter().format(record))
    assert data["exc"].endswith("RuntimeError: plain")


def test_forked_child_gets_its_own_correlation_prefix():
    parent = new_correlation_id().split("-")[0]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one id and leave without running pytest's teardown
        try:
            os.write(write_fd, new_correlation_id().encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    child_id = os.read(read_fd, 100).decode()
    os.close(read_fd)
    os.waitpid(pid, 0)
    prefix, counter = child_id.split("-")
    assert prefix != parent
    assert counter == "1"


def test_picows_connection_chatter_only_in_debug():
    import logging
    from types import SimpleNamespace

    from camera_service.log import configure_logging, reset_logging

    try:
        configure_logging(SimpleNamespace(level="info", format="json", file=None))
        assert logging.getLogger("picows").getEffectiveLevel() == logging.WARNING
        configure_logging(SimpleNamespace(level="debug", format="json", file=None))
        assert logging.getLogger("picows").getEffectiveLevel() == logging.DEBUG
        configure_logging(SimpleNamespace(level="error", format="json", file=None))
        assert logging.getLogger("picows").getEffectiveLevel() == logging.ERROR
    finally:
        reset_logging()
