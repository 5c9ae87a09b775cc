"""Cameras as the service reports them: the registry (monitor), the model and stream URLs."""

from camera_service.cameras.model import (
    CONNECTED,
    DISCONNECTED,
    ERROR,
    Camera,
    camera_capabilities,
    camera_list_entry,
    camera_status,
)
from camera_service.cameras.monitor import CameraMonitor
from camera_service.cameras.streams import StreamUrls
from camera_service.core.events import CameraChanged

__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "ERROR",
    "Camera",
    "CameraChanged",
    "CameraMonitor",
    "StreamUrls",
    "camera_capabilities",
    "camera_list_entry",
    "camera_status",
]
