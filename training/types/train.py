"""Training the type network on labelled regions, and choosing its min_confidence.

Batches are balanced over types (a type, then one of its regions), so a rare type the operators
reviewed a handful of times is learnt as well as a common one. A share of each type's images is
held back: its regions measure the accuracy the card records and set min_confidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from qc.defect_types import GEOMETRY, NOT_A_DEFECT
from training.types.augment import plain_crops, training_batch
from training.types.config import TypesConfig
from training.types.network import TypeNet
from training.types.regions import LabelledRegion, check_types


@dataclass
class TypesResult:
    net: TypeNet
    types: list[str]
    min_confidence: float
    held_out_accuracy: float
    held_out_regions: int
    confident_share: float  # of held-back regions, the share labelled (not left "defect")
    parity_crops: np.ndarray  # a few held-back crops for export's torch/onnxruntime check
    parity_geometry: np.ndarray  # and their geometry rows
    duration_s: float
    regions_per_type: dict[str, int]


def split_held_back(
    regions: list[LabelledRegion], fraction: float, rng: np.random.Generator
) -> tuple[list[LabelledRegion], list[LabelledRegion]]:
    """Per type, a share of its images (never part of one image) is held back; a type with a
    single image trains on it and holds nothing back."""
    train, held = [], []
    for kind in sorted({r.type for r in regions}):
        groups = sorted({r.group for r in regions if r.type == kind})
        n_held = int(round(fraction * len(groups))) if len(groups) > 1 else 0
        held_groups = set(rng.permutation(groups)[:n_held].tolist())
        for r in regions:
            if r.type == kind:
                (held if r.group in held_groups else train).append(r)
    return train, held


def choose_min_confidence(confidence: np.ndarray, correct: np.ndarray, target: float, floor: float) -> float:
    """The lowest threshold at which the held-back regions labelled (top probability at or above it)
    are at least ``target`` correct; never below ``floor``. Where no threshold reaches the target,
    the highest confidence seen plus a hair: nothing is labelled rather than labelled wrongly."""
    for hundredths in range(int(np.ceil(floor * 100)), 100):  # whole hundredths: what is recorded is what was tested
        threshold = hundredths / 100
        accepted = confidence >= threshold
        if accepted.any() and correct[accepted].mean() >= target:
            return threshold
    return float(min(1.0, confidence.max(initial=floor) + 1e-3))


def as_input(net: TypeNet, geometry: np.ndarray) -> torch.Tensor | None:
    """The geometry rows as the net's second input; None for a net that reads the crops alone."""
    return torch.from_numpy(np.ascontiguousarray(geometry)) if net.n_geometry else None


def predict(net: TypeNet, crops: np.ndarray, geometry: np.ndarray, batch: int = 256) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            part = slice(start, start + batch)
            out.append(torch.softmax(net(torch.from_numpy(crops[part]), as_input(net, geometry[part])), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(net.classifier.weight)), np.float32)


def fit(net: TypeNet, regions: list[LabelledRegion], types: list[str], config: TypesConfig, rng: np.random.Generator) -> None:
    """Type-balanced batches of augmented crops, AdamW with a cosine schedule."""
    index = {kind: i for i, kind in enumerate(types)}
    by_type = [[r for r in regions if r.type == kind] for kind in types]
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=config.steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    net.train()
    for _ in range(config.steps):
        chosen = rng.integers(len(types), size=config.batch_size)
        batch = [by_type[t][rng.integers(len(by_type[t]))] for t in chosen]
        crops, geometry = training_batch(rng, batch, config.crop_px)
        labels = torch.tensor([index[r.type] for r in batch])
        loss = loss_fn(net(torch.from_numpy(crops), as_input(net, geometry)), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    net.eval()


def train_types(regions: list[LabelledRegion], config: TypesConfig) -> TypesResult:
    started = time.perf_counter()
    types = check_types(regions)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    train, held = split_held_back(regions, config.held_back_fraction, rng)
    net = TypeNet(len(types), config.width, len(GEOMETRY) if config.geometry else 0)
    fit(net, train, types, config, rng)
    index = {kind: i for i, kind in enumerate(types)}
    crops, geometry = plain_crops(held, config.crop_px)
    probabilities = predict(net, crops, geometry)
    truth = np.array([index[r.type] for r in held], int)
    top = probabilities.argmax(axis=1) if len(held) else np.zeros(0, int)
    correct = top == truth
    # What the station would label: a top type that is a defect's (NOT_A_DEFECT stays "defect"),
    # confident enough. A false alarm labelled as a defect type counts as a wrong label.
    confidence = np.where(top != index.get(NOT_A_DEFECT, -1), probabilities.max(axis=1), 0.0) if len(held) else np.zeros(0)
    min_confidence = choose_min_confidence(confidence, correct, config.target_precision, config.min_confidence_floor)
    parity_crops, parity_geometry = (crops[:8], geometry[:8]) if len(crops) else plain_crops(train[:8], config.crop_px)
    return TypesResult(
        net=net,
        types=types,
        min_confidence=min_confidence,
        held_out_accuracy=float(correct.mean()) if len(held) else 0.0,
        held_out_regions=len(held),
        confident_share=float((confidence >= min_confidence).mean()) if len(held) else 0.0,
        parity_crops=np.ascontiguousarray(parity_crops),
        parity_geometry=np.ascontiguousarray(parity_geometry),
        duration_s=time.perf_counter() - started,
        regions_per_type={kind: sum(r.type == kind for r in regions) for kind in types},
    )
