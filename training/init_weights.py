"""Starting a run from another run's weights (optim.init_weights) instead of random ones.

Why: a network onboarded on one fabric in 255 s from random weights is a different network from
seed to seed. Starting it from a network that has already learnt, on many synthetic fabrics, what a
pasted anomaly looks like leaves the short run to learn only what is normal for this fabric. Only
the weights are taken: the optimiser, the step count and the schedule start afresh, so this is not
a resume (training/checkpoint.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qc.card import sha256_file
from training.checkpoint import weights_mismatch
from training.config import TrainingError


def load_init_weights(net: nn.Module, path: str | Path) -> None:
    """Fill ``net`` from ``path``: a finished run's checkpoint.pt (its state_dict) or a bare state dict.

    Every key the network has must be in the file with the same shape, and the file may hold no
    others: a network of another architecture is an error that names the keys, never a partial load.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"optim.init_weights: no file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"optim.init_weights: {path} cannot be loaded as torch weights: {exc}") from exc
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrainingError(
            f"optim.init_weights: {path} holds no state dict (a run's checkpoint.pt or torch.save(net.state_dict()))"
        )
    detail = weights_mismatch(net.state_dict(), state)
    if detail:
        raise TrainingError(
            f"optim.init_weights: {path} does not match the network of this config ({'; '.join(detail)}); "
            "the net section must be the one the weights were trained with"
        )
    net.load_state_dict(state)


def describe_init_weights(path: str | Path | None) -> dict | None:
    """The run record's note of the weights a run started from: the file and its sha256 (None when a
    resumed run's file has gone since it started: the finished run is still recorded, not lost)."""
    if path is None:
        return None
    return {"path": str(path), "sha256": sha256_file(Path(path)) if Path(path).is_file() else None}
