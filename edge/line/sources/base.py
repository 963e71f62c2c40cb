"""What every frame source shares: the Frame, the registry, the source's health, pacing and the
reconnect loop that keeps a lost camera, stream, file or folder coming back."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from edge.line.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One captured image, or one unit a trigger made of frames. ``truth`` is what a simulator
    knows; the verdict never reads it. ``unit_ref`` is the unit's own id (a barcode) where an
    external trigger gave one."""

    index: int
    image: np.ndarray  # uint8 RGB (H, W, 3)
    captured_at: datetime  # UTC
    captured_mono: float  # time.monotonic() at capture (a unit: when complete), for latency timings
    truth: dict[str, Any] = field(default_factory=dict)
    unit_ref: str | None = None


class SourceStatus:
    """Is the source delivering, since when is it down, how often was it retried, what was skipped.

    Written by the capture thread, read by /healthz and /metrics.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = False
        self.ended = False
        self.down_since: datetime | None = None
        self.attempt = 0  # reopen tries since the source went down
        self.reconnects = 0  # reopen tries over the whole run
        self.last_error: str | None = None
        self.skipped: Counter[str] = Counter()  # frames the source itself could not decode

    def delivering(self) -> None:
        with self._lock:
            self.up, self.down_since, self.attempt = True, None, 0

    def lost(self, error: str) -> None:
        with self._lock:
            if self.up or self.down_since is None:
                self.down_since = datetime.now(timezone.utc)
            self.up = False
            self.last_error = error

    def reconnecting(self) -> None:
        with self._lock:
            self.attempt += 1
            self.reconnects += 1

    def finished(self) -> None:
        with self._lock:
            self.up, self.ended = False, True

    def skip(self, reason: str, detail: str) -> None:
        with self._lock:
            self.skipped[reason] += 1
            self.last_error = detail
            n = self.skipped[reason]
        if n == 1 or n % 100 == 0:  # a looping folder of bad files must not flood the log
            log.warning("frame skipped (%s, %d so far): %s", reason, n, detail)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "up": self.up,
                "ended": self.ended,
                "down_since": self.down_since.isoformat() if self.down_since else None,
                "attempt": self.attempt,
                "reconnects": self.reconnects,
                "last_error": self.last_error,
                "skipped": dict(self.skipped),
            }


class FrameSource(Protocol):
    status: SourceStatus

    def frames(self, stop: threading.Event) -> Iterator[Frame]: ...

    def describe(self) -> dict[str, Any]: ...


SOURCES: Registry[Callable[[Any], FrameSource]] = Registry("source type")
register = SOURCES.register


def build_source(config) -> FrameSource:
    return SOURCES[config.type](config)


class SourceDown(Exception):
    """The source cannot be opened or stopped delivering; the message says why, for /healthz."""


class Pacer:
    """Releases frames at a steady rate against the clock (no drift, no bursts); None: no pacing."""

    def __init__(self, fps: float | None):
        self.fps = fps
        self._next_at = time.monotonic()

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until the next slot; True when stop was set meanwhile."""
        if not self.fps:
            return stop.is_set()
        period_s = 1.0 / self.fps
        delay = self._next_at - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return True
        self._next_at = max(self._next_at + period_s, time.monotonic() - period_s)
        return stop.is_set()


def backoff_s(attempt: int, initial_s: float, max_s: float) -> float:
    return min(max_s, initial_s * 2 ** max(0, attempt - 1))


class ReconnectingSource:
    """A source that can be lost. Subclasses write ``session``: open, yield RGB images, raise
    SourceDown when the source cannot be opened or is lost, return when it has ended. This loop
    turns that into frames and reopens a lost source with capped exponential backoff."""

    def __init__(self, config):
        self.config = config
        self.status = SourceStatus()
        self.pacer = Pacer(getattr(config, "fps", None))

    def session(self, stop: threading.Event) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return self.config.model_dump(
            mode="json", exclude={"reconnect_initial_s", "reconnect_max_s"}
        )

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        index = 0
        failing = False
        while not stop.is_set():
            if failing:
                self.status.reconnecting()
            session = self.session(stop)
            try:
                for image in session:
                    if self.pacer.wait(stop):
                        return
                    if failing or not self.status.up:
                        if failing:
                            log.info("frame source is back: %s", self.describe())
                        failing = False
                        self.status.delivering()
                    yield Frame(index, image, datetime.now(timezone.utc), time.monotonic())
                    index += 1
            except SourceDown as exc:
                if not failing:
                    log.warning("frame source down: %s", exc)
                failing = True
                self.status.lost(str(exc))
                c = self.config
                attempt = self.status.attempt + 1
                if stop.wait(backoff_s(attempt, c.reconnect_initial_s, c.reconnect_max_s)):
                    return
                continue
            finally:
                session.close()  # releases the camera or file now, not when garbage is collected
            if not stop.is_set():
                self.status.finished()
            return
