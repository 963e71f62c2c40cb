"""The training loop: synthetic-anomaly batches, focal BCE + soft dice, AdamW with warmup and cosine
decay, stopping at the step count, the time budget or early stopping, whichever comes first.

The learning-rate schedule follows *progress*, the larger of the step fraction and the time-budget
fraction, so a run cut short by its budget still ends on a decayed learning rate. With
``optim.schedule: steps`` there is no budget and everything follows the step count: the same config
and seed then train the same network on a fast or a loaded machine, so two configurations can be
compared on the same networks' draws (a time-paced run's step count, and with it the network,
changes with the machine's load: the same seeds of AITEX 00 scored 0.893/0.857/0.839 image AUROC in
one session and 0.821/0.821/0.750 in the next).

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
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from training import distributed
from training.averaging import WeightAverage
from training.station_scoring import infer_image
from training.checkpoint import FORMAT, capture_rng, restore_rng, save_atomic
from training.config import OptimConfig, TrainConfig
from training.data import AnomalyBatches
from training.hard_negatives import mine_hard_negatives
from training.init_weights import load_init_weights
from training.distributed import Distributed
from training.export import CHECKPOINT_FILE
from training.net import DefectUNet, single_pass
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


def schedule_progress(step: int, elapsed: float, optim: OptimConfig) -> float:
    """How far the run is, 0..1: the larger of the step and time-budget fractions, or the step
    fraction alone with optim.schedule steps."""
    if optim.schedule == "steps":
        return step / optim.steps
    return max(step / optim.steps, elapsed / optim.time_budget_s)


def learning_rate(progress: float, optim: OptimConfig) -> float:
    if progress < optim.warmup_fraction:
        return optim.lr * max(progress / optim.warmup_fraction, 0.01)
    span = max(1e-9, 1 - optim.warmup_fraction)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - optim.warmup_fraction) / span)))
    return optim.lr * (0.02 + 0.98 * cosine)


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
        done = schedule_progress(step, elapsed, optim)
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


@dataclass
class _LoopState:
    """What the loop changes as it runs; a checkpoint keeps what a resume needs of it."""

    step: int = 0
    spent_before_s: float = 0.0  # training time before a resume: it counts toward every schedule
    losses: list[float] = field(default_factory=list)
    validations: list[dict[str, float]] = field(default_factory=list)
    first_loss: float = float("nan")
    smoothed_loss: float = float("nan")
    # Readings of the schedule's clock: training seconds, or steps with optim.schedule steps (the
    # names, kept in checkpoints, predate the step schedule). 0 at the start: the first search
    # waits until the network learnt.
    last_mined_s: float = 0.0
    last_checkpoint_s: float = 0.0  # always in seconds: a checkpoint changes no number of the run
    last_validated_s: float = 0.0
    resumed_from: int = 0
    started: float = 0.0  # time.monotonic() when this process's loop began

    def elapsed(self) -> float:
        """Training seconds so far, those before a resume included."""
        return self.spent_before_s + time.monotonic() - self.started

    def record_loss(self, value: float) -> None:
        self.losses.append(value)
        if self.step == 1:
            self.first_loss = self.smoothed_loss = value
        self.smoothed_loss = 0.95 * self.smoothed_loss + 0.05 * value


@dataclass(frozen=True)
class _Learner:
    """The network and what learns along with it; a checkpoint holds all four."""

    net: DefectUNet
    optimizer: torch.optim.Optimizer
    stopper: EarlyStopping
    average: WeightAverage | None  # the moving average of the weights, when optim.ema_decay > 0


def _build_learner(config: TrainConfig, device: torch.device, *, pretrained: bool) -> _Learner:
    optim = config.optim
    # Channels-last on every device: on the 2-core CPU a from-scratch step's forward and backward
    # took 60 ms instead of 76 (batch 16, 128 px crops), as on a GPU.
    net = build_network(config.net, pretrained=pretrained)
    if pretrained and optim.init_weights is not None:  # a resume brings its own weights
        load_init_weights(net, optim.init_weights)
    net = net.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    stopper = EarlyStopping(optim.patience)
    average = WeightAverage(net, optim.ema_decay) if optim.ema_decay > 0 else None
    return _Learner(net, optimizer, stopper, average)


def _restore(
    resume: dict[str, Any], learner: _Learner, batches: AnomalyBatches, ctx: Distributed, log: Callable[[str], None]
) -> _LoopState:
    """Bring back a checkpoint's weights, optimiser, loop state, spots and random streams."""
    learner.net.load_state_dict(resume["state_dict"])
    learner.optimizer.load_state_dict(resume["optimizer"])
    step, spent_before = int(resume["step"]), float(resume["elapsed_s"])
    state = _LoopState(
        step=step,
        spent_before_s=spent_before,
        losses=list(resume["losses"]),
        validations=list(resume["validations"]),
        first_loss=float(resume["first_loss"]),
        smoothed_loss=float(resume["smoothed_loss"]),
        last_mined_s=float(resume["last_mined_s"]),
        last_checkpoint_s=spent_before,
        last_validated_s=float(resume["last_validated_s"]),
        resumed_from=step,
    )
    batches.hard_spots = [tuple(int(v) for v in s) for s in resume["hard_spots"]]
    batches.hard_search_from = int(resume.get("hard_search_from", 0)) % max(1, len(batches.images))
    batches.weak_spots = {int(k): (int(v[0]), int(v[1])) for k, v in resume["weak_spots"].items()}
    rng_states = resume["rng"]
    if len(rng_states) == ctx.world_size:
        restore_rng(rng_states[ctx.rank], batches.rng)
    elif ctx.is_main:
        log(f"resuming with {ctx.world_size} process(es) instead of {len(rng_states)}: crops will differ")
    learner.stopper.restore(resume["early_stopping"])
    if learner.average is not None and resume.get("weight_average") is not None:
        learner.average.restore(resume["weight_average"])
    return state


