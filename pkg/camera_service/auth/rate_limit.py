"""Per-connection request rate limiting (PROTOCOL 4.5).

This runs on every request, so it is plain float arithmetic on slots: no locks (one bucket
belongs to one connection, served by one event loop) and no clock reads of its own (the caller
passes the monotonic time it already has).
"""

from __future__ import annotations

# Refilling by exactly the advertised retry_after can land a hair below one token through float
# rounding; a client that waits as told must get in.
_EPSILON = 1e-9


class TokenBucket:
    """`rate_per_minute` requests per minute on average, at most `burst` back to back.

    Either value 0 disables limiting. The bucket starts full.
    """

    __slots__ = ("_rate", "_burst", "_tokens", "_last", "_enabled")

    def __init__(self, rate_per_minute: int | float, burst: int | float) -> None:
        self._tokens = 0.0
        self._last = float("-inf")
        self._rate = 0.0
        self._burst = 0.0
        self._enabled = False
        self.reconfigure(rate_per_minute, burst)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def tokens(self) -> float:
        """Tokens left after the last try_take (not refilled to the present)."""
        return self._tokens

    def try_take(self, now: float) -> float:
        """Spend one token. Returns 0.0 when allowed, else the seconds until one is available."""
        if not self._enabled:
            return 0.0
        elapsed = now - self._last
        tokens = self._tokens
        if elapsed > 0.0:
            # The first call sees elapsed == inf and so starts from a full bucket.
            tokens += elapsed * self._rate
            if tokens > self._burst:
                tokens = self._burst
            self._last = now
        if tokens >= 1.0 - _EPSILON:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self._rate

    def reconfigure(self, rate_per_minute: int | float, burst: int | float) -> None:
        """Apply new limits (live config reload) without handing out a fresh burst."""
        if rate_per_minute < 0 or burst < 0:
            raise ValueError("rate_per_minute and burst must be >= 0")
        was_enabled = self._enabled
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._enabled = rate_per_minute > 0 and burst > 0
        if not self._enabled:
            return
        if was_enabled:
            if self._tokens > self._burst:
                self._tokens = self._burst
        else:
            # Nothing was counted while limiting was off, so start as a new connection would.
            self._tokens = self._burst
            self._last = float("-inf")
