"""A camera on this machine: an OpenCV device index or a V4L2 device path."""

from __future__ import annotations

import cv2

from edge.line.sources.base import register
from edge.line.sources.capture import LiveCaptureSource, opened_or_down
from edge.line.sources.config import CameraSourceConfig


@register("camera")
class CameraSource(LiveCaptureSource):
    def __init__(self, config: CameraSourceConfig):
        super().__init__(config)
        self.what = f"camera {config.device}"

    def open_capture(self) -> cv2.VideoCapture:
        c = self.config
        api = cv2.CAP_V4L2 if isinstance(c.device, str) else cv2.CAP_ANY
        cap = opened_or_down(lambda: cv2.VideoCapture(c.device, api), self.what)
        # Requests only: a camera may pick the nearest mode it has, which the frame checks catch.
        if c.capture_size_px is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.capture_size_px[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.capture_size_px[1])
        if c.fps is not None:
            cap.set(cv2.CAP_PROP_FPS, c.fps)
        return cap
