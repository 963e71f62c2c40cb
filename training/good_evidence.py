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
from torch import nn

from qc.position import (
    MAX_FIT_IMAGES,
    ColumnFactors,
    apply_position_scale,
    column_heat,
    fixed_camera,
    scale_from_column_heats,
)
from training.config import CalibrationConfig, ExportConfig
from training.station_scoring import TileScorer, station_map, station_tiles


MAX_FIT_TILES = 640
"""Station tiles' worth of trained-on images looked at after training, beside MAX_FIT_IMAGES: inferring
them is calibration's largest cost, and thirty 2048x2048 photographs (2430 tiles) took 90 s of a
5-minute onboarding; 640 tiles are 33 AITEX strips or 7 such photographs (docs/detector-log.md)."""


def picked_trained_on(tiles: list[int]) -> list[int]:
    """Which of the good images trained on (their station tiles each) are looked at after training:
    evenly spread, at most MAX_FIT_IMAGES of them and MAX_FIT_TILES tiles, but at least one."""
    count = min(len(tiles), MAX_FIT_IMAGES)
    while count > 0:
        picked = np.unique(np.linspace(0, len(tiles) - 1, count).round().astype(int)).tolist()
        if count == 1 or sum(tiles[i] for i in picked) <= MAX_FIT_TILES:
            return picked
        count -= 1
    return []


MAX_KEPT_MAP_BYTES = 256 << 20
"""The picked trained-on images' maps are kept from the column fit to the scores when they fit in this
(ten AITEX strips: 42 MB); 64 line-scan strips' maps would not, and are inferred twice instead."""


class PickedMaps:
    """The station maps of the picked trained-on images, by pick: each inferred once and kept for its
    second use when all fit in MAX_KEPT_MAP_BYTES (calibration's largest cost is this inference)."""

    def __init__(self, net: nn.Module | TileScorer, trained_on: list[np.ndarray], export: ExportConfig) -> None:
        self.net, self.trained_on, self.export = net, trained_on, export
        self.picked = picked_trained_on([station_tiles(image, export.tile_px, export.overlap_px) for image in trained_on])
        pixels = sum(trained_on[i].shape[0] * trained_on[i].shape[1] for i in self.picked)
        self.keep = pixels * np.dtype(np.float32).itemsize <= MAX_KEPT_MAP_BYTES
        self.kept: dict[int, tuple[np.ndarray, float]] = {}

    def __call__(self, k: int) -> tuple[np.ndarray, float]:
        """(heatmap, score) of the k-th picked image; a kept one is handed over and forgotten."""
        if k in self.kept:
            return self.kept.pop(k)
        result = station_map(self.net, self.trained_on[self.picked[k]], self.export)
        if self.keep:
            self.kept[k] = result
        return result


@dataclass(frozen=True)
class PositionFit:
    """A fixed camera's column factors and what they were fitted from."""

    record: dict  # the card's ``position`` fields: width, scale, applies_to, data
    picked: list[int]  # the trained-on images fitted on (indices)
    column_heats: list[np.ndarray]  # each one's hottest local heat per column (qc.position.column_heat)
    profile_share: float = 0.0  # calibration.column_profile_share

    def scale_without(self, k: int) -> ColumnFactors:
        """The factors fitted on every picked image but the k-th: that image then scores as an unseen one would."""
        others = self.column_heats[:k] + self.column_heats[k + 1 :]
        applies_to = self.record["applies_to"]
        scale = scale_from_column_heats(others, applies_to, self.profile_share) if others else [1.0] * self.record["width"]
        return ColumnFactors(np.asarray(scale, np.float32), applies_to)


def fit_position(
    net: nn.Module | TileScorer,
    trained_on: list[np.ndarray],
    held_back: list[np.ndarray],
    config: CalibrationConfig,
    export: ExportConfig,
    *,
    source: object,
    maps: PickedMaps | None = None,
) -> PositionFit | None:
    """A fixed camera's column factors (qc/position.py), or None when the images are not from one
    (``config.position``).

    Fitted on the good images trained on, never the held-back ones: those then calibrate the
    thresholds with the factors applied, as the station applies them, without having shaped them.
    """
    sizes = [image.shape[:2] for image in trained_on + held_back]
    if not fixed_camera(sizes, config.position):
        return None
    maps = maps or PickedMaps(net, trained_on, export)
    picked = maps.picked
    # Profiled on the map the station scores (padding cleared, not yet smoothed), so a good strip's
    # heat never exceeds its own column's profile: with factors on the odds, heat above the profile
    # would be quieted less than in proportion (the smoothed map's peaks of thin hot lines are lower).
    heats = [column_heat(maps(k)[0]) for k in range(len(picked))]
    scale = scale_from_column_heats(heats, config.column_factors, config.column_profile_share)
    record = {
        "width": len(scale),
        "scale": scale,
        "applies_to": config.column_factors,
        "data": f"{len(picked)} good images trained on from {source}",
    }
    return PositionFit(record, picked, heats, config.column_profile_share)


def trained_on_scores(
    net: nn.Module | TileScorer,
    trained_on: list[np.ndarray],
    export: ExportConfig,
    position: PositionFit | None,
    *,
    maps: PickedMaps | None = None,
) -> np.ndarray:
    """Station scores of (up to MAX_FIT_IMAGES and MAX_FIT_TILES of) the good images trained on, for the image threshold.

    The network learns from random crops of them with synthetic defects pasted in, never from their
    scores, and measured it does not score them lower than good images it never saw (AITEX dev
    fabrics: held-back and trained-on strips alike, 0.01-1.0). The column factors are another
    matter: fitted on these very images, they quiet exactly their hot spots. So each image is scored
    with factors refitted without it (cross-fitting), as an image of the next roll would be.
    """
    maps = maps or PickedMaps(net, trained_on, export)
    scores = []
    for k in range(len(maps.picked)):
        heatmap, score = maps(k)
        if position is not None:
            score = apply_position_scale(heatmap, score, position.scale_without(k))[1]
        scores.append(score)
    return np.asarray(scores, np.float64)


def good_evidence(
    net: nn.Module | TileScorer,
    trained_on: list[np.ndarray],
    held_back: list[np.ndarray],
    config: CalibrationConfig,
    export: ExportConfig,
    *,
    source: object,
) -> tuple[PositionFit | None, np.ndarray | None]:
    """What the good images trained on add to calibration: a fixed camera's column factors (or None)
    and, with ``config.image_scores_from`` all_good, their cross-fitted scores (or None)."""
    maps = PickedMaps(net, trained_on, export)
    position = fit_position(net, trained_on, held_back, config, export, source=source, maps=maps)
    scores = (
        trained_on_scores(net, trained_on, export, position, maps=maps) if config.image_scores_from == "all_good" else None
    )
    return position, scores
