"""From a heatmap and an image score to a verdict and a list of defect regions."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from qc.card import ModelCard
from qc.inference import InferenceResult

Verdict = Literal["pass", "fail"]
ONE_CLASS = "defect"  # a detector trained on good images only knows "not like the good ones"


class Defect(BaseModel):
    type: str = ONE_CLASS
    box: tuple[int, int, int, int] = Field(description="x, y, width, height in image pixels")
    area_px: int
    area_mm2: float | None = None
    length_mm: float | None = Field(None, description="longest side of the rotated bounding box")
    peak_score: float
    mean_score: float


class Decision(BaseModel):
    verdict: Verdict
    score: float
    image_threshold: float
    pixel_threshold: float
    defects: list[Defect]


def find_defects(
    heatmap: np.ndarray,
    pixel_threshold: float,
    *,
    min_area_px: int = 1,
    px_per_mm: float | None = None,
) -> list[Defect]:
    """Connected regions of the heatmap at or above the pixel threshold, largest peak first."""
    binary = (heatmap >= pixel_threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    defects = []
    for label in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area_px:
            continue
        region = labels == label
        values = heatmap[region]
        area_mm2 = length_mm = None
        if px_per_mm:
            area_mm2 = area / (px_per_mm**2)
            points = np.column_stack(np.nonzero(region)[::-1]).astype(np.float32)
            (_, _), (rw, rh), _ = cv2.minAreaRect(points)
            length_mm = max(rw, rh, 1.0) / px_per_mm
        defects.append(
            Defect(
                box=(x, y, w, h),
                area_px=area,
                area_mm2=area_mm2,
                length_mm=length_mm,
                peak_score=float(values.max()),
                mean_score=float(values.mean()),
            )
        )
    defects.sort(key=lambda d: d.peak_score, reverse=True)
    return defects


def decide(
    result: InferenceResult,
    card: ModelCard,
    *,
    px_per_mm: float | None = None,
    min_area_px: int = 4,
) -> Decision:
    """A unit fails when its image score reaches the card's image threshold.

    The thresholds come from the card at call time, so a recalibrated card changes verdicts
    without re-exporting the network.
    """
    thresholds = card.thresholds
    verdict: Verdict = "fail" if result.score >= thresholds.image else "pass"
    defects: list[Defect] = []
    if verdict == "fail":
        # Regions are reported for failed units only: a PASS listing "defects" would leave the
        # operator wondering which to believe (near misses still show on the heatmap).
        defects = find_defects(
            result.heatmap, thresholds.pixel, min_area_px=min_area_px, px_per_mm=px_per_mm
        )
        if not defects:
            # The image score is a local average, so a failed unit can have no pixel above the
            # pixel threshold: outline the hottest area instead of failing with nothing to show.
            peak = float(result.heatmap.max())
            defects = find_defects(result.heatmap, 0.9 * peak, min_area_px=1, px_per_mm=px_per_mm)
    return Decision(
        verdict=verdict,
        score=result.score,
        image_threshold=thresholds.image,
        pixel_threshold=thresholds.pixel,
        defects=defects,
    )
