"""Composition root: builds the components with their dependencies, starts them in order,
stops them in reverse, and hands every reloaded configuration to each one's `apply`.

    config -> logging -> metrics -> camera monitor -> auth -> captures -> file index
           -> snapshots -> methods -> dispatcher
           -> HTTP routes -> port server -> notifier -> MQTT bridge -> API key watcher
           -> config watcher
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Mapping

from camera_service import __version__
from camera_service.auth.authenticator import Authenticator
from camera_service.auth.gate import SessionGate
from camera_service.auth.key_watcher import ApiKeyWatcher
from camera_service.cameras.monitor import CameraMonitor
from camera_service.cameras.streams import StreamUrls
from camera_service.config import Config, ConfigWatcher
from camera_service.core.component import Component, Passive
from camera_service.core.events import EventBus
from camera_service.fleet.bridge import MqttBridge
from camera_service.log import LoggingComponent, configure_logging
from camera_service.media.capture import CaptureManager
from camera_service.media.files import snapshot_index
from camera_service.media.publisher import RtspPublisher
from camera_service.media.recorder import Recorder
from camera_service.media.recording_files import RecordingDurations, recording_index
from camera_service.media.retention import Retention
from camera_service.media.snapshots import SnapshotTaker
from camera_service.methods import cameras, core, files, media, recordings, system
from camera_service.metrics import Metrics
from camera_service.rpc._jsonrpc import Dispatcher
from camera_service.rpc.registry import MethodRegistry
from camera_service.server.connections import ConnectionTable
from camera_service.server.notifier import WebSocketNotifier
from camera_service.server.port import PortServer
from camera_service.web.app import HttpApp
from camera_service.web.dashboard import add_dashboard_routes
from camera_service.web.files import add_file_routes
from camera_service.web.health import add_health_routes
from camera_service.web.live import STREAM_PREFIX, LiveView

log = logging.getLogger("camera_service.app")


class ConfigReloader(Passive):
    """The config watcher as a component: a valid changed file reaches `on_change`."""

    def __init__(
        self,
        path: str | None,
        config: Config,
        on_change: Callable[[Config, Config, set[str]], None],
        env: Mapping[str, str] | None,
    ) -> None:
        self._watcher = (
            ConfigWatcher(path, on_change, env=env, initial=config) if path is not None else None
        )

    async def start(self) -> None:
        if self._watcher is not None:
            self._watcher.start(asyncio.get_running_loop())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()


class Application:
    """The whole service in one object; tests start it on their own loop."""

    def __init__(
        self,
        config: Config,
        config_path: str | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.config = config
        self.config_path = config_path
        self.env = env
        self.components: list[Component] = []
        self._started: list[Component] = []

    @property
    def port(self) -> int:
        """The TCP port the service listens on (useful with `server.port = 0`)."""
        return self.server.port

    def _build(self, loop: asyncio.AbstractEventLoop) -> None:
        config = self.config
        self.bus = EventBus()
        self.metrics = Metrics()
        self.table = ConnectionTable(loop, config.server.ping_interval, config.server.ping_timeout)
        self.monitor = CameraMonitor.from_config(config, bus=self.bus)
        self.authenticator = Authenticator(config.security, env=self.env)
        self.gate = SessionGate(self.authenticator, config.security.max_auth_failures)
        self.camera_api = cameras.CameraApi(self.monitor, StreamUrls.from_config(config))
        self.system_api = system.SystemApi(config, self.monitor, self.table, self.metrics)
        self.captures = CaptureManager(self.bus, config.capture)
        self.snapshot_files = snapshot_index(config, self.bus)
        self.snapshots = SnapshotTaker(
            config, self.captures, self.bus, self.snapshot_files.note_written
        )
        self.live = LiveView(config, self.monitor, self.captures, self.authenticator)
        self.publisher = RtspPublisher(config, self.bus, self.monitor, self.captures)
        self.media_api = media.MediaApi(self.monitor, self.snapshots, self.live, self.publisher)

        self.recording_files = recording_index(config, self.bus)
        self.recording_durations = RecordingDurations(self.recording_files)
        self.recorder = Recorder(
            config,
            self.captures,
            self.bus,
            self.recording_files.note_written,
            self.recording_durations.remember,
        )
        self.camera_api.recording = self.recorder
        self.retention = Retention(
            config, self.recording_files, self.snapshot_files, self.recorder.active_files, self.bus
        )
        self.recording_api = recordings.RecordingApi(
            config,
            self.monitor,
            self.recorder,
            self.recording_files,
            self.recording_durations,
            self.snapshot_files,
            self.retention,
        )

        self.registry = MethodRegistry()
        core.register(self.registry, self.gate)
        cameras.register(self.registry, self.camera_api)
        system.register(self.registry, self.system_api)
        files.register(self.registry, self.snapshot_files)
        media.register(self.registry, self.media_api)
        recordings.register(self.registry, self.recording_api)
        self.dispatcher = Dispatcher(
            self.registry.entries(), config.server.max_batch, self.gate, self.metrics.requests
        )

        self.http = HttpApp()
        add_health_routes(self.http, self.monitor, self.table, self.metrics, self.registry)
        add_file_routes(self.http, self.snapshot_files, self.authenticator)
        add_file_routes(self.http, self.recording_files, self.authenticator)
        self.http.add_prefix(STREAM_PREFIX, self.live)
        add_dashboard_routes(self.http)
        self.server = PortServer(
            config, self.table, self.dispatcher, self.metrics.latency, self.http
        )
        self.notifier = WebSocketNotifier(self.bus, self.table, StreamUrls.from_config(config))
        # Off unless mqtt.enabled; never waits for the broker (its own task, PROTOCOL 12).
        self.mqtt = MqttBridge(
            config,
            self.bus,
            self.monitor,
            self.camera_api.entry,
            self.registry.handler,
            self.captures,
            env=self.env,
        )
        self.key_watcher = ApiKeyWatcher(
            self.gate, lambda: [listener.ctx for listener in self.table]
        )
        reloader = ConfigReloader(self.config_path, config, self._on_config_change, self.env)

        # Dependency order: started in this order, stopped in reverse.
        self.components = [
            LoggingComponent(config.logging),
            self.metrics,
            self.monitor,
            self.gate,
            self.camera_api,
            self.system_api,
            self.captures,
            self.snapshot_files,
            self.snapshots,
            self.recording_files,
            self.recording_api,
            self.live,
            self.publisher,
            self.server,
            self.notifier,
            # Before the recorder: at shutdown the last recording states still reach the broker.
            self.mqtt,
            # After the notifier: at shutdown recordings end (STOPPED sent) before it stops.
            self.recorder,
            self.retention,
            self.key_watcher,
            reloader,
        ]

    async def start(self) -> None:
        """Start every component; if one fails, those already started are stopped again."""
        self._build(asyncio.get_running_loop())
        try:
            for component in self.components:
                await component.start()
                self._started.append(component)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)

    def _on_config_change(self, old: Config, new: Config, changed: set[str]) -> None:
        self.config = new
        for component in self.components:
            try:
                component.apply(new)
            except Exception:
                log.exception("%s could not apply the new configuration", type(component).__name__)


def _install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _print_banner(config: Config, port: int) -> None:
    s = config.server
    scheme = "wss" if s.tls_cert else "ws"
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
    print(
        f"camera-service {__version__} listening on {scheme}://{s.host}:{port}{s.websocket_path}\n"
        f"  connect:     {scheme}://{host}:{port}{s.websocket_path}\n"
        f"  dashboard:   {'https' if s.tls_cert else 'http'}://{host}:{port}/\n"
        f"  mint token:  camera-service token --role viewer --user alice"
        + (f" --config {config.source}" if config.source else "")
        + "\n  stop:        Ctrl-C",
        file=sys.stderr,
        flush=True,
    )


async def serve(config: Config, config_path: str | None = None) -> int:
    """Run the service until SIGTERM/SIGINT, then stop it gracefully; returns the exit code."""
    app = Application(config, config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    _print_banner(config, app.port)
    await stop.wait()
    log.info("shutting down")
    await app.stop()
    log.info("stopped")
    return 0


def run(config: Config, config_path: str | None = None) -> int:
    """Start the service in the foreground until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(config.logging)
    uvloop_used = _install_uvloop()
    log.info("starting", extra={"version": __version__, "uvloop": uvloop_used})
    return asyncio.run(serve(config, config_path))
