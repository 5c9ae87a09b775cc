from collections.abc import Iterable
from typing import Any

from camera_service.rpc._jsonrpc import CallContext, Dispatcher

def is_valid_utf8(data: bytes) -> bool: ...
def fan_out(
    listeners: Iterable[RpcListener], data: bytes, role_at_least: int, now: float
) -> int: ...
def keepalive_sweep(
    listeners: Iterable[RpcListener], now: float, interval: float, timeout: float
) -> float | None: ...

class LatencyHistogram:
    bounds: tuple[float, ...]
    count: int
    total: float
    def __init__(self, bounds: Iterable[float]) -> None: ...
    def counts(self) -> list[int]: ...

class RpcListener:
    ctx: CallContext
    def __init__(
        self,
        dispatcher: Dispatcher,
        table: Any,
        latency: LatencyHistogram,
        max_message_bytes: int,
        max_send_buffer_bytes: int,
        ctx: CallContext,
    ) -> None: ...
    def send_message(self, data: bytes) -> None: ...
    def close_with(self, code: int, reason: str) -> None: ...
    @property
    def transport(self) -> Any: ...
    @property
    def closing(self) -> bool: ...
