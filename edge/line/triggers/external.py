"""``external``: frames flow continuously; a request makes the next frame a unit.

A request comes from ``POST /api/v1/trigger`` or an MQTT message (edge.line.triggers.mqtt) and may carry
the unit's own id (a barcode). It is answered by the first frame captured after it arrived (the
next frame, not the newest already waiting: that one may show the previous garment). Requests are
answered in order, one frame each. One that no frame answers within ``max_wait_s`` (the source
was down) is dropped, counted and logged, so a unit never gets a picture taken much later.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from edge.line.sources.base import Frame
from edge.line.triggers.base import TriggerContext, _Counting, register
from edge.line.triggers.config import ExternalTriggerConfig

log = logging.getLogger(__name__)


class TriggerBusy(RuntimeError):
    """Too many requests wait for a frame already (the source is down or too slow)."""


@dataclass(frozen=True)
class TriggerRequest:
    unit_ref: str | None
    via: str  # "rest" or "mqtt", for the log
    at_mono: float


@register("external")
class ExternalTrigger(_Counting):
    mode = "external"

    def __init__(self, config: ExternalTriggerConfig, context: TriggerContext):
        super().__init__()
        self.config = config
        self.context = context
        self._pending: deque[TriggerRequest] = deque()
        self.requests = 0
        self.expired = 0
        self.refused = 0
        self.listener = None
        if config.mqtt is not None:
            from edge.line.triggers.mqtt import MqttTriggerListener  # paho only where MQTT is used

            self.listener = MqttTriggerListener(config.mqtt, self, context)

    def request(self, unit_ref: str | None, *, via: str = "rest") -> int:
        """Queue a request (any thread); returns how many wait now. Raises TriggerBusy."""
        with self._lock:
            self._drop_expired(time.monotonic())  # a camera that is down must not fill the queue
            if len(self._pending) >= self.config.max_pending:
                self.refused += 1
                raise TriggerBusy(
                    f"camera {self.context.camera}: {len(self._pending)} trigger requests already "
                    "wait for a frame"
                )
            self._pending.append(TriggerRequest(unit_ref, via, time.monotonic()))
            self.requests += 1
            return len(self._pending)

    def feed(self, frame: Frame) -> list[Frame]:
        with self._lock:
            if not self._pending:
                return []
            expired = self._drop_expired(frame.captured_mono)
            request = None
            if self._pending and self._pending[0].at_mono <= frame.captured_mono:
                request = self._pending.popleft()
        for r in expired:
            log.warning(
                "camera %s: trigger %s (%s) dropped, no frame within %.1f s",
                self.context.camera, r.unit_ref or "without unit_ref", r.via, self.config.max_wait_s,
            )
        if request is None:
            return []
        return self._made([replace(frame, unit_ref=request.unit_ref)])

    def _drop_expired(self, now_mono: float) -> list[TriggerRequest]:
        """Under the lock: drop (and count) the requests that waited longer than max_wait_s."""
        expired = []
        while self._pending and now_mono - self._pending[0].at_mono > self.config.max_wait_s:
            expired.append(self._pending.popleft())
        self.expired += len(expired)
        return expired

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()

    def problems(self) -> list[str]:
        return self.listener.problems() if self.listener is not None else []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._drop_expired(time.monotonic())
            snap = {
                "mode": self.mode,
                "units": self.units,
                "requests": self.requests,
                "pending": len(self._pending),
                "expired": self.expired,
                "refused": self.refused,
            }
        if self.listener is not None:
            snap["mqtt"] = self.listener.snapshot()
        return snap
