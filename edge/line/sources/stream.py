"""A network stream (RTSP, HTTP MJPEG, UDP, RTMP) through OpenCV's FFmpeg backend."""

from __future__ import annotations

import re

import cv2

from edge.line.sources.base import register
from edge.line.sources.capture import LiveCaptureSource, opened_or_down
from edge.line.sources.config import StreamSourceConfig


def redacted(url: str) -> str:
    """The URL without its password, fit for logs and /healthz."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


@register("stream")
class StreamSource(LiveCaptureSource):
    def __init__(self, config: StreamSourceConfig):
        super().__init__(config)
        self.what = f"stream {redacted(config.url)}"

    def describe(self):
        return {**super().describe(), "url": redacted(self.config.url)}

    def open_capture(self) -> cv2.VideoCapture:
        c = self.config
        # Timeouts turn a silent camera into a read failure (then a reconnect), not a hung thread.
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(c.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(c.read_timeout_s * 1000),
        ]
        return opened_or_down(lambda: cv2.VideoCapture(c.url, cv2.CAP_FFMPEG, params), self.what)
