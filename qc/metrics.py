"""Detection metrics in plain numpy: image AUROC and AP, pixel AUROC, AUPRO, rates at a threshold.

Written here rather than taken from scikit-learn so that a station and the benchmark compute the
same numbers with what a station already installs.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check_binary(labels: np.ndarray) -> tuple[int, int]:
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positive and negative examples")
    return n_pos, n_neg


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, highest threshold first.

    Tied scores are one threshold (taking the last index of each run of equal scores), so ties
    neither help nor hurt a detector.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = _check_binary(labels)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    tps = np.cumsum(sorted_labels)[last_of_run]
    fps = (last_of_run + 1) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, sorted_scores[last_of_run]]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve as a step sum (the usual 'AP')."""
    fpr, tpr, _ = roc_curve(scores, labels)
    labels = np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = int(labels.sum()), int(labels.size - labels.sum())
    tp, fp = tpr[1:] * n_pos, fpr[1:] * n_neg
    precision = tp / np.maximum(tp + fp, 1)
    return float(np.sum(np.diff(np.r_[0.0, tpr[1:]]) * precision))


def rates_at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall (defects caught), false-reject rate (good units failed), precision and F1."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    predicted = scores >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    recall = tp / max(tp + fn, 1)
    precision = tp / max(tp + fp, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {
        "recall": recall,
        "false_reject_rate": fp / max(int((~labels).sum()), 1),
        "precision": precision,
        "f1": f1,
    }


TILE_PX = 256
TILE_MIN_DEFECT_PX = 16


def tile_labels_and_scores(
    heatmap: np.ndarray, mask: np.ndarray, *, tile_px: int = TILE_PX, min_defect_px: int = TILE_MIN_DEFECT_PX
) -> tuple[np.ndarray, np.ndarray]:
    """One image cut into non-overlapping tiles: (label, score) per tile.

    A tile is defective when its mask has at least ``min_defect_px`` pixels; its score is the
    heatmap's maximum inside it. Eight good strips make strip-level AUROC jumpy; a 4096x256 strip
    gives 16 tiles, so tile-level figures rest on ~16 times more samples (the accuracy protocol).
    """
    tiles = labelled_tiles(heatmap, mask, tile_px=tile_px, min_defect_px=min_defect_px)
    labels, scores = zip(*((label, float(tile.max())) for label, tile in tiles))
    return np.array(labels, bool), np.array(scores, np.float64)


def labelled_tiles(
    heatmap: np.ndarray, mask: np.ndarray, *, tile_px: int = TILE_PX, min_defect_px: int = TILE_MIN_DEFECT_PX
) -> list[tuple[bool, np.ndarray]]:
    """The non-overlapping tiles of the protocol: (defective, the heatmap's view of the tile) each."""
    tiles = []
    for y in range(0, heatmap.shape[0], tile_px):
        for x in range(0, heatmap.shape[1], tile_px):
            window = (slice(y, y + tile_px), slice(x, x + tile_px))
            tiles.append((int((mask[window] > 0).sum()) >= min_defect_px, heatmap[window]))
    return tiles


def pixel_metrics(
    heatmaps: list[np.ndarray], masks: list[np.ndarray], *, max_fpr: float = 0.3
) -> dict[str, float]:
    """Pixel AUROC and AUPRO (per-region overlap integrated up to ``max_fpr``, normalised to 0..1).

    PRO weighs every defect region equally, however small: a 20-pixel fuzzball counts as much as a
    long crease, which is what an inspector cares about. One sort serves both metrics.
    """
    scores, region_weight, is_normal = [], [], []
    n_regions = 0
    region_sizes: list[np.ndarray] = []
    region_ids: list[np.ndarray] = []
    for heat, mask in zip(heatmaps, masks):
        if heat.shape != mask.shape:
            raise ValueError(f"heatmap {heat.shape} and mask {mask.shape} differ")
        n, labels = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
        sizes = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
        ids = labels.ravel().astype(np.int64)
        region_ids.append(np.where(ids > 0, ids + n_regions, 0))
        region_sizes.append(sizes[1:])
        n_regions += n - 1
        scores.append(heat.ravel().astype(np.float32))
        is_normal.append(ids == 0)
    scores_all = np.concatenate(scores)
    normal = np.concatenate(is_normal)
    ids_all = np.concatenate(region_ids)
    if n_regions == 0 or normal.all():
        raise ValueError("pixel metrics need at least one defect pixel")
    sizes_all = np.r_[1.0, np.concatenate(region_sizes)]  # index 0: normal pixels (weight 0)
    weight = np.where(ids_all > 0, 1.0 / (sizes_all[ids_all] * n_regions), 0.0)

    order = np.argsort(-scores_all, kind="stable")
    sorted_scores = scores_all[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    n_neg = int(normal.sum())
    n_pos = normal.size - n_neg
    fps = np.cumsum(normal[order])[last_of_run]
    tps = (last_of_run + 1) - fps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    pro = np.r_[0.0, np.cumsum(weight[order])[last_of_run]]

    keep = fpr <= max_fpr
    fpr_cut, pro_cut = fpr[keep], pro[keep]
    if fpr_cut[-1] < max_fpr:  # close the curve exactly at max_fpr
        i = np.searchsorted(fpr, max_fpr)
        t = (max_fpr - fpr[i - 1]) / max(fpr[i] - fpr[i - 1], 1e-12)
        fpr_cut = np.r_[fpr_cut, max_fpr]
        pro_cut = np.r_[pro_cut, pro[i - 1] + t * (pro[i] - pro[i - 1])]
    return {
        "pixel_auroc": float(np.trapezoid(tpr, fpr)),
        "aupro": float(np.trapezoid(pro_cut, fpr_cut) / max_fpr),
        "defect_regions": n_regions,
    }
