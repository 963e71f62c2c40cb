"""A cue the network does not have: is the structure around each pixel repeated close by?

Woven and knitted cloth and a stitch line repeat themselves every few pixels. A skipped or broken
stitch is a gap in that repeat: locally it is just a little plain cloth, which the network scores
as the good cloth beside every seam (docs/detector-log.md, "Forty labelled examples of every defect
type": even shown 40 of each it did not tell them apart). Here every pixel's patch is compared with
the patches shifted by ``min_shift_px`` to ``max_shift_px`` in every direction, and the smallest
mean squared difference is kept: where the cloth or the stitch line repeats, some shift explains the
patch; where the repeat is broken, none does. The map is divided by the median over the image's
textured spots, so the figure says how much less explained a spot is than the cloth's typical spot,
whatever the fabric's contrast and however much of the frame is plain belt or machine bed.

Nothing is learnt. The threshold is the largest score among the good images a model was onboarded
from (or a high quantile of many), times a margin; since no image shaped it, every good image is a
fair sample of what unseen good ones score. A model's card records it (``self_similarity``); a
card without one inspects with the network alone.

The cue is looked at on the image reduced by ``scale`` (2: half size): a 512x512 image takes about
30 ms on 2 cores instead of 600 ms at full size, for most of the gain (docs/detector-log.md,
"Unrepeated structure: a second cue beside the network").
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

from qc.good_scores import good_statistic

if TYPE_CHECKING:
    from qc.card import SelfSimilarityRecord

MEDIAN_FLOOR = 1e-6
"""Keeps a blank image's median from dividing by zero; texture noise alone is about 1e-4 (0..1 grey)."""

TEXTURE_SHARE = 0.1
TEXTURE_PERCENTILE = 90
"""A spot counts as cloth for the median when its patch varies at least TEXTURE_SHARE as much as
the image's TEXTURE_PERCENTILE-th busiest patch. Over all spots, a frame more than half plain (a
belt around a panel, a machine bed beside a strip) had a median near zero, and a good image's score
rose a hundred- to a thousandfold with the plain share (tests/qc/test_self_similarity.py). On frames
that are all cloth the median barely moves: on the ten synthetic fabrics and AITEX 00, 02, 06 the
cue alone caught the same defects and rejected the same good images (docs/detector-log.md). A
frame more than nine-tenths plain still takes the plain part's spread as its reference."""

NEAR_MISS_POWER = 4
"""Below its threshold the cue's heat is image_threshold * ratio ** 4: good cloth's unexplained
structure (ratio about 0.05 to 0.5) stays near zero, so the network's map still ranks the pixels,
and only near misses show beside the network's heat."""


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 RGB or grey -> float32 grey in 0..1."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.shape[2] == 3 else image[..., 0]
    return image.astype(np.float32) / np.float32(255)


@lru_cache(maxsize=8)
def half_plane_shifts(min_shift: int, max_shift: int) -> tuple[tuple[int, int], ...]:
    """Shifts (dy, dx) with min_shift <= length <= max_shift, one of each +-pair: comparing a patch
    with the one at +d also compares that one with this at -d."""
    return tuple(
        (dy, dx)
        for dy in range(0, max_shift + 1)
        for dx in range(-max_shift, max_shift + 1)
        if min_shift**2 <= dy * dy + dx * dx <= max_shift**2 and (dy > 0 or dx > 0)
    )


