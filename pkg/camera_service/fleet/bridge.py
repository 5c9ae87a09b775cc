"""The fleet bridge (PROTOCOL 12): a bus subscriber that mirrors this box onto an MQTT broker.

Failure model. The bridge runs in a task of its own; `start()` never waits for the broker,
so a broker that is down, slow or gone for an hour never touches the WebSocket service. The
connection loop retries with backoff (1 s doubling to 60 s). Nothing is queued for a broker
that is not there: while disconnected, events are dropped (they are not retained, so a late
copy would be news from the past), and after every (re)connect the retained topics are
rebuilt from current truth rather than replayed (fleet/mirror.py keeps that state, bounded).

The broker publishes `offline` on `P/N/availability` (our Last Will) when the service dies;
a clean stop publishes `offline` itself and disconnects gracefully (no Will then).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from camera_service.cameras.model import CONNECTED
from camera_service.cameras.streams import StreamUrls
from camera_service.config import MQTT_PASSWORD_ENV
from camera_service.core.events import (
    STATUS_CHANGED_EVENT,
    CameraChanged,
    EventBus,
    SnapshotTaken,
    Subscription,
)
from camera_service.fleet import commands
from camera_service.fleet.mirror import MAX_PENDING_EVENTS, Mirror
from camera_service.fleet.stills import take_still
from camera_service.fleet.topics import OFFLINE, ONLINE, Topics, backoff_delays, resolve_node_id
from camera_service.health import utc_timestamp
from camera_service.server.notifier import NOTIFIED_EVENTS, notification

if TYPE_CHECKING:
    import aiomqtt

    from camera_service.cameras.model import Camera
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.config import Config, MqttSettings
    from camera_service.media.capture import CaptureManager

log = logging.getLogger(__name__)

# Commands running at once; more are answered with -32002 at once instead of waiting.
MAX_COMMANDS_IN_FLIGHT = 8
# Incoming messages paho may hold before we read them (commands are small and rare).
MAX_INCOMING = 100
# After connecting, retained states of cameras this box no longer has are cleared for this
# long (a camera unplugged while the service was down or the broker was away).
STALE_WINDOW = 2.0
CONNECT_TIMEOUT = 10.0
KEEPALIVE = 30
STOP_TIMEOUT = 3.0
FLUSH_TIMEOUT = 1.0
SESSION_END_TIMEOUT = 1.0
JPEG_SUFFIXES = (".jpg", ".jpeg")


def read_password(settings: MqttSettings, env: Mapping[str, str]) -> str | None:
    """The broker password: env CAMERA_SERVICE_MQTT_PASSWORD wins, then `mqtt.password_file`
    (its first line). Never logged."""
    password = env.get(MQTT_PASSWORD_ENV)
    if password:
        return password
    if settings.password_file:
        with open(settings.password_file, encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n")
    return None


class MqttBridge:
    """Component: connects while started (when `mqtt.enabled`), mirrors state, runs commands."""

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        monitor: CameraMonitor,
        camera_entry: Callable[[Camera], dict[str, Any]],
        handler_lookup: commands.HandlerLookup,
        captures: CaptureManager,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.mqtt
        self.bus = bus
        self.monitor = monitor
        self.camera_entry = camera_entry
        self.handler_lookup = handler_lookup
        self.captures = captures
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.streams = StreamUrls.from_config(config)
        self.node_id = resolve_node_id(self.settings.node_id)
        self.topics = Topics(
            self.settings.topic_prefix, self.node_id, self.settings.discovery_prefix
        )
        self.mirror = Mirror(
            self.topics,
            monitor,
            camera_entry,
            self.settings.discovery,
            socket.gethostname(),
            started_at="",
        )
        self._stopping = asyncio.Event()
        self._current: aiomqtt.Client | None = None  # the client of the running session
        self._commands: set[asyncio.Task[None]] = set()
        self._subscriptions: list[Subscription[Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._stills_task: asyncio.Task[None] | None = None
        self._commands_off_logged = False

        self.connects = 0  # successful connections so far
        self.published = 0  # retained topics and events sent
        self.next_delay: float | None = None  # the wait before the next attempt, if waiting

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.mirror.live

    @property
    def pending(self) -> int:
        """Messages waiting for the broker (bounded: topics of current cameras + events)."""
        return self.mirror.pending

    @property
    def dropped_events(self) -> int:
        """Events not sent because no broker was connected."""
        return self.mirror.dropped_events

    async def start(self) -> None:
        if not self.settings.enabled:
            return
        self.mirror.started_at = utc_timestamp()
        self._stopping.clear()
        for event_type in NOTIFIED_EVENTS:
            self._subscriptions.append(self.bus.subscribe(event_type, self._on_event))
        self._subscriptions.append(self.bus.subscribe(SnapshotTaken, self._on_snapshot))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-bridge")
        self._restart_stills()
        log.info(
            "MQTT bridge for node %s to %s:%d",
            self.node_id,
            self.settings.host,
            self.settings.port,
        )

    async def stop(self) -> None:
        # What changed just before (recordings ended by the shutdown) goes out first; the
        # bus delivers in loop callbacks, so let those run, then wait (bounded) for the send.
        await asyncio.sleep(0)
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while self.mirror.live and self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        for task in (self._stills_task, *self._commands):
            if task is not None:
                task.cancel()
        self._stills_task = None
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def apply(self, config: Config) -> None:
        """Live keys: `mqtt.commands`, `mqtt.snapshot_interval`; stream URLs of events."""
        old = self.settings
        self.config = config
        # Only the live keys change; the connection keys need a restart (PROTOCOL 8).
        self.settings = dataclasses.replace(
            old, commands=config.mqtt.commands, snapshot_interval=config.mqtt.snapshot_interval
        )
        self.streams = StreamUrls.from_config(config)
        if config.mqtt.commands and not old.commands:
            self._commands_off_logged = False
        if self._task is not None and config.mqtt.snapshot_interval != old.snapshot_interval:
            self._restart_stills()

    # ---- the connection --------------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        import aiomqtt  # only when the bridge is enabled: an idle service never loads it

        settings = self.settings
        password = read_password(settings, self.env)
        username = settings.username
        if password is not None and not username:
            log.warning("an MQTT password is set but mqtt.username is not: connecting anonymously")
            password = None
        tls = ssl.create_default_context(cafile=settings.tls_ca) if settings.tls_ca else None
        return aiomqtt.Client(
            settings.host,
            settings.port,
            username=username or None,
            password=password,
            identifier=f"camera-service-{self.node_id}",
            will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True),
            tls_context=tls,
            timeout=CONNECT_TIMEOUT,
            keepalive=KEEPALIVE,
            max_queued_incoming_messages=MAX_INCOMING,
            max_queued_outgoing_messages=MAX_PENDING_EVENTS,
            logger=logging.getLogger("camera_service.fleet.mqtt"),
            # Small messages, each QoS 1 publish waiting for its PUBACK: with Nagle on, every
            # other one would wait for a delayed ACK (40 ms on Linux).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def _run(self) -> None:
        """Connect, serve, and after any failure wait the next backoff step; until stopped."""
        import aiomqtt

        delays = backoff_delays()
        while not self._stopping.is_set():
            try:
                client = self._new_client()
                async with client:
                    self.connects += 1
                    delays = backoff_delays()  # a connection that worked resets the schedule
                    log.info("MQTT connected to %s:%d", self.settings.host, self.settings.port)
                    await self._session(client)
                    if self._stopping.is_set():
                        return
            except aiomqtt.MqttError as exc:
                log.warning("MQTT broker %s:%d: %s", self.settings.host, self.settings.port, exc)
            except (OSError, ssl.SSLError) as exc:  # a password or CA file that cannot be read
                log.error("MQTT bridge cannot connect: %s", exc)
            except Exception:
                log.exception("MQTT bridge failed; reconnecting")
            finally:
                self.mirror.disconnected()
            self.next_delay = next(delays)
            log.info("MQTT reconnect in %.0f s", self.next_delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.next_delay)
            self.next_delay = None

    async def _session(self, client: aiomqtt.Client) -> None:
        """One connection: announce, rebuild the retained state, then read and write until
        the connection fails (MqttError out) or the bridge stops (`offline`, clean return)."""
        await client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        await client.subscribe(self.topics.all_commands, qos=1)
        await client.subscribe(self.topics.all_states, qos=1)
        # Cameras present at start-up are known once the first scan is done; rebuilding
        # before that would clear their retained state as stale.
        await self.monitor.ready.wait()
        self.mirror.connected()
        tasks = [
            asyncio.ensure_future(self._read(client)),
            asyncio.ensure_future(self._write(client)),
            asyncio.ensure_future(self._end_stale_window(client)),
        ]
        stop = asyncio.ensure_future(self._stopping.wait())
        self._current = client
        try:
            await asyncio.wait([*tasks[:2], stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._current = None
            for task in (*tasks, stop):
                task.cancel()
            # On Python < 3.12 a cancel that meets a PUBACK inside asyncio.wait_for (in
            # aiomqtt's publish) is swallowed: the writer then waits for work again. It also
            # checks `_current`, so waking it ends it; and nothing here waits on it unbounded.
            self.mirror.wake.set()
            await asyncio.wait([*tasks, stop], timeout=SESSION_END_TIMEOUT)
        for task in tasks[:2]:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if self._stopping.is_set():
            self.mirror.disconnected()
            await client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)

    async def _end_stale_window(self, client: aiomqtt.Client) -> None:
        await asyncio.sleep(STALE_WINDOW)
        await client.unsubscribe(self.topics.all_states)

    async def _write(self, client: aiomqtt.Client) -> None:
        """Send what is pending: retained topics first (the newest payload of each), then
        events in order."""
        mirror = self.mirror
        while self._current is client:
            await mirror.wake.wait()
            mirror.wake.clear()
            while self._current is client and (message := mirror.next_message()) is not None:
                topic, payload, retain = message
                # QoS 1 for retained topics: each waits for its PUBACK, which also keeps at
                # most one message in paho's buffers (the backpressure); events are QoS 0.
                await client.publish(topic, payload, qos=1 if retain else 0, retain=retain)
                self.published += 1

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            camera = self.topics.camera_of(topic, "command")
            if camera is not None:
                self._on_command(client, camera, data)
                continue
            camera = self.topics.camera_of(topic, "state")
            if camera is not None and message.retain and data:
                self.mirror.stale(camera)

    # ---- bus subscribers -------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        note = notification(event, self.streams)
        if note is None:
            return
        method, params = note
        # The state from current truth (it also carries what the event says, e.g. the
        # recording fields), then the event itself.
        if isinstance(event, CameraChanged):
            self.mirror.camera(event.camera.stream_name)
            if event.kind != STATUS_CHANGED_EVENT:
                self.mirror.info()
        else:
            number = self.monitor.device_number(str(params.get("device", "")))
            if number is not None:
                self.mirror.camera(f"camera{number}")
        self.mirror.event(method, params)

    async def _on_snapshot(self, event: SnapshotTaken) -> None:
        if not event.filename.lower().endswith(JPEG_SUFFIXES):
            return  # the snapshot topic carries JPEG (PNG snapshots are not mirrored)
        number = self.monitor.device_number(event.device)
        if number is None:
            return
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(None, _read_file, event.path)
        except OSError as exc:
            log.warning("snapshot %s not published: %s", event.filename, exc)
            return
        self.mirror.still(f"camera{number}", data)

    # ---- commands --------------------------------------------------------------------------

    def _on_command(self, client: aiomqtt.Client, camera: str, payload: bytes) -> None:
        if not self.settings.commands:
            if not self._commands_off_logged:
                self._commands_off_logged = True
                log.warning("MQTT command ignored: mqtt.commands is off (logged once)")
            return
        result_topic = self.topics.command_result(camera)
        if len(self._commands) >= MAX_COMMANDS_IN_FLIGHT:
            # Answered at once rather than waiting: nothing queues behind slow commands.
            busy = commands.busy_answer(payload)
            task = asyncio.ensure_future(_publish_quietly(client, result_topic, busy))
        else:
            task = asyncio.ensure_future(self._command(client, camera, payload, result_topic))
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _command(
        self, client: aiomqtt.Client, camera: str, payload: bytes, result_topic: str
    ) -> None:
        answer = await commands.run(self.handler_lookup, camera, payload)
        await _publish_quietly(client, result_topic, answer)

    # ---- interval stills -------------------------------------------------------------------

    def _restart_stills(self) -> None:
        if self._stills_task is not None:
            self._stills_task.cancel()
            self._stills_task = None
        if self.settings.snapshot_interval > 0:
            self._stills_task = asyncio.get_running_loop().create_task(self._stills_loop())

    async def _stills_loop(self) -> None:
        interval = self.settings.snapshot_interval
        next_at = time.monotonic()
        while True:
            next_at += interval
            if self.mirror.live:  # a still nobody can receive is not worth a capture
                for camera in self.monitor.snapshot():
                    if camera.status == CONNECTED:
                        await self._take_still(camera)
            # A slow round does not make the next ones pile up.
            next_at = max(next_at, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    async def _take_still(self, camera: Camera) -> None:
        from camera_service.media.capture import CaptureError
        from camera_service.media.encoders import EncodeError

        config = self.config
        try:
            data = await take_still(
                self.captures, camera, config.snapshots.quality, config.capture.frame_timeout
            )
        except (CaptureError, EncodeError) as exc:
            log.info("no still of %s: %s", camera.stream_name, exc)
            return
        self.mirror.still(camera.stream_name, data)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


async def _publish_quietly(client: aiomqtt.Client, topic: str, payload: bytes) -> None:
    """A command result; lost with the connection (the caller sees no answer and retries)."""
    import aiomqtt

    try:
        await client.publish(topic, payload, qos=1)
    except aiomqtt.MqttError as exc:
        log.info("MQTT command result not sent: %s", exc)
