# cython: language_level=3
"""Per-connection request rate limiting (PROTOCOL 4.5).

This runs on every request, so it is compiled: the dispatcher calls `take` as a C function
with the monotonic time it already has. No locks: one bucket belongs to one connection,
served by one event loop.
"""

# Refilling by exactly the advertised retry_after can land a hair below one token through
# float rounding; a client that waits as told must get in.
cdef double _EPSILON = 1e-9
cdef double _NEVER = float("-inf")


cdef class TokenBucket:
    """`rate_per_minute` requests per minute on average, at most `burst` back to back.

    Either value 0 disables limiting. The bucket starts full.
    """

    def __init__(self, rate_per_minute, burst):
        self._tokens = 0.0
        self._last = _NEVER
        self._rate = 0.0
        self._burst = 0.0
        self._enabled = False
        self.reconfigure(rate_per_minute, burst)

    @property
    def enabled(self):
        return self._enabled

    @property
    def tokens(self):
        """Tokens left after the last try_take (not refilled to the present)."""
        return self._tokens

    cdef double take(self, double now) noexcept:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        cdef double elapsed, tokens
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

    def try_take(self, double now):
        """Python entry point of `take`."""
        return self.take(now)

    def reconfigure(self, rate_per_minute, burst):
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
            self._last = _NEVER
