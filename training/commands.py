"""Entry points of `qc train` and `qc export` (called by qc/cli.py, which imports torch lazily)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from qc.overrides import ConfigError
from training.calibrate import calibrate
from training.config import TrainConfig, TrainingError, load_config
from training.data import (
    AnomalyBatches,
    dataset_fingerprint,
    find_training_images,
    load_images,
    pad_to,
    random_crop,
    split_train_val,
)
from training.export import CHECKPOINT_FILE, PARITY_FILE, RUN_FILE, export_run
from training.train import pick_device, train_network

__all__ = ["TrainingError", "run_train", "run_export"]

PARITY_CROPS = 4


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def hardware_string(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return (
        f"{platform.platform()}; {os.cpu_count()} CPUs; torch {torch.__version__} on {device.type} "
        f"({name})"
    )


def parity_crops(images: list[np.ndarray], config: TrainConfig) -> dict[str, np.ndarray]:
    """Held-back good crops kept in the run folder, so export can check parity without the dataset."""
    rng = np.random.default_rng(config.seed + 1)
    tile = config.export.tile_px
    good = np.stack([random_crop(rng, images[i % len(images)], tile, tile) for i in range(PARITY_CROPS)])
    odd_h, odd_w = max(8, tile * 5 // 8 + 3), max(8, tile - 21)  # odd sizes on purpose
    odd = pad_to(images[0], odd_h, odd_w)[None, :odd_h, :odd_w]
    return {"good": good, "odd": np.ascontiguousarray(odd)}


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_train(config_path: Path, data_root: Path, out_dir: Path, overrides: list[str], command: str) -> Path:
    """Train on ``data_root``'s good images, calibrate on the hold-out; write the run to ``out_dir``."""
    try:
        config = load_config(Path(config_path), overrides)
    except ConfigError as exc:
        raise TrainingError(str(exc)) from exc
    data_root = Path(data_root)
    out_dir = Path(out_dir)
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    started = time.monotonic()

    paths = find_training_images(data_root)
    train_paths, val_paths = split_train_val(
        paths, val_fraction=config.data.val_fraction, min_val_images=config.data.min_val_images, seed=config.seed
    )
    train_images, val_images = load_images(train_paths), load_images(val_paths)
    fingerprint = dataset_fingerprint(data_root, paths)
    log(f"training on {len(train_paths)} good images, {len(val_paths)} held back for calibration ({data_root})")

    device = pick_device()
    batches = AnomalyBatches(train_images, config.data, config.anomalies, np.random.default_rng(config.seed))
    result = train_network(config, batches, device=device, log=log)

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"config": config.model_dump(mode="json"), "state_dict": result.net.state_dict()},
        out_dir / CHECKPOINT_FILE,
    )
    thresholds, summary = calibrate(
        result.net,
        val_images,
        config.calibration,
        config.export,
        data_description=f"{len(val_paths)} good images held back from {paths[0].parent} (seed {config.seed})",
        seed=config.seed,
    )
    np.savez_compressed(out_dir / PARITY_FILE, **parity_crops(val_images, config))
    log(
        f"calibrated: image threshold {thresholds.image:.4f}, pixel threshold {thresholds.pixel:.4f} "
        f"(held-back good scores up to {summary['good_scores']['max']:.4f})"
    )

    record = {
        "command": command,
        "config": config.model_dump(mode="json"),
        "dataset": str(data_root),
        "dataset_fingerprint": fingerprint,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 2),
        "hardware": hardware_string(device),
        "seed": config.seed,
        "training": {
            "steps_done": result.steps_done,
            "stopped_by": result.stopped_by,
            "loop_duration_s": round(result.duration_s, 2),
            "first_loss": result.first_loss,
            "final_loss": result.final_loss,
        },
        "calibration": {"thresholds": thresholds.model_dump(mode="json"), **summary},
        "files": {
            "train": [p.relative_to(data_root).as_posix() for p in train_paths],
            "val": [p.relative_to(data_root).as_posix() for p in val_paths],
        },
    }
    write_json_atomic(out_dir / RUN_FILE, record)
    log(f"run written to {out_dir} in {record['duration_s']:.0f} s")
    return out_dir


def run_export(run_dir: Path, out_dir: Path, *, name: str | None, version: str | None, command: str) -> Path:
    """Export ``run_dir`` to ``out_dir`` (models/<name>/<version>); name/version default to its last two parts."""
    out_dir = Path(out_dir).resolve()
    name = name or out_dir.parent.name
    version = version or out_dir.name
    card = export_run(Path(run_dir), out_dir, name=name, version=version, command=command)
    log(
        f"exported {card.name} {card.version} to {out_dir}: parity heatmap {card.parity.max_abs_diff_heatmap:.2g}, "
        f"score {card.parity.max_abs_diff_score:.2g}"
    )
    return out_dir
