from collections.abc import Callable, Iterable
from typing import Any

def monotonic() -> float: ...
def encode_notification(method: str, params: Any) -> bytes: ...
def make_entry(
    name: str, handler: Callable[..., Any] | PreEncoded, role_level: int, binds_context: bool = ...
) -> MethodEntry: ...

class PreEncoded:
    json: bytes
    def __init__(self, json_bytes: bytes) -> None: ...

class MethodEntry:
    name: str
    name_utf8: bytes
    handler: Any
    constant: PreEncoded | None
    role_level: int
    is_async: bool
    binds_context: bool
    calls: int
    errors: int
    def __init__(
        self, name: str, handler: Any, role_level: int, is_async: bool, binds_context: bool
    ) -> None: ...

class CallContext:
    client_id: str
    session: Any
    role_level: int
    expires_at: float
    bucket: Any
    auth_failures: int
    send: Callable[[bytes], None] | None
    request_count: int
    error_count: int
    closed: bool
    close_after_response: tuple[int, str] | None
    def __init__(
        self,
        client_id: str,
        send: Any = ...,
        bucket: Any = ...,
    ) -> None: ...
    def set_session(self, session: Any, role_level: int, expires_at: float) -> None: ...
    def clear_session(self) -> None: ...
    @property
    def correlation_id(self) -> str: ...

class RequestStats:
    total_requests: int
    total_errors: int
    def __init__(self) -> None: ...
    @property
    def error_counts(self) -> dict[int, int]: ...

class Dispatcher:
    max_batch: int
    authorizer: Any
    stats: RequestStats
    def __init__(
        self,
        methods: Iterable[MethodEntry],
        max_batch: int = ...,
        authorizer: Any = ...,
        stats: RequestStats | None = ...,
    ) -> None: ...
    @property
    def total_requests(self) -> int: ...
    @property
    def total_errors(self) -> int: ...
    @property
    def methods(self) -> dict[str, MethodEntry]: ...
    @property
    def error_counts(self) -> dict[int, int]: ...
    @property
    def pending_tasks(self) -> int: ...
    async def drain(self, timeout: float) -> None: ...
    def handle(self, ctx: CallContext, payload: bytes) -> bytes | None: ...
