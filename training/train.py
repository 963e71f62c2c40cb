"""The training loop: synthetic-anomaly batches, focal BCE + soft dice, AdamW with warmup and cosine
decay, stopping at the step count or the time budget, whichever comes first.

The learning-rate schedule follows *progress*, the larger of the step fraction and the time-budget
fraction, so a run cut short by its budget still ends on a decayed learning rate.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from training.config import OptimConfig, TrainConfig
from training.calibrate import infer_image
from training.data import AnomalyBatches, hot_spots
from training.net import DefectUNet


@dataclass(frozen=True)
class TrainResult:
    net: DefectUNet
    steps_done: int
    duration_s: float
    final_loss: float
    first_loss: float
    stopped_by: str  # "steps" or "time_budget"
    losses: list[float]  # every step's loss, for tests and plots


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor, optim: OptimConfig) -> torch.Tensor:
    """Focal BCE per pixel plus a soft dice over the whole batch.

    Dice is summed over the batch rather than per image: good crops have empty masks, and per-image
    dice on an empty mask is 0/0.
    """
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    prob = torch.sigmoid(logits)
    p_true = prob * masks + (1 - prob) * (1 - masks)
    focal = ((1 - p_true) ** optim.focal_gamma * bce).mean()
    intersection = (prob * masks).sum()
    dice = 1 - (2 * intersection + 1) / (prob.sum() + masks.sum() + 1)
    return focal + optim.dice_weight * dice


def learning_rate(progress: float, optim: OptimConfig) -> float:
    if progress < optim.warmup_fraction:
        return optim.lr * max(progress / optim.warmup_fraction, 0.01)
    span = max(1e-9, 1 - optim.warmup_fraction)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - optim.warmup_fraction) / span)))
    return optim.lr * (0.02 + 0.98 * cosine)


HARD_SPOTS_PER_IMAGE = 8
HARD_MIN_HEAT = 0.05


def mine_hard_negatives(net: DefectUNet, batches: AnomalyBatches, config: TrainConfig) -> None:
    """Score the good training images as the station would and remember where the network fires."""
    net.eval()
    spots = []
    for index, image in enumerate(batches.images):
        heatmap, _ = infer_image(net, image, config.export)
        spots += [(index, y, x) for y, x in hot_spots(heatmap, count=HARD_SPOTS_PER_IMAGE, min_heat=HARD_MIN_HEAT)]
    batches.hard_spots = spots


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def train_network(
    config: TrainConfig,
    batches: AnomalyBatches,
    *,
    device: torch.device | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> TrainResult:
    optim = config.optim
    device = device or pick_device()
    seed_everything(config.seed)
    if device.type == "cpu":
        torch.set_num_threads(optim.threads)
    net = DefectUNet(config.net).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)

    net.train()
    started = time.monotonic()
    last_log = started
    smoothed = first_loss = float("nan")
    stopped_by = "steps"
    step = 0
    losses: list[float] = []
    last_mined = 0.0  # the first search waits until the network has learnt something
    while step < optim.steps:
        elapsed = time.monotonic() - started
        if elapsed >= optim.time_budget_s:
            stopped_by = "time_budget"
            break
        progress = max(step / optim.steps, elapsed / optim.time_budget_s)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(progress, optim)

        if config.data.hard_negative_fraction > 0 and elapsed - last_mined >= config.data.hard_negative_every_s:
            last_mined = elapsed
            mine_hard_negatives(net, batches, config)
            net.train()
        images_np, masks_np = batches.next_batch(optim.batch_size)
        images = torch.from_numpy(images_np).to(device)
        masks = torch.from_numpy(masks_np).to(device)
        if use_cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_cuda):
            logits = net.logits(images)
        loss = segmentation_loss(logits, masks, optim)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1

        value = float(loss.detach())
        losses.append(value)
        if step == 1:
            first_loss = smoothed = value
        smoothed = 0.95 * smoothed + 0.05 * value
        now = time.monotonic()
        if now - last_log >= optim.log_every_s or step == optim.steps:
            last_log = now
            done = max(step / optim.steps, (now - started) / optim.time_budget_s)
            eta = (now - started) * (1 - done) / max(done, 1e-9)
            log(
                f"step {step}/{optim.steps} ({100 * done:.0f}%)  loss {smoothed:.4f}  "
                f"lr {optimizer.param_groups[0]['lr']:.2e}  elapsed {format_duration(now - started)}  "
                f"ETA {format_duration(eta)}"
            )
    duration = time.monotonic() - started
    if stopped_by == "time_budget":
        log(f"time budget of {optim.time_budget_s:.0f} s reached after {step} steps")
    net = net.to(memory_format=torch.contiguous_format).eval()
    return TrainResult(net, step, duration, smoothed, first_loss, stopped_by, losses)
