"""The simulated line: synthetic fabric panels at a steady rate, the default source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np

from edge.line.sources.base import Frame, Pacer, SourceStatus, register
from edge.line.sources.config import SimulatedSourceConfig


@register("simulated")
class SimulatedSource:
    """Synthetic fabric panels at a steady rate, paced against the clock (no drift, no bursts)."""

    def __init__(self, config: SimulatedSourceConfig):
        self.config = config
        self.status = SourceStatus()

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
        pacer = Pacer(c.fps)
        self.status.delivering()
        index = 0
        while not stop.is_set() and (c.max_frames is None or index < c.max_frames):
            sample = generate_panel(
                rng, size_px=tuple(c.size_px), defect_probability=c.defect_probability
            )
            # A real camera delivers on its own clock; wait for the panel's slot, wake on stop.
            if pacer.wait(stop):
                return
            yield Frame(
                index=index,
                image=sample.image,
                captured_at=datetime.now(timezone.utc),
                captured_mono=time.monotonic(),
                truth=_truth_of(sample),
            )
            index += 1
        if not stop.is_set():
            self.status.finished()


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
