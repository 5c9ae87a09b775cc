"""Stream URLs of a camera on the media server, from the `[media]` config section.

Responses and notifications both build their URLs here, so they can never disagree about the
host (PROTOCOL 9, defect 9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from camera_service.cameras.model import DISCONNECTED, Camera


@dataclass(frozen=True, slots=True)
class StreamUrls:
    """Builds a camera's media-server URLs from the `[media]` settings."""

    host: str = "localhost"
    rtsp_port: int = 8554
    webrtc_port: int = 8889
    hls_port: int = 8888

    @classmethod
    def from_config(cls, cfg: Any) -> StreamUrls:
        media = cfg.media
        return cls(media.host, media.rtsp_port, media.webrtc_port, media.hls_port)

    @property
    def _netloc_host(self) -> str:
        # An IPv6 literal needs brackets inside a URL.
        host = self.host
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    def for_camera(self, camera: Camera) -> dict[str, str]:
        """{"rtsp", "webrtc", "hls"} for the camera's stream; {} once the camera is gone."""
        if camera.status == DISCONNECTED:
            return {}
        return self.for_stream(camera.stream_name)

    def for_stream(self, stream: str) -> dict[str, str]:
        host = self._netloc_host
        return {
            "rtsp": f"rtsp://{host}:{self.rtsp_port}/{stream}",
            "webrtc": f"http://{host}:{self.webrtc_port}/{stream}/webrtc",
            "hls": f"http://{host}:{self.hls_port}/{stream}",
        }
