"""Threshold calibration on good images (never on test/): the ones held back from training and,
for the image threshold, the cross-fitted scores of the ones trained on (training.good_evidence).

Image threshold. With n good scores and a target false-reject rate r:
- if n >= 1/r, the empirical (1 - r) quantile is estimable and is used ("good-quantile");
- otherwise (the usual case: a few dozen good images and r = 1 %) the quantile would just be the
  maximum, and the maximum of n samples sits only at about the 1 - 1/(n+1) quantile, so a margin is
  needed ("good-max").
Either statistic s is then given a safety margin on the *odds* scale, odds(t) = image_odds_margin *
odds(s): for small scores this is about image_odds_margin times s, and it never crosses 1, which a
multiplicative margin on s itself would for a score near 1.

Pixel threshold: an odds margin of its own (``odds_margin``) on a high quantile of the held-back
good heatmap pixels (a single hot pixel must not set it), never below ``pixel_floor`` (0.5, where
the network itself calls a pixel more likely defect than not).

Images are scored as the station scores them (qc.tiling: same tiles, padding and blending), so the
thresholds mean the same thing at calibration and on the line.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from qc.card import Calibration, SelfSimilarityRecord, Thresholds
from qc.good_scores import good_statistic
from qc.position import ColumnFactors
from qc.self_similarity import fitted_threshold, image_score
from training.config import CalibrationConfig, ExportConfig
from training.station_scoring import TileScorer, as_tile_scorer, infer_image

MAX_PIXELS_PER_IMAGE = 1 << 18


def with_odds_margin(value: float, factor: float) -> float:
    value = min(max(value, 1e-7), 1 - 1e-7)
    odds = factor * value / (1 - value)
    return odds / (1 + odds)


def image_threshold(scores: np.ndarray, config: CalibrationConfig) -> tuple[float, str]:
    stat, method = good_statistic(scores, config.target_false_reject_rate)
    threshold = min(config.max_threshold, with_odds_margin(stat, config.image_odds_margin))
    return threshold, f"{method} x{config.image_odds_margin:g} odds"


def calibrate(
    net: nn.Module | TileScorer,
    good_images: list[np.ndarray],
    config: CalibrationConfig,
    export: ExportConfig,
    *,
    data_description: str,
    seed: int = 0,
    position_scale: ColumnFactors | None = None,
    trained_on_scores: np.ndarray | None = None,
) -> tuple[Thresholds, dict]:
    """Thresholds from held-back good images, and a summary of the score distribution for run.json.

    ``position_scale``: a fixed camera's column factors (qc.position), applied as the station will.
    ``trained_on_scores``: the cross-fitted scores of good images trained on (training.good_evidence);
    the image threshold is then set from both samples, the pixel threshold still from the held-back
    maps alone."""
    if not good_images:
        raise ValueError("calibration needs at least one held-back good image")
    if isinstance(net, nn.Module):
        net.eval()
    net = as_tile_scorer(net)  # once: its device is looked up once
    rng = np.random.default_rng(seed)
    scores, pixel_samples = [], []
    for image in good_images:
        heatmap, score = infer_image(net, image, export, position_scale=position_scale)
        scores.append(score)
        flat = heatmap.ravel()
        if flat.size > MAX_PIXELS_PER_IMAGE:
            flat = rng.choice(flat, MAX_PIXELS_PER_IMAGE, replace=False)
        pixel_samples.append(flat)
    scores_np = np.asarray(scores, np.float64)
    pixels = np.concatenate(pixel_samples)
    trained_np = np.asarray([] if trained_on_scores is None else trained_on_scores, np.float64)

    image_t, image_method = image_threshold(np.concatenate([scores_np, trained_np]), config)
    if trained_np.size:
        image_method += f" over {len(scores_np)} held-back and {trained_np.size} trained-on good images" + (
            " (each scored with column factors fitted without it)" if position_scale is not None else ""
        )
    pixel_stat = float(np.quantile(pixels, config.pixel_quantile))
    pixel_t = min(config.max_threshold, max(config.pixel_floor, with_odds_margin(pixel_stat, config.odds_margin)))
    thresholds = Thresholds(
        image=image_t,
        pixel=pixel_t,
        calibration=Calibration(
            method=(
                f"image: {image_method}; pixel: q{config.pixel_quantile:g} of good pixels "
                f"x{config.odds_margin:g} odds, floor {config.pixel_floor:g}"
            ),
            target_false_reject_rate=config.target_false_reject_rate,
            data=data_description,
            n_images=len(good_images) + trained_np.size,
        ),
    )
    summary = {
        "good_scores": {
            "min": float(scores_np.min()),
            "median": float(np.median(scores_np)),
            "max": float(scores_np.max()),
        },
        "good_pixel_quantile": pixel_stat,
        # Above max_threshold the held-back good images themselves would fail: say so, loudly.
        "held_back_rejected": float(np.mean(scores_np >= image_t)),
    }
    if trained_np.size:
        summary["trained_on_scores"] = {
            "n": int(trained_np.size),
            "min": float(trained_np.min()),
            "median": float(np.median(trained_np)),
            "max": float(trained_np.max()),
            "rejected": float(np.mean(trained_np >= image_t)),
        }
    return thresholds, summary


def recall_threshold(defect_scores: np.ndarray, target_recall: float) -> float:
    """The highest threshold at which at least ``target_recall`` of the defect scores fail (score >= t)."""
    ordered = np.sort(np.asarray(defect_scores, np.float64))[::-1]
    needed = max(1, math.ceil(target_recall * len(ordered) - 1e-9))
    return float(ordered[needed - 1])


def calibrate_for_recall(
    net: nn.Module | TileScorer,
    good_images: list[np.ndarray],
    defect_images: list[np.ndarray],
    config: CalibrationConfig,
    export: ExportConfig,
    *,
    data_description: str,
    seed: int = 0,
    position_scale: ColumnFactors | None = None,
) -> tuple[Thresholds, dict]:
    """Image threshold at a target recall on held-back labelled defect images (from train/, never
    test/); the pixel threshold and the good-score summary as in ``calibrate``.

    The threshold is the score of the k-th most suspicious defect, k = ceil(target * n): the highest
    threshold that still fails that share. It is not lowered by a margin: the false-reject rate it
    costs on the held-back good images is measured and recorded instead.
    """
    if not defect_images:
        raise ValueError("recall calibration needs at least one held-back labelled defect image")
    thresholds, summary = calibrate(
        net, good_images, config, export, data_description=data_description, seed=seed, position_scale=position_scale
    )
    score = lambda image: infer_image(net, image, export, position_scale=position_scale)[1]  # noqa: E731
    defect_scores = np.asarray([score(image) for image in defect_images], np.float64)
    good_scores = np.asarray([score(image) for image in good_images], np.float64)
    image_t = min(config.max_threshold, recall_threshold(defect_scores, config.target_recall))
    frr = float(np.mean(good_scores >= image_t))
    recall = float(np.mean(defect_scores >= image_t))
    method = (
        f"image: recall >= {config.target_recall:g} on {len(defect_images)} held-back labelled defect images "
        f"(measured recall {recall:.3f}, false-reject rate {frr:.3f} on {len(good_scores)} held-back good); "
        + thresholds.calibration.method.split("; ", 1)[1]
    )
    calibrated = Thresholds(
        image=image_t,
        pixel=thresholds.pixel,
        calibration=Calibration(
            method=method, target_false_reject_rate=None, data=data_description,
            n_images=len(good_images) + len(defect_images),
        ),
    )
    summary["defect_scores"] = {
        "min": float(defect_scores.min()), "median": float(np.median(defect_scores)), "max": float(defect_scores.max()),
    }
    summary["at_threshold"] = {"recall": recall, "false_reject_rate": frr}
    summary["held_back_rejected"] = frr
    return calibrated, summary


GEOMETRY_FIELDS = ("scale", "patch_px", "min_shift_px", "max_shift_px", "sigma_px")


def zoomed_geometry(zoom: int) -> dict[str, float]:
    """The cue's default geometry (the card's) for a camera that sees repeats ``zoom`` times larger.

    The geometry is in image pixels: on the one-style photographs upscaled twice, jersey knit's
    skipped and broken stitches went from 6 of 8 caught to none with it as it is, and to 7 of 8 with
    it doubled (docs/detector-log.md, "The cue's geometry and a closer camera")."""
    fields = SelfSimilarityRecord.model_fields
    return {name: fields[name].default * zoom for name in GEOMETRY_FIELDS}


def self_similarity_record(
    good_images: list[np.ndarray], config: CalibrationConfig, *, data_description: str
) -> SelfSimilarityRecord | None:
    """The unrepeated-structure cue's record for the card (qc/self_similarity.py), or None when off.

    Every good image counts, trained on or held back: the cue learns nothing from them, so each
    scores as an unseen good image would."""
    if not config.self_similarity:
        return None
    unfitted = SelfSimilarityRecord(
        threshold=1.0, method="", data=data_description, **zoomed_geometry(config.self_similarity_zoom)
    )
    scores = [image_score(image, unfitted) for image in good_images]
    threshold, method = fitted_threshold(scores, config.self_similarity_margin, config.target_false_reject_rate)
    return unfitted.model_copy(update={"threshold": threshold, "method": method})
