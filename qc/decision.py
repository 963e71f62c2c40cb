"""From a heatmap and an image score to a verdict and a list of defect regions."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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
    type_confidence: float | None = Field(None, description="the type classifier's probability for `type`; None: no classifier")
    severity: Literal["critical", "major", "minor"] | None = Field(None, description="from the station's severity table; None: not graded")


class VerdictRules(BaseModel):
    """Station-side rules applied on top of the model card's thresholds."""

    model_config = ConfigDict(extra="forbid")

    min_area_px: int = Field(4, ge=1, description="regions smaller than this are not reported")
    ignore_margin_px: int = Field(
        0, ge=0, description="band along every image edge that is never inspected (e.g. selvage)"
    )
    ignore_zones: list[tuple[int, int, int, int]] = Field(
        default_factory=list, description="x, y, width, height boxes never inspected (e.g. a label)"
    )
    score_window_px: int = Field(
        5, ge=1, description="local average used to re-score a heatmap with ignored areas"
    )
    class_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="per defect class: the peak score a region of that class needs to count; a "
        "failed unit whose regions all fall short passes (e.g. tolerate faint slubs)",
    )

    def ignored(self, shape: tuple[int, int]) -> np.ndarray | None:
        """Boolean mask of ignored pixels, or None when nothing is ignored."""
        if not self.ignore_margin_px and not self.ignore_zones:
            return None
        mask = np.zeros(shape, bool)
        m = self.ignore_margin_px
        if m:
            mask[:m, :] = mask[-m:, :] = True
            mask[:, :m] = mask[:, -m:] = True
        for x, y, w, h in self.ignore_zones:
            mask[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = True
        return mask


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


def apply_ignored(result: InferenceResult, rules: VerdictRules) -> InferenceResult:
    """Zero the heatmap where the station ignores it, and re-score the rest the way the network
    scores an image (the hottest local average), so an ignored selvage cannot fail a unit."""
    ignored = rules.ignored(result.heatmap.shape)
    if ignored is None:
        return result
    heatmap = np.where(ignored, 0.0, result.heatmap).astype(np.float32)
    k = rules.score_window_px
    local = cv2.blur(heatmap, (k, k), borderType=cv2.BORDER_REPLICATE)
    return InferenceResult(heatmap=heatmap, score=float(local.max()), infer_ms=result.infer_ms)


def decide(
    result: InferenceResult,
    card: ModelCard,
    *,
    px_per_mm: float | None = None,
    min_area_px: int | None = None,
    rules: VerdictRules | None = None,
) -> Decision:
    """A unit fails when its image score reaches the card's image threshold.

    The thresholds come from the card at call time, so a recalibrated card changes verdicts
    without re-exporting the network.
    """
    rules = rules or VerdictRules()
    if min_area_px is not None:
        rules = rules.model_copy(update={"min_area_px": min_area_px})
    min_area_px = rules.min_area_px
    result = apply_ignored(result, rules)
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
        if rules.class_thresholds:
            defects = [d for d in defects if d.peak_score >= rules.class_thresholds.get(d.type, 0.0)]
            if not defects:
                verdict = "pass"  # every region is below its class's bar: nothing to reject for
    return Decision(
        verdict=verdict,
        score=result.score,
        image_threshold=thresholds.image,
        pixel_threshold=thresholds.pixel,
        defects=defects,
    )
