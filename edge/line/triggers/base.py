"""What every trigger shares, and the two simplest: ``frame`` and ``interval``.

A trigger sits between the camera and the inference queue, in the capture thread: ``feed`` takes
each valid camera frame and returns the units it completes (none, one, or, for ``frame``, the frame
itself). A unit is a Frame too: a picked or stitched image, with the unit_ref a request gave it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge.line.registry import Registry
from edge.line.sources.base import Frame
from edge.line.triggers.config import FrameTriggerConfig, IntervalTriggerConfig


class TriggerError(RuntimeError):
    """A trigger that cannot work on this camera's frames (the message says why, for /healthz)."""


class Trigger(Protocol):
    mode: str

    def feed(self, frame: Frame) -> list[Frame]:
        """The units this frame completes. Called from the capture thread only."""
        ...

    def finish(self) -> list[Frame]:
        """The source ended or the line stops: units begun but not complete, so none is lost."""
        ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def problems(self) -> list[str]:
        """What is wrong, in words, for /healthz (empty when nothing is)."""
        ...


@dataclass(frozen=True)
class TriggerContext:
    """Where a trigger works: the MQTT topic and log lines name the line, station and camera."""

    station: str
    line: str
    camera: str


TRIGGERS: Registry[Callable[[Any, TriggerContext], Trigger]] = Registry("trigger mode")
register = TRIGGERS.register


class _Counting:
    """Counts the units a trigger made; the lock because /metrics reads from another thread."""

    mode = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.units = 0

    def _made(self, units: list[Frame]) -> list[Frame]:
        if units:
            with self._lock:
                self.units += len(units)
        return units

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def finish(self) -> list[Frame]:
        return []

    def problems(self) -> list[str]:
        return []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"mode": self.mode, "units": self.units}


@register("frame")
class FrameTrigger(_Counting):
    """Every frame is a unit: the behaviour of a station without a trigger."""

    mode = "frame"

    def __init__(self, config: FrameTriggerConfig | None = None, context: TriggerContext | None = None):
        super().__init__()

    def feed(self, frame: Frame) -> list[Frame]:
        return self._made([frame])


@register("interval")
class IntervalTrigger(_Counting):
    """One unit every ``every_s`` seconds, on the capture clock.

    The unit is the first frame captured once the interval has elapsed, i.e. the newest frame at
    the moment the tick is served. Ticks missed while the source was down are skipped, not made up
    in a burst of units from the first frames after it comes back.
    """

    mode = "interval"

    def __init__(self, config: IntervalTriggerConfig, context: TriggerContext | None = None):
        super().__init__()
        self.every_s = config.every_s
        self._due_mono: float | None = None

    def feed(self, frame: Frame) -> list[Frame]:
        now = frame.captured_mono
        if self._due_mono is not None and now < self._due_mono:
            return []
        due = now if self._due_mono is None else self._due_mono
        due += self.every_s
        self._due_mono = due if due > now else now + self.every_s
        return self._made([frame])
