"""What the station does to a model's raw output before anyone sees it, in one place, so the
station (qc.inference), calibration and evaluation (training.station_scoring) can never disagree.

1. Saturated flat padding at the image border is cleared and the image re-scored (qc.padding).
   For a fixed camera, columns hot on every good image are quieted and the image re-scored
   (qc.position).
2. The heatmap is smoothed with a Gaussian of ``HEATMAP_SIGMA_PX``; a model whose card has a
   ``heatmap.broad_sigma_px`` shows the larger of that and the map smoothed with the broad Gaussian.
   The image score is *not* taken from the smoothed map: it stays the raw map's hottest 5x5 average,
   so a defect a few pixels wide keeps its full score.

Why smooth: the network's raw map is speckled along a defect and leaves holes inside it; per-pixel
figures and the regions a station reports suffer from both. Measured post-hoc on the four AITEX
dev fabrics (the same trained models, sigma 4): pixel AUROC 00 0.90 -> 0.97, 02 0.93 -> 0.998,
04 0.999 -> 0.999, 06 0.59 -> 0.49 (06's missed cut-selvage lines get no heat either way, and the
smoothing spreads its false alarms); AUPRO rose on three and held on 04 (00 0.73 -> 0.88, 02 0.95 ->
0.99, 06 0.72 -> 0.74). An image score from the smoothed map lost image AUROC on three fabrics;
hence smoothed map, raw score. Sigma 4 px is the usual choice in anomaly detection (anomalib's
default), not fitted to these fabrics.

Why a broad smoothing beside it (2026-12-06): a long faint defect, such as AITEX's cut selvage (a
1-2 px thread ending in a dark dot, masked as a 67x10 box), gets heat at its dot only; at sigma 4 most
of its mask stays near zero, ranked among the good pixels. The maximum of the fine map and one
smoothed at 16 px spreads the dot's heat over the defect's extent without lowering any peak, so a
small defect keeps its fine outline and the tile maxima are unchanged. On the same 18 trained
networks of the onboarding default (docs/detector-log.md, "Broad smoothing beside the fine one"):
pixel AUROC 00 0.908 -> 0.938, 02 0.991 -> 0.994, 04 1.000 -> 1.000, 06 0.835 -> 0.953; tile AUROC
identical. The broad map alone (sigma 16) scored pixel AUROC as well but lost tile AUROC on 04 and 06.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc.padding import suppress_padding
from qc.position import ColumnFactors, apply_position_scale

HEATMAP_SIGMA_PX = 4.0


def smooth_heatmap(heatmap: np.ndarray, sigma_px: float = HEATMAP_SIGMA_PX) -> np.ndarray:
    if sigma_px <= 0:
        return heatmap
    heatmap = heatmap.astype(np.float32, copy=False)
    return cv2.GaussianBlur(heatmap, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT)


BROAD_GRID_SIGMA_PX = 4.0
"""The broad Gaussian's sigma in cells of its coarse grid: a 16-px sigma is blurred at 4 cells on a grid 4x coarser."""


def broad_smoothing(heatmap: np.ndarray, sigma_px: float) -> np.ndarray:
    """The map smoothed with a Gaussian of ``sigma_px``, computed on a grid coarser by sigma / 4 and
    upsampled (bilinear). A Gaussian's kernel grows with its sigma: at 16 px a 2048x2048 map took
    105 ms against 25 ms for the 4-px one; on the coarse grid the broad one takes 3-4 ms, within
    4e-4 of the exact blur (a dot smoothed at 16 px peaks at about 0.016)."""
    factor = max(1, int(sigma_px // BROAD_GRID_SIGMA_PX))
    heatmap = heatmap.astype(np.float32, copy=False)
    if factor == 1:
        return smooth_heatmap(heatmap, sigma_px)
    height, width = heatmap.shape
    small = cv2.resize(heatmap, (-(-width // factor), -(-height // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / factor, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def postprocess(
    image_rgb: np.ndarray,
    heatmap: np.ndarray,
    score: float,
    position_scale: ColumnFactors | None = None,
    broad_sigma_px: float = 0.0,
) -> tuple[np.ndarray, float]:
    """(raw heatmap in 0..1, raw image score) -> (the heatmap the station shows and thresholds, score).

    The raw heatmap is cleared over padding in place (qc.padding), then, for a model with a fixed
    camera's column factors (the card's ``position``), scaled per column in place (qc.position): a
    large image's map is not copied for either.
    """
    heatmap, score = scored_map(image_rgb, heatmap, score, position_scale)
    return shown_heatmap(heatmap, broad_sigma_px), score


def scored_map(
    image_rgb: np.ndarray, heatmap: np.ndarray, score: float, position_scale: ColumnFactors | None = None
) -> tuple[np.ndarray, float]:
    """The steps before smoothing (padding, column factors): the map the image score is taken from."""
    heatmap, score = suppress_padding(image_rgb, heatmap, score)
    return apply_position_scale(heatmap, score, position_scale)


def after_padding(
    heatmap: np.ndarray, score: float, position_scale: ColumnFactors | None = None, broad_sigma_px: float = 0.0
) -> tuple[np.ndarray, float]:
    """The steps after padding (column factors, smoothing): calibration applies different factors to
    one padding-cleared map (training.good_evidence), without clearing the padding again."""
    heatmap, score = apply_position_scale(heatmap, score, position_scale)
    return shown_heatmap(heatmap, broad_sigma_px), score


def shown_heatmap(scored: np.ndarray, broad_sigma_px: float = 0.0) -> np.ndarray:
    """The scored map as the station shows and thresholds it: smoothed, within 0..1; with
    ``broad_sigma_px`` > 0, the larger of the fine and the broad smoothing at every pixel."""
    shown = smooth_heatmap(scored)
    if broad_sigma_px > 0:
        np.maximum(shown, broad_smoothing(scored, broad_sigma_px), out=shown)
    return np.clip(shown, 0.0, 1.0, out=shown)
