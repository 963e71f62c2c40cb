"""The validation signal for TensorBoard and early stopping.

A fixed set of crops of the held-back good images (the calibration hold-out from train/good, never
test/), half of them with a synthetic anomaly pasted, drawn once with a fixed seed so every
validation scores the same crops. Scored as: image AUROC of the crop scores and average precision
of the heatmap pixels against the pasted masks; the signal is their mean (both 0..1, higher is
better). Pixel AP carries most of the information when the image AUROC saturates at 1.0, which it
does early on easy fabrics.

It is a proxy: synthetic anomalies, not real defects. That is why early stopping is off by default.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from qc.metrics import auroc, average_precision
from training.anomalies import add_anomaly
from training.config import AnomalyConfig
from training.data import random_crop, to_tensor_layout

MAX_PIXELS = 1 << 19  # pixel AP on at most this many pixels (a fixed subsample), to stay cheap


@dataclass(frozen=True)
class ValidationSet:
    images: np.ndarray  # [K, 3, S, S] float32 0..1
    masks: np.ndarray  # [K, S, S] bool
    labels: np.ndarray  # [K] bool: the crop carries an anomaly
    pixel_index: np.ndarray | None  # fixed subsample of flattened pixels, or None for all


def build_validation_set(
    good_images: list[np.ndarray], *, crops: int, crop_px: int, anomalies: AnomalyConfig, seed: int
) -> ValidationSet:
    rng = np.random.default_rng([seed, 0x5A11D])  # its own stream: training's draws are unchanged
    pictures, masks = [], []
    for i in range(crops):
        crop = random_crop(rng, good_images[i % len(good_images)], crop_px, crop_px)
        mask = np.zeros(crop.shape[:2], np.uint8)
        if i % 2 == 1:
            donor = random_crop(rng, good_images[(i + 1) % len(good_images)], crop_px, crop_px)
            crop, mask = add_anomaly(rng, crop, donor, anomalies)
        pictures.append(crop)
        masks.append(mask > 0)
    masks_np = np.stack(masks)
    n_pixels = masks_np.size
    index = np.sort(rng.choice(n_pixels, MAX_PIXELS, replace=False)) if n_pixels > MAX_PIXELS else None
    return ValidationSet(to_tensor_layout(np.stack(pictures)), masks_np, masks_np.any(axis=(1, 2)), index)


@torch.no_grad()
def score_validation(net: torch.nn.Module, vset: ValidationSet, *, batch_size: int = 8) -> dict[str, float]:
    """{"image_auroc", "pixel_ap", "signal"}; the network is left in eval mode."""
    net.eval()
    device = next(net.parameters()).device
    heats, scores = [], []
    for start in range(0, len(vset.images), batch_size):
        out = net(torch.from_numpy(vset.images[start : start + batch_size]).to(device))
        heats.append(out.heatmap[:, 0].float().cpu().numpy())
        scores.append(out.score.float().cpu().numpy())
    heat = np.concatenate(heats).ravel()
    mask = vset.masks.ravel()
    if vset.pixel_index is not None:
        heat, mask = heat[vset.pixel_index], mask[vset.pixel_index]
    result: dict[str, float] = {}
    parts = []
    if vset.labels.any() and not vset.labels.all():
        result["image_auroc"] = auroc(np.concatenate(scores), vset.labels)
        parts.append(result["image_auroc"])
    if mask.any() and not mask.all():
        result["pixel_ap"] = average_precision(heat, mask)
        parts.append(result["pixel_ap"])
    result["signal"] = float(np.mean(parts)) if parts else float("nan")
    return result


@dataclass
class EarlyStopping:
    """Keeps the best weights seen; ``should_stop`` after ``patience`` validations without gain.

    ``patience`` 0 only records the best signal (for the run record) and never stops or swaps weights.
    """

    patience: int
    min_delta: float = 1e-4
    best_signal: float = float("-inf")
    best_step: int = 0
    best_state: dict | None = field(default=None, repr=False)
    since_best: int = 0

    def update(self, signal: float, step: int, net: torch.nn.Module) -> bool:
        """Record one validation; True when it is a new best."""
        if not np.isfinite(signal):
            return False
        if signal > self.best_signal + self.min_delta:
            self.best_signal, self.best_step, self.since_best = signal, step, 0
            if self.patience > 0:
                self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
            return True
        self.since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def state(self) -> dict:
        return {
            "best_signal": self.best_signal,
            "best_step": self.best_step,
            "since_best": self.since_best,
            "best_state": self.best_state,
        }

    def restore(self, state: dict) -> None:
        self.best_signal = float(state["best_signal"])
        self.best_step = int(state["best_step"])
        self.since_best = int(state["since_best"])
        self.best_state = state["best_state"]
