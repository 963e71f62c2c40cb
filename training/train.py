"""The training loop: synthetic-anomaly batches, focal BCE + soft dice, AdamW with warmup and cosine
decay, stopping at the step count, the time budget or early stopping, whichever comes first.

The learning-rate schedule follows *progress*, the larger of the step fraction and the time-budget
fraction, so a run cut short by its budget still ends on a decayed learning rate.

Around the optimisation step: a moving average of the weights, which validation scores and which
ships (training/averaging.py), resumable checkpoints (training/checkpoint.py), TensorBoard scalars,
a progress bar on a terminal (log lines otherwise), a validation signal with early stopping
(training/validation.py), and DDP over several processes (training/distributed.py). Time spent
before a resume counts toward the time budget and every time-based schedule.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training import distributed
from training.averaging import WeightAverage
from training.calibrate import infer_image
from training.checkpoint import FORMAT, capture_rng, restore_rng, save_atomic
from training.config import OptimConfig, TrainConfig
from training.data import AnomalyBatches, hot_spots
from training.distributed import Distributed
from training.export import CHECKPOINT_FILE
from training.net import DefectUNet
from training.networks import build_network
from training.validation import EarlyStopping, ValidationSet, score_validation

CHECKPOINT_NAME = CHECKPOINT_FILE  # one file: resumable while training, the final weights after
TENSORBOARD_DIR = "tensorboard"


@dataclass(frozen=True)
class TrainResult:
    net: DefectUNet
    steps_done: int
    duration_s: float
    final_loss: float
    first_loss: float
    stopped_by: str  # "steps", "time_budget" or "early_stopping"
    losses: list[float]  # every step's loss, for tests and plots
    validations: list[dict[str, float]] = field(default_factory=list)  # {"step", "signal", ...} each
    best_step: int | None = None  # step of the weights returned when early stopping kept the best
    resumed_from_step: int = 0


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


def training_loss(
    logits: torch.Tensor, masks: torch.Tensor, weak: torch.Tensor, net: DefectUNet, optim: OptimConfig
) -> torch.Tensor:
    """The pixel loss on crops with a known mask; on weak positives (image label only) none, only a
    BCE pushing their image score toward 1. Without weak positives: exactly segmentation_loss."""
    if not bool(weak.any()):
        return segmentation_loss(logits, masks, optim)
    strong = ~weak
    loss = segmentation_loss(logits[strong], masks[strong], optim) if bool(strong.any()) else logits.sum() * 0
    scores = net.score(torch.sigmoid(logits[weak].float())).clamp(1e-6, 1 - 1e-6)
    return loss + optim.weak_weight * F.binary_cross_entropy(scores, torch.ones_like(scores))


def find_weak_spots(net: DefectUNet, batches: AnomalyBatches, config: TrainConfig) -> None:
    """The network's hottest spot on each image-label-only defect: where its weak positive crop goes."""
    net.eval()
    for index, defect in enumerate(batches.defects):
        if defect.mask is None:
            heatmap, _ = infer_image(net, defect.image, config.export)
            y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
            batches.weak_spots[index] = (int(y), int(x))


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


