"""What the good images trained on add to calibration, beside the held-back ones.

A fixed camera's column factors are fitted on them (qc/position.py). And their scores widen the
sample the image threshold is set from: two held-back strips cannot show how far a good image's
score spreads, and measured they did not (kept ``qc bench aitex`` networks, AITEX dev fabrics, 3
seeds, column factors on: the good-max rule over the 2 held-back strips rejected 19 % of the good
test strips on average, over those 2 and the 10 cross-fitted trained-on strips 1 %, at a recall of
0.51 instead of 0.65; bench/results/calibration.json, calibration_held_back.json).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qc.position import (
    MAX_FIT_IMAGES,
    ColumnFactors,
    apply_position_scale,
    column_heat,
    fixed_camera,
    scale_from_column_heats,
)
from training.config import CalibrationConfig, ExportConfig
from training.net import DefectUNet
from training.station_scoring import station_map


def picked_trained_on(count: int) -> list[int]:
    """Which of ``count`` good images trained on are looked at after training: at most MAX_FIT_IMAGES, evenly spread."""
    if count == 0:
        return []
    return np.unique(np.linspace(0, count - 1, min(count, MAX_FIT_IMAGES)).round().astype(int)).tolist()


@dataclass(frozen=True)
class PositionFit:
    """A fixed camera's column factors and what they were fitted from."""

    record: dict  # the card's ``position`` fields: width, scale, applies_to, data
    picked: list[int]  # the trained-on images fitted on (indices)
    column_heats: list[np.ndarray]  # each one's hottest local heat per column (qc.position.column_heat)

    def scale_without(self, k: int) -> ColumnFactors:
        """The factors fitted on every picked image but the k-th: that image then scores as an unseen one would."""
        others = self.column_heats[:k] + self.column_heats[k + 1 :]
        applies_to = self.record["applies_to"]
        scale = scale_from_column_heats(others, applies_to) if others else [1.0] * self.record["width"]
        return ColumnFactors(np.asarray(scale, np.float32), applies_to)


def fit_position(
    net: DefectUNet,
    trained_on: list[np.ndarray],
    held_back: list[np.ndarray],
    config: CalibrationConfig,
    export: ExportConfig,
    *,
    source: object,
) -> PositionFit | None:
    """A fixed camera's column factors (qc/position.py), or None when the images are not from one
    (``config.position``).

    Fitted on the good images trained on, never the held-back ones: those then calibrate the
    thresholds with the factors applied, as the station applies them, without having shaped them.
    """
    sizes = [image.shape[:2] for image in trained_on + held_back]
    if not fixed_camera(sizes, config.position):
        return None
    picked = picked_trained_on(len(trained_on))
    # Profiled on the map the station scores (padding cleared, not yet smoothed), so a good strip's
    # heat never exceeds its own column's profile: with factors on the odds, heat above the profile
    # would be quieted less than in proportion (the smoothed map's peaks of thin hot lines are lower).
    heats = [column_heat(station_map(net, trained_on[i], export)[0]) for i in picked]
    scale = scale_from_column_heats(heats, config.column_factors)
    record = {
        "width": len(scale),
        "scale": scale,
        "applies_to": config.column_factors,
        "data": f"{len(picked)} good images trained on from {source}",
    }
    return PositionFit(record, picked, heats)


def trained_on_scores(
    net: DefectUNet, trained_on: list[np.ndarray], export: ExportConfig, position: PositionFit | None
) -> np.ndarray:
    """Station scores of (up to MAX_FIT_IMAGES of) the good images trained on, for the image threshold.

    The network learns from random crops of them with synthetic defects pasted in, never from their
    scores, and measured it does not score them lower than good images it never saw (AITEX dev
    fabrics: held-back and trained-on strips alike, 0.01-1.0). The column factors are another
    matter: fitted on these very images, they quiet exactly their hot spots. So each image is scored
    with factors refitted without it (cross-fitting), as an image of the next roll would be.
    """
    picked = position.picked if position else picked_trained_on(len(trained_on))
    scores = []
    for k, i in enumerate(picked):
        # Inferred again rather than kept from the fit: 64 line-scan strips' maps would hold 256 MB.
        heatmap, score = station_map(net, trained_on[i], export)
        if position is not None:
            score = apply_position_scale(heatmap, score, position.scale_without(k))[1]
        scores.append(score)
    return np.asarray(scores, np.float64)


def good_evidence(
    net: DefectUNet,
    trained_on: list[np.ndarray],
    held_back: list[np.ndarray],
    config: CalibrationConfig,
    export: ExportConfig,
    *,
    source: object,
) -> tuple[PositionFit | None, np.ndarray | None]:
    """What the good images trained on add to calibration: a fixed camera's column factors (or None)
    and, with ``config.image_scores_from`` all_good, their cross-fitted scores (or None)."""
    position = fit_position(net, trained_on, held_back, config, export, source=source)
    scores = trained_on_scores(net, trained_on, export, position) if config.image_scores_from == "all_good" else None
    return position, scores
