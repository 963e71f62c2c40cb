"""Frame sources: where the line's images come from. Chosen by the config's `type` field.

Only the simulated line exists now; a video file, an image folder or a camera slot into SOURCES.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from edge.config import SimulatedSourceConfig


@dataclass(frozen=True)
class Frame:
    """One captured unit image. ``truth`` is what a simulator knows; the verdict never reads it."""

    index: int
    image: np.ndarray  # uint8 RGB (H, W, 3)
    captured_at: datetime  # UTC
    captured_mono: float  # time.monotonic() at capture, for latency timings
    truth: dict[str, Any] = field(default_factory=dict)


class FrameSource(Protocol):
    def frames(self, stop: threading.Event) -> Iterator[Frame]: ...

    def describe(self) -> dict[str, Any]: ...


SOURCES: dict[str, Callable[[Any], FrameSource]] = {}


def register(type_name: str):
    def wrap(cls):
        SOURCES[type_name] = cls
        return cls

    return wrap


def build_source(config) -> FrameSource:
    return SOURCES[config.type](config)


@register("simulated")
class SimulatedSource:
    """Synthetic fabric panels at a steady rate, paced against the clock (no drift, no bursts)."""

    def __init__(self, config: SimulatedSourceConfig):
        self.config = config

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "type": c.type,
            "fps": c.fps,
            "size_px": list(c.size_px),
            "defect_probability": c.defect_probability,
        }

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        from qc.synth.panels import generate_panel  # numpy + OpenCV only; loaded when a line runs

        c = self.config
        rng = np.random.default_rng(c.seed)
        period_s = 1.0 / c.fps
        next_at = time.monotonic()
        index = 0
        while not stop.is_set() and (c.max_frames is None or index < c.max_frames):
            sample = generate_panel(
                rng, size_px=tuple(c.size_px), defect_probability=c.defect_probability
            )
            # A real camera delivers on its own clock; wait for the panel's slot, wake on stop.
            delay = next_at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            next_at = max(next_at + period_s, time.monotonic() - period_s)
            yield Frame(
                index=index,
                image=sample.image,
                captured_at=datetime.now(timezone.utc),
                captured_mono=time.monotonic(),
                truth=_truth_of(sample),
            )
            index += 1


def _truth_of(sample: Any) -> dict[str, Any]:
    defect_type = getattr(sample, "defect_type", None)
    mask = getattr(sample, "mask", None)
    defective = defect_type not in (None, "", "good")
    if mask is not None:
        defective = bool(np.any(mask))
    return {
        "defective": defective,
        "defect_type": defect_type if defective else None,
        "fabric": getattr(sample, "fabric", None),
    }
