"""camera-service: V4L2 camera discovery served over a WebSocket JSON-RPC 2.0 API."""

__version__ = "0.1.0"