class _Logits(torch.nn.Module):
    """DefectUNet.logits as a forward(): DDP synchronises gradients only through forward calls."""

    def __init__(self, net: DefectUNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.logits(images)


class _Progress:
    """tqdm on a terminal; otherwise the periodic log lines (which logs and tests read)."""

    def __init__(
        self, optim: OptimConfig, initial: int, enabled: bool, log: Callable[[str], None], spent_s: float = 0.0
    ) -> None:
        self.optim, self.enabled, self._log = optim, enabled, log
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=optim.steps, initial=initial, file=sys.stderr, unit="step", dynamic_ncols=True)
        self.last_line = spent_s

    def log(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            self._log(line)

    def update(self, step: int, elapsed: float, smoothed: float, lr: float) -> None:
        optim = self.optim
        done = max(step / optim.steps, elapsed / optim.time_budget_s)
        eta = elapsed * (1 - done) / max(done, 1e-9)
        if self.bar is not None:
            # tqdm redraws at most every mininterval (0.1 s), so a fast loop does not flood the terminal
            self.bar.set_postfix_str(f"loss {smoothed:.4f} lr {lr:.2e} ETA {format_duration(eta)}", refresh=False)
            self.bar.update(step - self.bar.n)
            return
        if elapsed - self.last_line >= optim.log_every_s or step == optim.steps:
            self.last_line = elapsed
            self._log(
                f"step {step}/{optim.steps} ({100 * done:.0f}%)  loss {smoothed:.4f}  "
                f"lr {lr:.2e}  elapsed {format_duration(elapsed)}  ETA {format_duration(eta)}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _tensorboard(run_dir: Path | None, config: TrainConfig, ctx: Distributed, purge_step: int | None):
    if run_dir is None or not config.optim.tensorboard or not ctx.is_main:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge_step)


def train_network(
    config: TrainConfig,
    batches: AnomalyBatches,
    *,
    device: torch.device | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    run_dir: Path | None = None,
    validation: ValidationSet | None = None,
    resume: dict[str, Any] | None = None,
    ctx: Distributed = Distributed(),
    progress_bar: bool | None = None,
) -> TrainResult:
    """Train a DefectUNet on ``batches``.

    ``run_dir``: where checkpoints (rank 0, every ``optim.checkpoint_every_s``) and TensorBoard logs
    go; None writes neither. ``validation``: crops scored every ``optim.validate_every_s`` (rank 0).
    ``resume``: a payload from training.checkpoint.load_for_resume to continue from.
    ``progress_bar``: None picks tqdm when stderr is a terminal.
    """
    optim = config.optim
    device = device or pick_device()
    seed_everything(config.seed)  # the same initial weights on every rank
    if device.type == "cpu":
        torch.set_num_threads(optim.threads)
    net = build_network(config.net, pretrained=resume is None).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    stopper = EarlyStopping(optim.patience)
    average = WeightAverage(net, optim.ema_decay) if optim.ema_decay > 0 else None

    step, spent_before = 0, 0.0
    losses: list[float] = []
    validations: list[dict[str, float]] = []
    smoothed = first_loss = float("nan")
    last_mined = last_checkpoint = last_validated = 0.0  # the first search waits until the network learnt
    if resume is not None:
        net.load_state_dict(resume["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        step, spent_before = int(resume["step"]), float(resume["elapsed_s"])
        last_mined, last_validated = float(resume["last_mined_s"]), float(resume["last_validated_s"])
        last_checkpoint = spent_before
        losses, validations = list(resume["losses"]), list(resume["validations"])
        first_loss, smoothed = float(resume["first_loss"]), float(resume["smoothed_loss"])
        batches.hard_spots = [tuple(int(v) for v in s) for s in resume["hard_spots"]]
        batches.weak_spots = {int(k): (int(v[0]), int(v[1])) for k, v in resume["weak_spots"].items()}
        rng_states = resume["rng"]
        if len(rng_states) == ctx.world_size:
            restore_rng(rng_states[ctx.rank], batches.rng)
        elif ctx.is_main:
            log(f"resuming with {ctx.world_size} process(es) instead of {len(rng_states)}: crops will differ")
        stopper.restore(resume["early_stopping"])
        if average is not None and resume.get("weight_average") is not None:
            average.restore(resume["weight_average"])
        if ctx.is_main:
            log(f"resumed at step {step}/{optim.steps} after {format_duration(spent_before)} of training")
    resumed_from = step
    model = distributed.wrap(_Logits(net), ctx, device)
    writer = _tensorboard(run_dir, config, ctx, purge_step=step + 1 if resume is not None else None)
    bar = _Progress(
        optim, step, ctx.is_main and (sys.stderr.isatty() if progress_bar is None else progress_bar), log, spent_before
    )
    say = bar.log if ctx.is_main else (lambda line: None)
    has_weak = any(d.mask is None for d in batches.defects)

    def save_checkpoint(elapsed: float) -> None:
        states = distributed.gather_objects(ctx, capture_rng(batches.rng))  # a collective: every rank
        if not ctx.is_main or run_dir is None:
            return
        payload = {
            "format": FORMAT,
            "finished": False,
            "config": config.model_dump(mode="json"),
            "state_dict": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "elapsed_s": elapsed,
            "last_mined_s": last_mined,
            "last_validated_s": last_validated,
            "rng": states,
            "hard_spots": [list(s) for s in batches.hard_spots],
            "weak_spots": {k: list(v) for k, v in batches.weak_spots.items()},
            "early_stopping": stopper.state(),
            "weight_average": average.state() if average is not None else None,
            "losses": losses,
            "validations": validations,
            "first_loss": first_loss,
            "smoothed_loss": smoothed,
        }
        save_atomic(payload, Path(run_dir) / CHECKPOINT_NAME)

    def validate(elapsed: float) -> None:
        # The weights that would ship: the average when there is one.
        with average.swapped_in(net) if average is not None else contextlib.nullcontext():
            metrics = score_validation(net, validation)
            improved = stopper.update(metrics["signal"], step, net)
        model.train()
        validations.append({"step": step, "elapsed_s": round(elapsed, 2), **metrics})
        if writer is not None:
            for key, value in metrics.items():
                writer.add_scalar(f"validation/{key}", value, step)
        details = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        say(f"validation at step {step}: {details}{'  (best so far)' if improved else ''}")

    model.train()
    started = time.monotonic()
    stopped_by = "steps"
    try:
        while step < optim.steps:
            elapsed = spent_before + time.monotonic() - started
            if ctx.is_main and validation is not None and step > resumed_from and (
                elapsed - last_validated >= optim.validate_every_s
            ):
                validate(elapsed)
                # Count the interval from the end: on a busy CPU a validation can take longer than
                # the interval, and counting from its start would then validate every step.
                last_validated = spent_before + time.monotonic() - started
            # Rank 0's clock decides for every rank (see training/distributed.py).
            stop_budget, stop_early, mine, checkpoint = distributed.broadcast_flags(
                ctx,
                [
                    int(elapsed >= optim.time_budget_s),
                    int(stopper.should_stop),
                    int((config.data.hard_negative_fraction > 0 or has_weak)
                        and elapsed - last_mined >= config.data.hard_negative_every_s),
                    int(run_dir is not None and step > resumed_from
                        and elapsed - last_checkpoint >= optim.checkpoint_every_s),
                ],
                device,
            )
            if checkpoint:
                last_checkpoint = elapsed
                save_checkpoint(elapsed)
            if stop_budget or stop_early:
                stopped_by = "time_budget" if stop_budget else "early_stopping"
                break
            progress = max(step / optim.steps, elapsed / optim.time_budget_s)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(progress, optim)

            if mine:
                if config.data.hard_negative_fraction > 0:
                    mine_hard_negatives(net, batches, config)
                if has_weak:
                    find_weak_spots(net, batches, config)
                # From the end, as for validation: a search that took 30 s on a loaded 2-core
                # machine, counted from its start, ran again at every step and training stalled.
                last_mined = spent_before + time.monotonic() - started
                model.train()
            images_np, masks_np, weak_np = batches.next_batch_with_weak(optim.batch_size)
            images = torch.from_numpy(images_np).to(device)
            masks = torch.from_numpy(masks_np).to(device)
            weak = torch.from_numpy(weak_np).to(device)
            if use_cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_cuda):
                logits = model(images)
            loss = training_loss(logits, masks, weak, net, optim)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(net)
            step += 1

            value = float(loss.detach())
            losses.append(value)
            if step == 1:
                first_loss = smoothed = value
            smoothed = 0.95 * smoothed + 0.05 * value
            lr = optimizer.param_groups[0]["lr"]
            if writer is not None:
                writer.add_scalar("train/loss", value, step)
                writer.add_scalar("train/lr", lr, step)
            if ctx.is_main:
                bar.update(step, spent_before + time.monotonic() - started, smoothed, lr)
    finally:
        bar.close()
    elapsed = spent_before + time.monotonic() - started
    if stopped_by == "time_budget":
        say(f"time budget of {optim.time_budget_s:.0f} s reached after {step} steps")
    best_step = None
    if ctx.is_main and validation is not None and (not validations or validations[-1]["step"] != step):
        validate(elapsed)
    if average is not None:
        average.copy_to(net)
    if ctx.is_main and stopper.patience > 0 and stopper.best_state is not None and stopper.best_step != step:
        net.load_state_dict(stopper.best_state)
        best_step = stopper.best_step
        say(f"kept the best weights: step {best_step}, validation signal {stopper.best_signal:.4f}")
    if stopped_by == "early_stopping":
        say(f"early stopping: no gain for {optim.patience} validations after step {stopper.best_step}")
    if writer is not None:
        writer.close()
    net = net.to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        net, step, elapsed, smoothed, first_loss, stopped_by, losses, validations, best_step, resumed_from
    )
