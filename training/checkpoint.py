"""Resumable checkpoints: everything a run needs to go on exactly where it stopped.

One file, ``RUN_DIR/checkpoint.pt``, is written atomically (temporary file, then rename) every
``optim.checkpoint_every_s``, so a power cut leaves either the previous checkpoint or the new one,
never half of one. The finished run overwrites it with the final weights; export reads its
``config`` and ``state_dict`` keys, which every checkpoint has.

A checkpoint holds the model, the optimiser, the step, the training time spent so far, the best
weights of early stopping, every random state (python, numpy, torch, and each data stream's numpy
Generator), the hard-negative spots and the config. Restoring all of them makes a resumed run
take the same steps on the same crops as an uninterrupted one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qc.atomic import write_bytes_atomic
from training.config import TrainConfig, TrainingError

FORMAT = "qc-train-checkpoint/1"


def capture_rng(data_rng: np.random.Generator) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "data": data_rng.bit_generator.state,
    }


def restore_rng(states: dict[str, Any], data_rng: np.random.Generator) -> None:
    random.setstate(_as_tuple(states["python"]))
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": np.asarray(numpy_state["state"]["key"], np.uint32)}
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    data_rng.bit_generator.state = states["data"]


def _numpy_state() -> dict[str, Any]:
    """numpy's global state with its key array as a list, so the file loads with weights_only=True."""
    state = np.random.get_state(legacy=False)
    return {**state, "state": {**state["state"], "key": state["state"]["key"].tolist()}}


def _as_tuple(value: Any) -> Any:
    """random.setstate wants nested tuples; a round trip through torch.save keeps them, but be safe."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save through the project's one atomic writer (qc.atomic: temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def differing_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ (or exist on one side only)."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, object()) != b.get(k, object()))


def weights_mismatch(wanted: dict[str, Any], given: dict[str, Any], *, extra_allowed: bool = False) -> list[str]:
    """What keeps ``given`` weights from filling a network whose state dict is ``wanted``: its
    missing keys, its keys the network lacks (unless ``extra_allowed``) and its tensors of another
    shape, each named (a few of each); empty when they fit."""
    missing = sorted(k for k in wanted if k not in given)
    extra = [] if extra_allowed else sorted(k for k in given if k not in wanted)
    wrong = sorted(k for k in wanted if k in given and tuple(given[k].shape) != tuple(wanted[k].shape))
    detail = []
    if missing:
        detail.append(f"missing {_some(missing)}")
    if extra:
        detail.append(f"not in this network {_some(extra)}")
    if wrong:
        shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(wanted[k].shape)}" for k in wrong]
        detail.append(f"shape differs: {_some(shapes)}")
    return detail


def _some(names: list[str], shown: int = 6) -> str:
    return ", ".join(names[:shown]) + (f" ... ({len(names)} in all)" if len(names) > shown else "")


INFERENCE_ONLY_NET_KEYS = {"test_time_flips"}


def load_for_resume(path: Path, config: TrainConfig) -> dict[str, Any]:
    """Read a resumable checkpoint; refuse one of another network architecture, naming the keys."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"cannot resume: {path} does not exist (train without --resume first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises many types
        raise TrainingError(f"cannot resume: checkpoint {path} cannot be loaded: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainingError(
            f"cannot resume: {path} is not a resumable training checkpoint (no optimiser state or "
            f"format {FORMAT!r}); it may come from an older version"
        )
    old_net = payload["config"].get("net", {})
    new_net = config.model_dump(mode="json")["net"]
    # Test-time flips change how the trained weights are run, not the weights.
    changed = [k for k in differing_keys(old_net, new_net) if k not in INFERENCE_ONLY_NET_KEYS]
    if changed:
        details = ", ".join(
            f"net.{k}: {flatten(old_net).get(k, '(absent)')!r} in the checkpoint, "
            f"{flatten(new_net).get(k, '(absent)')!r} now"
            for k in changed
        )
        raise TrainingError(
            f"cannot resume from {path}: it was trained with another network architecture ({details})"
        )
    return payload
