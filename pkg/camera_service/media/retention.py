"""Retention (PROTOCOL 5.15): which old recordings and snapshots the service deletes by itself.

The policy in force is the one last set over the API, stored in the state directory (written
atomically, so a crash leaves the old or the new file, never a torn one); without a stored
policy it is the config file's `retention.*`. It is enforced every `retention.interval` s and
after each closed segment (a `RecordingChanged` SEGMENT/STOPPED/FAILED event), and on demand
by `cleanup_old_files`. Candidates come from the file indexes (no directory scan); the segment
being written is never one of them. `age` deletes files whose modification time is older
than `max_age_days`; `size` deletes the oldest until both directories together hold at most
`max_size_gb` (GB = 10^9 bytes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from camera_service.core.events import EventBus, RecordingChanged, Subscription
from camera_service.media.files import FileEntry, FileIndex

if TYPE_CHECKING:
    from camera_service.config import Config

log = logging.getLogger("camera_service.retention")

POLICY_FILENAME = "retention_policy.json"
POLICY_TYPES = ("age", "size", "manual")
GB = 1_000_000_000
DAY = 86_400.0
_AFTER_SEGMENT = ("SEGMENT", "STOPPED", "FAILED")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """A policy as clients see it (PROTOCOL 5.15)."""

    policy_type: str  # "age" | "size" | "manual"
    enabled: bool
    max_age_days: float | None = None
    max_size_gb: float | None = None

    @classmethod
    def from_config(cls, config: Config) -> RetentionPolicy:
        r = config.retention
        return cls(r.policy, r.policy != "manual", r.max_age_days, r.max_size_gb)

    def as_result(self) -> dict[str, Any]:
        """The shape of `set_retention_policy` / `get_retention_policy` results."""
        out: dict[str, Any] = {"policy_type": self.policy_type, "enabled": self.enabled}
        if self.policy_type == "age":
            out["max_age_days"] = self.max_age_days
        elif self.policy_type == "size":
            out["max_size_gb"] = self.max_size_gb
        return out

    @property
    def deletes(self) -> bool:
        return self.enabled and self.policy_type != "manual"


def _load(path: str) -> RetentionPolicy | None:
    try:
        with open(path, "rb") as fh:
            data = orjson.loads(fh.read())
        policy = RetentionPolicy(
            str(data["policy_type"]),
            bool(data["enabled"]),
            data.get("max_age_days"),
            data.get("max_size_gb"),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("ignoring the stored retention policy (%s): using the config file's", exc)
        return None
    if policy.policy_type not in POLICY_TYPES:
        log.error("ignoring the stored retention policy: unknown type %r", policy.policy_type)
        return None
    return policy


def _store(path: str, policy: RetentionPolicy) -> None:
    """Temporary file, fsync, rename, fsync of the directory: old or new, never a mix."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temporary = os.path.join(directory, f".{POLICY_FILENAME}.{secrets.token_hex(4)}.tmp")
    data = orjson.dumps(
        {
            "policy_type": policy.policy_type,
            "enabled": policy.enabled,
            "max_age_days": policy.max_age_days,
            "max_size_gb": policy.max_size_gb,
        }
    )
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Retention:
    """Holds the policy in force and deletes what it says, periodically and on demand."""

    def __init__(
        self,
        config: Config,
        recordings: FileIndex,
        snapshots: FileIndex,
        active_files: Callable[[], set[str]],
        bus: EventBus,
    ) -> None:
        self.config = config
        self.recordings = recordings
        self.snapshots = snapshots
        self.active_files = active_files
        self.bus = bus
        self.path = os.path.join(config.security.state_dir, POLICY_FILENAME)
        self.stored: RetentionPolicy | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._subscription: Subscription[RecordingChanged] | None = None
        self._interval = config.retention.interval

    @property
    def policy(self) -> RetentionPolicy:
        """The stored policy, else the config file's."""
        return self.stored or RetentionPolicy.from_config(self.config)

    async def start(self) -> None:
        self.stored = await asyncio.to_thread(_load, self.path)
        self._subscription = self.bus.subscribe(RecordingChanged, self._on_recording)
        self._schedule()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def apply(self, config: Config) -> None:
        self.config = config
        if config.retention.interval != self._interval and self._timer is not None:
            self._interval = config.retention.interval
            self._timer.cancel()
            self._schedule()

    async def set_policy(self, policy: RetentionPolicy) -> None:
        await asyncio.to_thread(_store, self.path, policy)
        self.stored = policy
        log.info("retention policy set", extra=policy.as_result())

    def cleanup(self) -> tuple[int, int]:
        """Apply the policy in force now: (files deleted, bytes freed)."""
        policy = self.policy
        if not policy.deletes:
            return 0, 0
        active = self.active_files()
        candidates = [
            (entry, index)
            for index in (self.recordings, self.snapshots)
            for entry in index.list(index.count(), 0)[0]
            if not (index is self.recordings and entry.name in active)
        ]
        candidates.sort(key=lambda item: (item[0].mtime_ns, item[0].name))  # oldest first
        doomed: list[tuple[FileEntry, FileIndex]] = []
        if policy.policy_type == "age" and policy.max_age_days:
            cutoff = time.time() - policy.max_age_days * DAY
            doomed = [item for item in candidates if item[0].mtime < cutoff]
        elif policy.policy_type == "size" and policy.max_size_gb:
            excess = self.recordings.total_size() + self.snapshots.total_size()
            excess -= int(policy.max_size_gb * GB)
            for item in candidates:
                if excess <= 0:
                    break
                doomed.append(item)
                excess -= item[0].size
        files = freed = 0
        for entry, index in doomed:
            try:
                deleted = index.delete(entry.name)
            except OSError:
                continue  # gone meanwhile, or not deletable: not counted
            files += 1
            freed += deleted.size
        if files:
            log.info(
                "retention deleted old files",
                extra={"policy": policy.policy_type, "files": files, "bytes": freed},
            )
        return files, freed

    def _schedule(self) -> None:
        self._interval = self.config.retention.interval
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        try:
            self.cleanup()
        except Exception:
            log.exception("retention run failed")
        self._schedule()

    def _on_recording(self, event: RecordingChanged) -> None:
        if event.status in _AFTER_SEGMENT:
            self.cleanup()
