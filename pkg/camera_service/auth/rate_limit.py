"""Per-connection request rate limiting (PROTOCOL 4.5): the compiled token bucket."""

from camera_service.auth._rate_limit import TokenBucket

__all__ = ["TokenBucket"]
