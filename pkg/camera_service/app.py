"""Composition root: config -> logging -> auth -> camera monitor -> dispatch table -> server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Any

from camera_service import __version__
from camera_service.auth.authenticator import Authenticator
from camera_service.auth.rate_limit import TokenBucket
from camera_service.cameras.monitor import CameraMonitor
from camera_service.cameras.streams import StreamUrls
from camera_service.config import Config, ConfigWatcher
from camera_service.devices.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_MOVED_TO,
    InotifyWatcher,
)
from camera_service.health import health_routes
from camera_service.log import configure_logging
from camera_service.methods import cameras, core, system
from camera_service.metrics import CpuMeter
from camera_service.rpc._jsonrpc import CallContext, Dispatcher
from camera_service.rpc.registry import MethodRegistry
from camera_service.server._listener import LatencyHistogram
from camera_service.server.endpoint import WebSocketServer

log = logging.getLogger("camera_service.app")

# Response-time histogram bounds in seconds (also the Prometheus buckets).
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Services:
    """What handlers reach through `ctx.services`."""

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop):
        self.config = config
        self.loop = loop
        self.version = __version__
        self.started_monotonic = time.monotonic()
        self.started_wall = time.time()
        self.latency = LatencyHistogram(LATENCY_BUCKETS)
        self.authenticator: Authenticator | None = None
        self.gate: core.SessionGate | None = None
        self.dispatcher: Dispatcher | None = None
        self.server: WebSocketServer | None = None
        self.monitor: CameraMonitor | None = None
        self.camera_api: cameras.CameraApi | None = None
        self.cpu_meter = CpuMeter()

    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic


def new_bucket(security: Any) -> TokenBucket:
    """Every connection has a bucket; rpm or burst 0 makes it let everything through."""
    return TokenBucket(security.rate_limit_rpm, security.rate_limit_burst)


class Application:
    """The whole service in one object; tests start it on their own loop."""

    def __init__(self, config: Config, config_path: str | None = None, env: Any = None):
        self.config = config
        self.config_path = config_path
        self.env = env
        self.services: Services | None = None
        self._config_watcher: ConfigWatcher | None = None
        self._keys_watcher: InotifyWatcher | None = None

    @property
    def port(self) -> int:
        assert self.services is not None and self.services.server is not None
        return self.services.server.port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.config
        services = self.services = Services(config, loop)
        services.authenticator = Authenticator(config.security, env=self.env)
        services.gate = core.SessionGate(services.authenticator, config.security.max_auth_failures)

        services.monitor = CameraMonitor.from_config(config)
        services.camera_api = cameras.CameraApi(services.monitor, StreamUrls.from_config(config))

        registry = MethodRegistry()
        core.register(registry, services.gate)
        cameras.register(registry, services.camera_api)
        system.register(registry)
        services.dispatcher = Dispatcher(
            registry.entries(), config.server.max_batch, services.gate, services
        )

        def make_context(client_id: str) -> CallContext:
            return CallContext(
                client_id, services=services, bucket=new_bucket(services.config.security)
            )

        services.server = WebSocketServer(
            config.server,
            services.dispatcher,
            make_context,
            services.latency,
            http_routes=health_routes(services),
            loop=loop,
        )
        # Listen first so /health/ready can answer 503 while the first scan runs.
        await services.server.start()
        services.camera_api.broadcast = services.server.table.broadcast
        services.monitor.subscribe(services.camera_api.on_camera_event)
        await services.monitor.start()
        self._watch_api_keys(loop)
        if self.config_path is not None:
            self._config_watcher = ConfigWatcher(
                self.config_path, self._on_config_change, env=self.env, initial=config
            )
            self._config_watcher.start(loop)

    def _watch_api_keys(self, loop: asyncio.AbstractEventLoop) -> None:
        """Revocations and new keys from the CLI apply without a restart (inotify, no polling)."""
        store = self.services.authenticator.api_keys
        directory = os.path.dirname(os.path.abspath(store.path))
        # The directory must exist to be watched; `apikey create` writes the file into it later.
        os.makedirs(directory, mode=0o700, exist_ok=True)
        watcher = self._keys_watcher = InotifyWatcher()
        watcher.add_watch(directory, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE)
        name = os.path.basename(store.path)

        def on_readable() -> None:
            if any(event.name == name for event in watcher.read_events()):
                if self.services.authenticator.api_keys.reload_if_changed():
                    self._end_revoked_sessions()

        loop.add_reader(watcher.fileno(), on_readable)

    def _stop_watching_api_keys(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._keys_watcher is not None:
            loop.remove_reader(self._keys_watcher.fileno())
            self._keys_watcher.close()
            self._keys_watcher = None

    def _end_revoked_sessions(self) -> None:
        """A revoked or expired key also ends the sessions it opened, not just new logins."""
        store = self.services.authenticator.api_keys
        now = time.time()
        for listener in self.services.server.table:
            ctx = listener.ctx
            session = ctx.session
            if session is None or session.key_id is None:
                continue
            entry = store.get(session.key_id)
            if entry is None or not entry.active or entry.is_expired(now):
                ctx.clear_session()
                log.info(
                    "session ended: its API key was revoked",
                    extra={"client_id": ctx.client_id, "user_id": session.user_id},
                )

    def _on_config_change(self, old: Config, new: Config, changed: set[str]) -> None:
        services = self.services
        services.config = new
        try:
            if any(key.startswith("security.") for key in changed):
                services.authenticator.apply_settings(new.security)
        except Exception as exc:  # keep the running auth settings; the rest still applies
            log.error("security settings not applied: %s", exc)
        if "security.api_keys_file" in changed:
            self._stop_watching_api_keys(services.loop)
            self._watch_api_keys(services.loop)
        services.gate.max_auth_failures = new.security.max_auth_failures
        services.server.apply_settings(new.server)
        if changed & {"security.rate_limit_rpm", "security.rate_limit_burst"}:
            for listener in services.server.table:
                listener.ctx.bucket.reconfigure(
                    new.security.rate_limit_rpm, new.security.rate_limit_burst
                )
        if changed & {"logging.level", "logging.format"}:
            configure_logging(new.logging)
        if any(key.startswith("media.") for key in changed):
            services.camera_api.set_streams(StreamUrls.from_config(new))
        if changed & {"camera.device_range", "camera.probe_timeout"}:
            services.monitor.probe_timeout = new.camera.probe_timeout
            services.monitor.set_device_range(new.camera.device_range)

    async def stop(self) -> None:
        services = self.services
        if services is None:
            return
        loop = asyncio.get_running_loop()
        if self._config_watcher is not None:
            self._config_watcher.stop()
        self._stop_watching_api_keys(loop)
        if services.server is not None:
            await services.server.shutdown(self.config.server.shutdown_timeout)
        if services.monitor is not None:
            await services.monitor.stop()
        self.services = None


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
        f"  mint token:  camera-service token --role viewer --user alice"
        + (f" --config {config.source}" if config.source else "")
        + "\n  stop:        Ctrl-C",
        file=sys.stderr,
        flush=True,
    )


async def serve(config: Config, config_path: str | None = None) -> int:
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