class _Due(NamedTuple):
    """What a step does besides learning, decided on rank 0's clock."""

    stop_budget: bool
    stop_early: bool
    mine: bool
    checkpoint: bool


@dataclass
class _Training:
    """One call of train_network: what it trains, what it reads and writes, and where it stands."""

    config: TrainConfig
    batches: AnomalyBatches
    learner: _Learner
    state: _LoopState
    model: torch.nn.Module  # the network as the optimisation step calls it: DDP-wrapped under torchrun
    ctx: Distributed
    device: torch.device
    run_dir: Path | None
    validation: ValidationSet | None
    writer: Any  # a TensorBoard SummaryWriter, or None
    bar: _Progress
    say: Callable[[str], None]  # rank 0's log; silent on the other ranks
    has_weak: bool = field(init=False)  # image-label-only defects, whose hottest spots mine() finds

    def __post_init__(self) -> None:
        self.has_weak = any(d.mask is None for d in self.batches.defects)

    def run_loop(self) -> str:
        """The schedule of every step: validate? stop? checkpoint? mine? learn. Returns what stopped it."""
        state = self.state
        self.model.train()
        state.started = time.monotonic()
        try:
            while state.step < self.config.optim.steps:
                elapsed = state.elapsed()
                if self.validation_due(self.clock(elapsed)):
                    self.validate(elapsed)
                    # Count the interval from the end: on a busy CPU a validation can take longer than
                    # the interval, and counting from its start would then validate every step.
                    state.last_validated_s = self.clock(state.elapsed())
                due = self.decide(elapsed)
                if due.checkpoint:
                    state.last_checkpoint_s = elapsed
                    self.save_checkpoint(elapsed)
                if due.stop_budget or due.stop_early:
                    return "time_budget" if due.stop_budget else "early_stopping"
                self.set_learning_rate(elapsed)
                if due.mine:
                    self.mine()
                self.optimisation_step()
            return "steps"
        finally:
            self.bar.close()

    @property
    def by_steps(self) -> bool:
        return self.config.optim.schedule == "steps"

    def clock(self, elapsed: float) -> float:
        """What validations and searches are scheduled by: training seconds, or the step count with
        optim.schedule steps (then the same seed makes the same network however fast the machine)."""
        return float(self.state.step) if self.by_steps else elapsed

    def validation_due(self, now: float) -> bool:
        state = self.state
        return (
            self.ctx.is_main
            and self.validation is not None
            and state.step > state.resumed_from
            and now - state.last_validated_s >= self.validate_every
        )

    @property
    def validate_every(self) -> float:
        optim = self.config.optim
        return optim.validate_every_steps if self.by_steps else optim.validate_every_s

    @property
    def mine_every(self) -> float:
        data = self.config.data
        return data.hard_negative_every_steps if self.by_steps else data.hard_negative_every_s

    def validate(self, elapsed: float) -> None:
        net, average, state = self.learner.net, self.learner.average, self.state
        # The weights that would ship: the average when there is one.
        with average.swapped_in(net) if average is not None else contextlib.nullcontext():
            with single_pass(net):
                metrics = score_validation(net, self.validation)
            improved = self.learner.stopper.update(metrics["signal"], state.step, net)
        self.model.train()
        state.validations.append({"step": state.step, "elapsed_s": round(elapsed, 2), **metrics})
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(f"validation/{key}", value, state.step)
        details = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.say(f"validation at step {state.step}: {details}{'  (best so far)' if improved else ''}")

    def decide(self, elapsed: float) -> _Due:
        """Rank 0's clock decides for every rank (see training/distributed.py)."""
        state, optim, data = self.state, self.config.optim, self.config.data
        flags = distributed.broadcast_flags(
            self.ctx,
            [
                int(not self.by_steps and elapsed >= optim.time_budget_s),
                int(self.learner.stopper.should_stop),
                int((data.hard_negative_fraction > 0 or self.has_weak)
                    and self.clock(elapsed) - state.last_mined_s >= self.mine_every),
                int(self.run_dir is not None and state.step > state.resumed_from
                    and elapsed - state.last_checkpoint_s >= optim.checkpoint_every_s),
            ],
            self.device,
        )
        return _Due(*(bool(flag) for flag in flags))

    def save_checkpoint(self, elapsed: float) -> None:
        rng_states = distributed.gather_objects(self.ctx, capture_rng(self.batches.rng))  # a collective: every rank
        if self.ctx.is_main and self.run_dir is not None:
            save_atomic(self.checkpoint_payload(elapsed, rng_states), Path(self.run_dir) / CHECKPOINT_NAME)

    def checkpoint_payload(self, elapsed: float, rng_states: list[object]) -> dict[str, Any]:
        """What _restore reads back: the learner, the loop state, the spots and every rank's random streams."""
        learner, state = self.learner, self.state
        return {
            "format": FORMAT,
            "finished": False,
            "config": self.config.model_dump(mode="json"),
            "state_dict": learner.net.state_dict(),
            "optimizer": learner.optimizer.state_dict(),
            "step": state.step,
            "elapsed_s": elapsed,
            "last_mined_s": state.last_mined_s,
            "last_validated_s": state.last_validated_s,
            "rng": rng_states,
            "hard_spots": [list(s) for s in self.batches.hard_spots],
            "hard_search_from": self.batches.hard_search_from,
            "weak_spots": {k: list(v) for k, v in self.batches.weak_spots.items()},
            "early_stopping": learner.stopper.state(),
            "weight_average": learner.average.state() if learner.average is not None else None,
            "losses": state.losses,
            "validations": state.validations,
            "first_loss": state.first_loss,
            "smoothed_loss": state.smoothed_loss,
        }

    def set_learning_rate(self, elapsed: float) -> None:
        optim = self.config.optim
        progress = schedule_progress(self.state.step, elapsed, optim)
        for group in self.learner.optimizer.param_groups:
            group["lr"] = learning_rate(progress, optim)

    def mine(self) -> None:
        """Search, with the network as it is now, where its crops should go: hard negatives, weak positives."""
        with single_pass(self.learner.net):
            if self.config.data.hard_negative_fraction > 0:
                mine_hard_negatives(self.learner.net, self.batches, self.config)
            if self.has_weak:
                find_weak_spots(self.learner.net, self.batches, self.config)
        # From the end, as for validation: a search that took 30 s on a loaded 2-core
        # machine, counted from its start, ran again at every step and training stalled.
        self.state.last_mined_s = self.clock(self.state.elapsed())
        self.model.train()

    def optimisation_step(self) -> None:
        """One batch forward and backward; the weights and their average updated; the loss recorded."""
        learner, optim, device = self.learner, self.config.optim, self.device
        use_cuda = device.type == "cuda"
        images_np, masks_np, weak_np = self.batches.next_batch_with_weak(optim.batch_size)
        images = torch.from_numpy(images_np).to(device)
        masks = torch.from_numpy(masks_np).to(device)
        weak = torch.from_numpy(weak_np).to(device)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_cuda):
            logits = self.model(images)
        loss = training_loss(logits, masks, weak, learner.net, optim)
        learner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learner.optimizer.step()
        if learner.average is not None:
            learner.average.update(learner.net)
        self.state.step += 1
        self.report_loss(float(loss.detach()))

    def report_loss(self, value: float) -> None:
        state = self.state
        state.record_loss(value)
        lr = self.learner.optimizer.param_groups[0]["lr"]
        if self.writer is not None:
            self.writer.add_scalar("train/loss", value, state.step)
            self.writer.add_scalar("train/lr", lr, state.step)
        if self.ctx.is_main:
            self.bar.update(state.step, state.elapsed(), state.smoothed_loss, lr)

    def finish(self, stopped_by: str) -> TrainResult:
        """The last validation, the averaged (or best) weights in the network, the result."""
        state, learner, optim = self.state, self.learner, self.config.optim
        elapsed = state.elapsed()
        if stopped_by == "time_budget":
            self.say(f"time budget of {optim.time_budget_s:.0f} s reached after {state.step} steps")
        if self.ctx.is_main and self.validation is not None and (
            not state.validations or state.validations[-1]["step"] != state.step
        ):
            self.validate(elapsed)
        if learner.average is not None:
            learner.average.copy_to(learner.net)
        best_step = self.keep_best_weights()
        if stopped_by == "early_stopping":
            self.say(
                f"early stopping: no gain for {optim.patience} validations after step {learner.stopper.best_step}"
            )
        if self.writer is not None:
            self.writer.close()
        net = learner.net.to(memory_format=torch.contiguous_format).eval()
        return TrainResult(
            net, state.step, elapsed, state.smoothed_loss, state.first_loss, stopped_by, state.losses,
            state.validations, best_step, state.resumed_from,
        )

    def keep_best_weights(self) -> int | None:
        """Early stopping's best weights when they are not the last ones: their step; else None."""
        stopper = self.learner.stopper
        if not (self.ctx.is_main and stopper.patience > 0 and stopper.best_state is not None
                and stopper.best_step != self.state.step):
            return None
        self.learner.net.load_state_dict(stopper.best_state)
        self.say(f"kept the best weights: step {stopper.best_step}, validation signal {stopper.best_signal:.4f}")
        return stopper.best_step


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
    go; None writes neither. ``validation``: crops scored every ``optim.validate_every_s`` (every
    ``optim.validate_every_steps`` with ``optim.schedule`` steps; rank 0).
    ``resume``: a payload from training.checkpoint.load_for_resume to continue from.
    ``progress_bar``: None picks tqdm when stderr is a terminal.
    """
    optim = config.optim
    device = device or pick_device()
    seed_everything(config.seed)  # the same initial weights on every rank
    if device.type == "cpu":
        torch.set_num_threads(optim.threads)
    learner = _build_learner(config, device, pretrained=resume is None)
    state = _LoopState()
    if resume is not None:
        state = _restore(resume, learner, batches, ctx, log)
        if ctx.is_main:
            spent = format_duration(state.spent_before_s)
            log(f"resumed at step {state.step}/{optim.steps} after {spent} of training")
    model = distributed.wrap(_Logits(learner.net), ctx, device)
    writer = _tensorboard(run_dir, config, ctx, purge_step=state.step + 1 if resume is not None else None)
    show_bar = ctx.is_main and (sys.stderr.isatty() if progress_bar is None else progress_bar)
    bar = _Progress(optim, state.step, show_bar, log, state.spent_before_s)
    say = bar.log if ctx.is_main else (lambda line: None)
    training = _Training(config, batches, learner, state, model, ctx, device, run_dir, validation, writer, bar, say)
    return training.finish(training.run_loop())
