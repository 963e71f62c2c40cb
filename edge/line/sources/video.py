"""A video file decoded by OpenCV, at its own rate or a set one, optionally looping.

A file that is missing, deleted or replaced by something undecodable is a lost source: it is
reopened with backoff and played again from its first frame once it is back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import cv2
import numpy as np

from edge.line.sources.base import ReconnectingSource, SourceDown, register
from edge.line.sources.capture import opened_or_down, to_rgb
from edge.line.sources.config import VideoSourceConfig

FALLBACK_FPS = 25.0  # some containers carry no frame rate


@register("video")
class VideoSource(ReconnectingSource):
    config: VideoSourceConfig

    def session(self, stop: threading.Event) -> Iterator[np.ndarray]:
        path = self.config.path
        while True:
            if not path.is_file():
                raise SourceDown(f"video file {path} is missing")
            cap = opened_or_down(lambda: cv2.VideoCapture(str(path)), f"video file {path}")
            if self.config.fps is None:
                own = cap.get(cv2.CAP_PROP_FPS)
                self.pacer.fps = own if 0 < own <= 1000 else FALLBACK_FPS
            decoded_count = 0
            try:
                while not stop.is_set():
                    ok, decoded = cap.read()
                    if not ok or decoded is None:
                        break
                    decoded_count += 1
                    yield to_rgb(decoded)
            finally:
                cap.release()
            if stop.is_set():
                return
            # A deleted file still plays to its end (the open handle keeps it), so look again.
            if not path.is_file():
                raise SourceDown(f"video file {path} is gone")
            if decoded_count == 0:
                raise SourceDown(f"no frame could be decoded from video file {path}")
            if not self.config.loop:
                return