def reduced_geometry(record: SelfSimilarityRecord) -> tuple[int, int, int, float]:
    """(patch side, min shift, max shift, sigma) in pixels of the reduced image."""
    s = record.scale
    patch = max(3, record.patch_px // s) | 1  # odd, so the patch is centred on its pixel
    return patch, max(1, round(record.min_shift_px / s)), max(2, round(record.max_shift_px / s)), record.sigma_px / s


def unrepeated_map(image: np.ndarray, record: SelfSimilarityRecord) -> np.ndarray:
    """Each pixel's unexplained structure on the reduced grid, in units of the cloth's median spot, smoothed."""
    grey = to_grey(image)
    if record.scale > 1:
        height, width = grey.shape
        grey = cv2.resize(
            grey, (max(1, width // record.scale), max(1, height // record.scale)), interpolation=cv2.INTER_AREA
        )
    else:  # at full size a light blur stands in for the reduction's averaging of sensor noise
        grey = cv2.GaussianBlur(grey, (0, 0), 0.8)
    patch, min_shift, max_shift, sigma = reduced_geometry(record)
    height, width = grey.shape
    best = np.full((height, width), np.inf, np.float32)
    for dy, dx in half_plane_shifts(min_shift, max_shift):
        if dy >= height or abs(dx) >= width:
            continue
        x0, x1 = max(0, -dx), min(width, width - dx)
        here = grey[: height - dy, x0:x1]
        there = grey[dy:, x0 + dx : x1 + dx]
        error = cv2.boxFilter((here - there) ** 2, -1, (patch, patch), borderType=cv2.BORDER_REFLECT)
        np.minimum(best[: height - dy, x0:x1], error, out=best[: height - dy, x0:x1])
        np.minimum(best[dy:, x0 + dx : x1 + dx], error, out=best[dy:, x0 + dx : x1 + dx])
    best[~np.isfinite(best)] = 0.0  # an image smaller than the shortest shift has nothing to compare
    best /= max(cloth_median(best, grey, patch), MEDIAN_FLOOR)
    return cv2.GaussianBlur(best, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def cloth_median(best: np.ndarray, grey: np.ndarray, patch: int) -> float:
    """The median unexplained structure over the textured spots (TEXTURE_SHARE): the cloth's typical
    spot, not a plain background's. A blank image has no busier spot, so all of it counts."""
    mean = cv2.boxFilter(grey, -1, (patch, patch), borderType=cv2.BORDER_REFLECT)
    variance = cv2.boxFilter((grey - mean) ** 2, -1, (patch, patch), borderType=cv2.BORDER_REFLECT)
    textured = variance >= TEXTURE_SHARE * np.percentile(variance, TEXTURE_PERCENTILE)
    return float(np.median(best[textured]))


def inner(reduced: np.ndarray, record: SelfSimilarityRecord) -> tuple[slice, slice]:
    """The part of the reduced map away from the border by the longest shift: nearer the edge a
    patch has fewer shifts to be explained by, so it would score high on good cloth. An image too
    small for a border is looked at whole."""
    margin = reduced_geometry(record)[2]
    height, width = reduced.shape
    rows = slice(margin, height - margin) if height > 2 * margin else slice(0, height)
    cols = slice(margin, width - margin) if width > 2 * margin else slice(0, width)
    return rows, cols


def image_score(image: np.ndarray, record: SelfSimilarityRecord) -> float:
    """The image's largest unexplained structure (the smoothed map's maximum away from the border)."""
    reduced = unrepeated_map(image, record)
    return float(reduced[inner(reduced, record)].max())


def as_heat(ratio: np.ndarray | float, image_threshold: float) -> np.ndarray:
    """Score / cue threshold -> the network's heat scale: 1.0 lands on the image threshold, so the
    cue fails a unit exactly when its own threshold is reached; above it the heat climbs to 1 at
    twice the threshold, below it falls as ratio ** NEAR_MISS_POWER."""
    ratio = np.asarray(ratio, np.float32)
    below = image_threshold * np.minimum(ratio, 1.0) ** NEAR_MISS_POWER
    above = image_threshold + (1.0 - image_threshold) * np.clip(ratio - 1.0, 0.0, 1.0)
    return np.where(ratio < 1.0, below, above).astype(np.float32)


def add_unrepeated(
    image: np.ndarray, heatmap: np.ndarray, score: float, record: SelfSimilarityRecord, image_threshold: float
) -> tuple[np.ndarray, float]:
    """The network's (shown heatmap, image score) joined with the cue's, the larger at every pixel:
    a unit fails when either reaches its threshold. ``heatmap`` is updated in place."""
    reduced = unrepeated_map(image, record)
    rows, cols = inner(reduced, record)
    cue = np.zeros_like(reduced)
    cue[rows, cols] = as_heat(reduced[rows, cols] / record.threshold, image_threshold)
    height, width = heatmap.shape
    np.maximum(heatmap, cv2.resize(cue, (width, height), interpolation=cv2.INTER_LINEAR), out=heatmap)
    cue_score = float(as_heat(float(reduced[rows, cols].max()) / record.threshold, image_threshold))
    return heatmap, max(score, cue_score)


def fitted_threshold(scores: list[float], margin: float, target_false_reject_rate: float) -> tuple[float, str]:
    """The cue's threshold from good images' scores, the statistic the network's threshold is set
    from too (qc.good_scores) times ``margin``; and how it was set, for the card."""
    stat, rule = good_statistic(scores, target_false_reject_rate)
    return stat * margin, f"{rule} x{margin:g} over {len(scores)} good images"
