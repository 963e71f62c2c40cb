"""Labelled regions as the station sees them: the detector's regions, not the ground truth's.

At the line a region's box and hint come from the detector's heatmap (qc.decision.decide's regions,
the hint = heatmap >= the pixel threshold), which is blobbier, shifted, split or merged compared with
the mask a type head learns from. Here the detector runs on each labelled image, decide() makes its
regions exactly as at the station, and each region on the ground-truth defect becomes a training
region labelled with the defect's type, its hint being the heatmap at the pixel threshold; each
region off the defect, a false alarm the station would type as well, is labelled NOT_A_DEFECT. The
ground-truth regions are kept beside them (regions.labelled_regions): both views, one image group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qc.decision import VerdictRules, decide
from qc.defect_types import NOT_A_DEFECT
from qc.inference import Inferencer
from training.types.regions import LabelledRegion, cut_region


def on_defect(mask: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether a region's box holds any ground-truth defect pixel (the region is the defect's,
    however much cloth around it the heatmap took in)."""
    x, y, w, h = box
    return bool(np.any(mask[y : y + h, x : x + w]))


@dataclass
class DetectorView:
    """The station's view (a regions.StationView): a detector (a model folder; its type head, if
    any, is not used) and the station's verdict rules (qc.decision.VerdictRules' defaults are configs/edge/default.yaml's)."""

    detector: Inferencer
    rules: VerdictRules = field(default_factory=VerdictRules)

    @classmethod
    def open(cls, model_dir: str | Path, *, threads: int) -> "DetectorView":
        return cls(Inferencer(model_dir, threads=threads))

    def describe(self) -> str:
        return f"{self.detector.model_dir} ({self.detector.name} {self.detector.version})"

    def regions(self, image: np.ndarray, mask: np.ndarray, kind: str, group: str) -> list[LabelledRegion]:
        """The detector's regions of ``image``: those on the defect in ``mask`` labelled ``kind``, the
        others (false alarms on good cloth, which the station would type too) NOT_A_DEFECT; none
        when the detector passes the image (the station types failed units only)."""
        result = self.detector.infer(image)
        decision = decide(result, self.detector.card, rules=self.rules)
        # The station's hint (qc.defect_types.TypeClassifier.classify): the heatmap the grading is
        # given, at the pixel threshold the decision reports.
        hint = (result.heatmap >= decision.pixel_threshold).astype(np.uint8) * 255
        return [
            cut_region(image, hint, defect.box, kind if on_defect(mask, defect.box) else NOT_A_DEFECT, group)
            for defect in decision.defects
        ]
