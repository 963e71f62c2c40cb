"""``presence``: a unit is something entering and then leaving a region of interest.

Each frame's ROI is compared, at a small width, with a background image; the share of pixels
whose colour differs by more than ``diff_threshold`` levels in some channel is the frame's coverage. Hysteresis
keeps one object one unit: it is present after ``min_frames`` frames above ``on_fraction`` and gone
after ``off_frames`` frames below ``off_fraction``; between the two nothing changes. The background
starts as the first frame (an empty belt) and is blended, slowly, with the unchanged pixels of
frames where nothing is present, so it follows the light over a shift but never learns a unit.
A sudden lasting change (a lamp fails, the belt stops under a panel) reads as a unit that never
leaves: after ``max_present_frames`` it is closed and the background taken again.

Per unit either the best frame (``pick: best``: the one whose ROI the unit covers most, or the
sharpest) or its frames stitched one under the other (``pick: stitch``, for a unit passing under
a line camera, each frame a strip of it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from edge.line.sources.base import Frame
from edge.line.triggers.base import TriggerContext, TriggerError, _Counting, register
from edge.line.triggers.config import PresenceTriggerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Seen:
    frame: Frame
    coverage: float  # share of the ROI that differs from the background
    sharpness: float  # variance of the Laplacian of the ROI (grey, analysis width)


class PresenceDetector:
    """Background difference inside the ROI: frame -> (coverage, sharpness)."""

    def __init__(self, config: PresenceTriggerConfig):
        self.config = config
        self.background: np.ndarray | None = None
        self._unchanged: np.ndarray | None = None  # of the last frame measured, 1 = like background

    def _small_roi(self, image: np.ndarray) -> np.ndarray:
        c = self.config
        height, width = image.shape[:2]
        x, y, w, h = c.roi if c.roi is not None else (0, 0, width, height)
        if x + w > width or y + h > height:
            raise TriggerError(
                f"presence roi [{x}, {y}, {w}, {h}] does not fit the {width}x{height} frame"
            )
        roi = image[y : y + h, x : x + w]
        if w > c.analysis_width_px:
            size = (c.analysis_width_px, max(1, round(h * c.analysis_width_px / w)))
            roi = cv2.resize(roi, size, interpolation=cv2.INTER_AREA)
        # A light blur keeps sensor noise and JPEG blocks from counting as change.
        return cv2.GaussianBlur(roi, (3, 3), 0).astype(np.float32)

    def measure(self, image: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(coverage, sharpness, the small ROI to learn from). Colour, not grey: a red panel on a
        grey belt of the same brightness differs in colour only."""
        small = self._small_roi(image)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
        if self.background is None or self.background.shape != small.shape:
            self.background = small  # first frame, or the camera changed mode: start again
            self._unchanged = None
            return 0.0, sharpness, small
        changed = cv2.absdiff(small, self.background).max(axis=2) > self.config.diff_threshold
        self._unchanged = (~changed).astype(np.uint8)
        return float(changed.mean()), sharpness, small

    def learn(self, small: np.ndarray) -> None:
        """Blend a frame with nothing present into the background, its unchanged pixels only: the
        edge of a unit just entering never becomes background, a slow light change does."""
        rate = self.config.background_rate
        if self.background is not None and rate > 0 and self._unchanged is not None:
            cv2.accumulateWeighted(small, self.background, rate, mask=self._unchanged)

    def relearn(self, small: np.ndarray) -> None:
        self.background = small.copy()


@register("presence")
class PresenceTrigger(_Counting):
    mode = "presence"

    def __init__(self, config: PresenceTriggerConfig, context: TriggerContext | None = None):
        super().__init__()
        self.config = config
        self.camera = context.camera if context else "?"
        self.detector = PresenceDetector(config)
        self.present = False
        self._entering: list[_Seen] = []  # frames above on_fraction, before min_frames is reached
        self._leaving: list[_Seen] = []  # frames below off_fraction while present
        self._frames_present = 0
        self._best: _Seen | None = None
        self._strips: list[Frame] = []
        self.not_stitched = 0  # frames beyond max_frames, counted
        self.relearned = 0  # units that never left: background taken again
        self.last_coverage = 0.0

    # -- state machine ---------------------------------------------------------------------------

    def feed(self, frame: Frame) -> list[Frame]:
        c = self.config
        coverage, sharpness, grey = self.detector.measure(frame.image)
        seen = _Seen(frame, coverage, sharpness)
        with self._lock:
            self.last_coverage = coverage
        if not self.present:
            if coverage > c.on_fraction:
                self._entering.append(seen)
                if len(self._entering) >= c.min_frames:
                    self.present = True
                    for s in self._entering:
                        self._take(s)
                    self._entering = []
                return []
            self._entering = []
            self.detector.learn(grey)
            return []
        if coverage < c.off_fraction:
            self._leaving.append(seen)
            if len(self._leaving) >= c.off_frames:
                unit = self._close(completed_mono=frame.captured_mono)
                self.detector.learn(grey)
                return self._made([unit])
            return []
        for s in self._leaving:  # a dip, not an exit: those frames belong to the unit
            self._take(s)
        self._leaving = []
        self._take(seen)
        if self._frames_present >= c.max_present_frames:
            log.warning(
                "camera %s: a unit stayed %d frames in the roi; closed, background relearned",
                self.camera, self._frames_present,
            )
            unit = self._close(completed_mono=frame.captured_mono)
            self.detector.relearn(grey)
            with self._lock:
                self.relearned += 1
            return self._made([unit])
        return []

    def finish(self) -> list[Frame]:
        if not self.present:
            return []
        last = self._strips[-1] if self._strips else self._best.frame  # type: ignore[union-attr]
        return self._made([self._close(completed_mono=last.captured_mono)])

    def _take(self, seen: _Seen) -> None:
        self._frames_present += 1
        if self.config.pick == "stitch":
            if len(self._strips) < self.config.max_frames:
                self._strips.append(seen.frame)
            else:
                with self._lock:
                    self.not_stitched += 1
            return
        if self._best is None or self._rank(seen) > self._rank(self._best):
            self._best = seen

    def _rank(self, seen: _Seen) -> tuple[float, float]:
        if self.config.best_by == "sharpness":
            return seen.sharpness, seen.coverage
        return seen.coverage, seen.sharpness

    def _close(self, *, completed_mono: float) -> Frame:
        """The unit as one Frame. Timed from when it was complete (queue and staleness measure the
        station, not how long the unit took to pass); captured_at is when its picture was taken."""
        frames = self._frames_present
        if self.config.pick == "stitch":
            unit = stitch(self._strips)
        else:
            assert self._best is not None
            unit = self._best.frame
        self.present = False
        self._leaving, self._strips, self._best, self._frames_present = [], [], None, 0
        return replace(
            unit, captured_mono=completed_mono, truth={**unit.truth, "frames_present": frames}
        )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "mode": self.mode,
                "units": self.units,
                "present": self.present,
                "coverage": round(self.last_coverage, 4),
                "frames_not_stitched": self.not_stitched,
                "background_relearned": self.relearned,
            }


def stitch(frames: list[Frame]) -> Frame:
    """The frames one under the other (the first on top), as one Frame stamped like the first.

    Frames narrower or wider than the first (a camera that changed mode mid-unit) are left out:
    a strip cannot be placed without guessing."""
    first = frames[0]
    width = first.image.shape[1]
    strips = [f.image for f in frames if f.image.shape[1] == width]
    image = np.ascontiguousarray(np.concatenate(strips, axis=0))
    return replace(first, image=image)
