"""ConfigWatcher with real files, real inotify and a real SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

from camera_service import config as config_module
from camera_service.config import Config, ConfigWatcher

WAIT = 5.0
# Longer than the watcher's debounce plus scheduling slack: enough for a second, unwanted
# reload to have happened if the watcher were going to do one.
SETTLE = 0.4


class Recorder(logging.Handler):
    """Collects log records and lets a test await the next one of a given level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._waiters: list[tuple[int, asyncio.Event]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for level, event in self._waiters:
            if record.levelno == level:
                event.set()

    def event_for(self, level: int) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.append((level, event))
        return event

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


class Changes:
    def __init__(self) -> None:
        self.calls: list[tuple[Config, Config, set[str]]] = []
        self.event = asyncio.Event()

    def __call__(self, old: Config, new: Config, changed: set[str]) -> None:
        self.calls.append((old, new, changed))
        self.event.set()

    async def wait(self) -> None:
        await asyncio.wait_for(self.event.wait(), WAIT)
        self.event.clear()


@pytest.fixture
def recorder():
    logger = logging.getLogger(f"test.config_reload.{id(object())}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = Recorder()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


@pytest.fixture
def conf_file(tmp_path) -> Path:
    path = tmp_path / "etc" / "camera.toml"
    path.parent.mkdir()
    path.write_text("[server]\nmax_batch = 10\n", encoding="utf-8")
    return path


@pytest.fixture
async def started(conf_file, recorder):
    logger, handler = recorder
    changes = Changes()
    watcher = ConfigWatcher(conf_file, changes, env={}, logger=logger)
    watcher.start(asyncio.get_running_loop())
    yield watcher, changes, handler
    watcher.stop()


async def test_in_place_write_reloads_once_with_changed_keys(started, conf_file):
    watcher, changes, log = started
    old = watcher.current
    assert old.server.max_batch == 10
    conf_file.write_text("[server]\nmax_batch = 20\n[media]\nhost = 'cams.local'\n")
    await changes.wait()
    await asyncio.sleep(SETTLE)
    assert len(changes.calls) == 1
    before, after, changed = changes.calls[0]
    assert before is old
    assert after is watcher.current
    assert changed == {"server.max_batch", "media.host"}
    assert (after.server.max_batch, after.media.host) == (20, "cams.local")
    assert log.messages(logging.INFO) == [
        f"configuration reloaded from {conf_file}; changed keys: media.host, server.max_batch"
    ]
    assert log.messages(logging.WARNING) == []


async def test_replace_by_rename_reloads(started, conf_file):
    watcher, changes, _ = started
    temp = conf_file.parent / ".camera.toml.swp"
    temp.write_text("[security]\nrate_limit_rpm = 60\n")
    os.replace(temp, conf_file)
    await changes.wait()
    await asyncio.sleep(SETTLE)
    assert len(changes.calls) == 1
    # The file no longer sets max_batch, so it returns to its default as well.
    assert changes.calls[0][2] == {"security.rate_limit_rpm", "server.max_batch"}
    assert watcher.current.security.rate_limit_rpm == 60
    assert watcher.current.server.max_batch == 100


async def test_burst_of_saves_gives_one_reload_of_the_final_content(started, conf_file):
    watcher, changes, _ = started
    for batch in range(11, 18):
        conf_file.write_text(f"[server]\nmax_batch = {batch}\n")
    await changes.wait()
    await asyncio.sleep(SETTLE)
    assert len(changes.calls) == 1
    assert watcher.current.server.max_batch == 17


async def test_other_files_in_the_directory_are_ignored(started, conf_file):
    _, changes, log = started
    (conf_file.parent / "other.toml").write_text("garbage = = =")
    await asyncio.sleep(SETTLE)
    assert changes.calls == []
    assert log.records == []


async def test_invalid_file_is_logged_once_and_keeps_current(started, conf_file):
    watcher, changes, log = started
    before = watcher.current
    errored = log.event_for(logging.ERROR)
    conf_file.write_text("[server]\nmax_batch = 0\n")
    await asyncio.wait_for(errored.wait(), WAIT)
    await asyncio.sleep(SETTLE)
    assert log.messages(logging.ERROR) == [
        "configuration reload rejected, keeping the running one: "
        "server.max_batch: expected an integer >= 1, got 0"
    ]
    assert watcher.current is before
    assert changes.calls == []
    # A corrected file is picked up afterwards.
    conf_file.write_text("[server]\nmax_batch = 30\n")
    await changes.wait()
    assert watcher.current.server.max_batch == 30


async def test_deleted_file_keeps_current_until_it_comes_back(started, conf_file):
    watcher, changes, log = started
    before = watcher.current
    errored = log.event_for(logging.ERROR)
    conf_file.unlink()
    await asyncio.wait_for(errored.wait(), WAIT)
    assert log.messages(logging.ERROR) == [
        "configuration reload rejected, keeping the running one: "
        f"cannot read config file {conf_file}: No such file or directory"
    ]
    assert watcher.current is before
    conf_file.write_text("[server]\nmax_batch = 40\n")
    await changes.wait()
    assert watcher.current.server.max_batch == 40


async def test_restart_keys_are_warned_and_kept_at_running_values(started, conf_file):
    watcher, changes, log = started
    warned = log.event_for(logging.WARNING)
    conf_file.write_text("[server]\nmax_batch = 10\nport = 9100\n[logging]\nlevel = 'debug'\n")
    await changes.wait()
    await asyncio.wait_for(warned.wait(), WAIT)
    old, new, changed = changes.calls[0]
    assert changed == {"logging.level"}
    assert new.logging.level == "debug"
    # Still what the server listens on: the port needs a restart.
    assert new.server.port == 8002
    assert log.messages(logging.INFO) == [
        f"configuration reloaded from {conf_file}; changed keys: logging.level, server.port"
    ]
    assert log.messages(logging.WARNING) == [
        "changed configuration keys that take effect only after a restart: server.port"
    ]


async def test_only_restart_keys_changed_calls_nobody(conf_file, recorder):
    logger, log = recorder
    changes = Changes()
    watcher = ConfigWatcher(conf_file, changes, env={}, logger=logger)
    before = watcher.current
    conf_file.write_text("[server]\nmax_batch = 10\nhost = '127.0.0.1'\n")
    assert watcher.reload() is True
    assert changes.calls == []
    assert watcher.current is before
    assert log.messages(logging.WARNING) == [
        "changed configuration keys that take effect only after a restart: server.host"
    ]
    # Until the restart, every reload reminds the operator.
    assert watcher.reload() is True
    assert len(log.messages(logging.WARNING)) == 2


async def test_sighup_reloads(conf_file, recorder):
    logger, log = recorder
    changes = Changes()
    env = {"CAMERA_SERVICE_MEDIA_RTSP_PORT": "8554"}
    watcher = ConfigWatcher(conf_file, changes, env=env, logger=logger)
    watcher.start(asyncio.get_running_loop())
    try:
        # Only the environment changes, so no inotify event can be what triggers the reload.
        env["CAMERA_SERVICE_MEDIA_RTSP_PORT"] = "9554"
        os.kill(os.getpid(), signal.SIGHUP)
        await changes.wait()
        assert changes.calls[0][2] == {"media.rtsp_port"}
        assert watcher.current.media.rtsp_port == 9554
        assert "SIGHUP received, reloading configuration" in log.messages(logging.INFO)
    finally:
        watcher.stop()


async def test_reload_returns_validity(conf_file, recorder):
    logger, log = recorder
    changes = Changes()
    watcher = ConfigWatcher(conf_file, changes, env={}, logger=logger)
    assert watcher.reload() is True  # unchanged file
    assert changes.calls == []
    conf_file.write_text("[server]\nmax_batch = 'many'\n")
    assert watcher.reload() is False
    assert watcher.current.server.max_batch == 10
    conf_file.write_text("[server]\nmax_batch = 50\n")
    assert watcher.reload() is True
    assert changes.calls[0][2] == {"server.max_batch"}
    assert watcher.current.server.max_batch == 50


async def test_failing_change_handler_is_logged_and_snapshot_kept(conf_file, recorder):
    logger, log = recorder

    def broken(old, new, changed):
        raise RuntimeError("component refused")

    watcher = ConfigWatcher(conf_file, broken, env={}, logger=logger)
    conf_file.write_text("[server]\nmax_batch = 60\n")
    assert watcher.reload() is True
    assert watcher.current.server.max_batch == 60
    errors = [r for r in log.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["configuration change handler failed"]
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


async def test_stop_removes_signal_handler_reader_and_fd(conf_file, recorder):
    logger, _ = recorder
    changes = Changes()
    previous = signal.getsignal(signal.SIGHUP)
    watcher = ConfigWatcher(conf_file, changes, env={}, logger=logger)
    watcher.start(asyncio.get_running_loop())
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)
    fd = watcher._file_watch.fileno()
    watcher.stop()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
    with pytest.raises(OSError):
        os.fstat(fd)
    conf_file.write_text("[server]\nmax_batch = 70\n")
    await asyncio.sleep(SETTLE)
    assert changes.calls == []
    watcher.stop()  # a second stop is harmless
    signal.signal(signal.SIGHUP, previous)


async def test_start_twice_is_an_error(started):
    watcher, _, _ = started
    with pytest.raises(RuntimeError, match="already started"):
        watcher.start(asyncio.get_running_loop())


async def test_start_failure_on_missing_directory_leaves_nothing_behind(tmp_path, recorder):
    logger, _ = recorder
    path = tmp_path / "gone" / "c.toml"
    watcher = ConfigWatcher(path, lambda *a: None, env={}, logger=logger, initial=Config())
    previous = signal.getsignal(signal.SIGHUP)
    with pytest.raises(FileNotFoundError):
        watcher.start(asyncio.get_running_loop())
    assert signal.getsignal(signal.SIGHUP) is previous
    assert watcher._file_watch is None
    # The watcher can be started once the directory exists.
    path.parent.mkdir()
    path.write_text("")
    watcher.start(asyncio.get_running_loop())
    watcher.stop()


async def test_removed_directory_is_reported(started, conf_file):
    _, _, log = started
    warned = log.event_for(logging.WARNING)
    conf_file.unlink()
    conf_file.parent.rmdir()
    await asyncio.wait_for(warned.wait(), WAIT)
    assert (
        f"configuration directory of {conf_file} is gone; file changes are no longer watched, "
        "SIGHUP still reloads"
    ) in log.messages(logging.WARNING)


async def test_without_a_file_only_sighup_is_used(tmp_path, monkeypatch, recorder):
    logger, _ = recorder
    monkeypatch.setattr(config_module, "DEFAULT_SEARCH_PATHS", (str(tmp_path / "none.toml"),))
    changes = Changes()
    env = {"CAMERA_SERVICE_CAMERA_PROBE_TIMEOUT": "2"}
    watcher = ConfigWatcher(None, changes, env=env, logger=logger)
    assert watcher.watched_path is None
    watcher.start(asyncio.get_running_loop())
    try:
        assert watcher._file_watch is None
        env["CAMERA_SERVICE_CAMERA_PROBE_TIMEOUT"] = "0.5"
        os.kill(os.getpid(), signal.SIGHUP)
        await changes.wait()
        assert watcher.current.camera.probe_timeout == 0.5
    finally:
        watcher.stop()


async def test_initial_snapshot_is_used_as_given(conf_file, recorder):
    logger, _ = recorder
    initial = Config()
    changes = Changes()
    watcher = ConfigWatcher(conf_file, changes, env={}, logger=logger, initial=initial)
    assert watcher.current is initial
    assert watcher.reload() is True
    assert changes.calls[0][2] == {"server.max_batch"}


async def test_saves_spread_over_several_reads_give_one_reload(started, conf_file):
    watcher, changes, _ = started
    # Each write is read by the loop before the next one: the pending reload is pushed back
    # every time instead of running once per write.
    for batch in (21, 22, 23):
        conf_file.write_text(f"[server]\nmax_batch = {batch}\n")
        await asyncio.sleep(0.02)
    await changes.wait()
    await asyncio.sleep(SETTLE)
    assert len(changes.calls) == 1
    assert watcher.current.server.max_batch == 23


async def test_start_without_a_loop_uses_the_running_one(conf_file, recorder):
    logger, _ = recorder
    changes = Changes()
    watcher = ConfigWatcher(conf_file, changes, env={}, logger=logger)
    watcher.start()
    try:
        conf_file.write_text("[server]\nmax_batch = 80\n")
        await changes.wait()
        assert watcher.current.server.max_batch == 80
    finally:
        watcher.stop()


def test_start_outside_the_main_thread_fails_cleanly(conf_file, recorder):
    # Signal handlers can only be installed from the main thread; the watcher must then
    # release the inotify fd and reader it already set up.
    logger, _ = recorder
    result: dict[str, object] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            watcher = ConfigWatcher(conf_file, lambda *a: None, env={}, logger=logger)
            try:
                watcher.start(loop)
            except Exception as exc:
                result["error"] = exc
            result["inotify"] = watcher._file_watch
            result["readers"] = len(loop._selector.get_map())  # type: ignore[attr-defined]
        finally:
            loop.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT)
    assert isinstance(result["error"], (ValueError, RuntimeError))
    assert result["inotify"] is None
    # Only the loop's own self-pipe stays registered.
    assert result["readers"] == 1
