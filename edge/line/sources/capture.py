"""OpenCV VideoCapture plumbing shared by the video, camera and stream sources."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from edge.line.sources.base import Pacer, ReconnectingSource, SourceDown
from qc.imageio import to_rgb_uint8


def to_rgb(decoded: np.ndarray) -> np.ndarray:
    if decoded.ndim == 3 and decoded.shape[2] == 3:
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
    return to_rgb_uint8(decoded, source="captured frame")


class LiveCaptureSource(ReconnectingSource):
    """A device or stream that never ends on its own: a failed read means it was lost.

    It delivers on its own clock, so nothing here paces it; ``open_capture`` returns an opened
    cv2.VideoCapture or raises SourceDown.
    """

    what: str = "capture"

    def __init__(self, config):
        super().__init__(config)
        self.pacer = Pacer(None)

    def open_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def session(self, stop: threading.Event) -> Iterator[np.ndarray]:
        cap = self.open_capture()
        try:
            while not stop.is_set():
                ok, decoded = cap.read()
                if not ok or decoded is None:
                    raise SourceDown(f"{self.what} stopped delivering frames")
                yield to_rgb(decoded)
        finally:
            cap.release()


def opened_or_down(make: Callable[[], cv2.VideoCapture], what: str) -> cv2.VideoCapture:
    try:
        cap = make()
    except cv2.error as exc:
        raise SourceDown(f"{what} cannot be opened: {exc}") from exc
    if not cap.isOpened():
        cap.release()
        raise SourceDown(f"{what} cannot be opened")
    return cap
