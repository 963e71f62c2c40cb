"""Entry points of `qc train` and `qc export` (called by qc/cli.py, which imports torch lazily)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from qc.atomic import write_text_atomic
from qc.card import Thresholds
from qc.overrides import ConfigError
from qc.machine import cpu_model
from qc.padding import fill_padding
from qc.position import ColumnFactors, quieted_columns
from training import distributed
from training.augment import train_augmenter
from training.calibrate import calibrate, calibrate_for_recall, self_similarity_record
from training.good_evidence import good_evidence
from training.checkpoint import FORMAT, differing_keys, load_for_resume, save_atomic
from training.config import TrainConfig, TrainingError, load_config
from training.data import (
    AnomalyBatches,
    DefectSample,
    LabelledDefect,
    dataset_fingerprint,
    find_labelled_defects,
    find_training_images,
    find_validation_good,
    load_defects,
    load_images,
    random_crop,
    split_defects,
    split_train_val,
)
from training.distributed import Distributed
from training.export import CHECKPOINT_FILE, PARITY_FILE, RUN_FILE, export_run
from training.init_weights import describe_init_weights
from training.networks import backbone_record
from training.onnx_scoring import fastest_tile_scorer
from training.train import TENSORBOARD_DIR, TrainResult, pick_device, train_network
from training.validation import ValidationSet, build_validation_set

__all__ = ["TrainingError", "run_train", "run_export"]

PARITY_CROPS = 4


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def hardware_string(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return (
        f"{platform.platform()}; {os.cpu_count()} CPUs; torch {torch.__version__} on {device.type} "
        f"({name})"
    )


PARITY_CANDIDATES = 8


def textured_crop(rng: np.random.Generator, image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The most textured of a few random crops. A flat crop (the white padding at the ends of a
    line-scan strip) makes every normalisation layer divide float32 rounding noise by sqrt(eps):
    torch and onnxruntime then disagree by ~2e-4 on a model that agrees to 1e-6 on fabric, and
    both are equally far from a float64 reference, so such a crop tests nothing but the noise."""
    candidates = [random_crop(rng, image, height, width) for _ in range(PARITY_CANDIDATES)]
    return max(candidates, key=lambda crop: float(crop.std()))


def parity_crops(images: list[np.ndarray], config: TrainConfig) -> dict[str, np.ndarray]:
    """Held-back good crops kept in the run folder, so export can check parity without the dataset."""
    rng = np.random.default_rng(config.seed + 1)
    tile = config.export.tile_px
    good = np.stack([textured_crop(rng, images[i % len(images)], tile, tile) for i in range(PARITY_CROPS)])
    odd_h, odd_w = max(8, tile * 5 // 8 + 3), max(8, tile - 21)  # odd sizes on purpose
    odd = textured_crop(rng, images[0], odd_h, odd_w)[None]
    return {"good": good, "odd": np.ascontiguousarray(odd)}


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def _unfinished(ckpt: Path) -> bool:
    try:
        return torch.load(ckpt, map_location="cpu", weights_only=True).get("finished") is False
    except Exception:  # an unreadable leftover is not a run anyone can resume
        return False


def _fresh_or_resumable(out_dir: Path, config: TrainConfig, resume: bool) -> dict | None:
    """The checkpoint payload to resume from, or None; refuses to overwrite an unfinished run."""
    ckpt = out_dir / CHECKPOINT_FILE
    if not resume:
        if ckpt.is_file() and not (out_dir / RUN_FILE).is_file() and _unfinished(ckpt):
            raise TrainingError(
                f"{out_dir} holds an unfinished run ({ckpt}): pass --resume (or resume=true) to continue "
                f"it, or choose another --out"
            )
        return None
    payload = load_for_resume(ckpt, config)
    if payload.get("finished"):
        raise TrainingError(f"cannot resume: the run in {out_dir} has finished; train into another --out")
    changed = [k for k in differing_keys(payload["config"], config.model_dump(mode="json")) if k != "resume"]
    if changed:
        log(f"resuming with changed settings: {', '.join(changed)}")
    return payload


def run_train(
    config_path: Path,
    data_root: Path,
    out_dir: Path,
    overrides: list[str],
    command: str,
    *,
    resume: bool = False,
) -> Path:
    """Train on ``data_root``'s train/ images, calibrate on the hold-out; write the run to ``out_dir``.

    Under torchrun (WORLD_SIZE > 1) every rank trains and only rank 0 writes the run folder.
    """
    try:
        config = load_config(Path(config_path), overrides)
    except ConfigError as exc:
        raise TrainingError(str(exc)) from exc
    ctx = distributed.from_environment()
    distributed.start(ctx)
    try:
        return _train(config, Path(data_root), Path(out_dir), command, resume or config.resume, ctx)
    finally:
        distributed.stop(ctx)


@dataclass(frozen=True)
class _Job:
    """One `qc train`: its settings, its command line, its processes and since when it runs."""

    config: TrainConfig
    command: str
    ctx: Distributed
    started_at: str  # UTC, ISO 8601
    started: float  # time.monotonic()


@dataclass(frozen=True)
class _DataSplit:
    """Which of the dataset's files train and which calibrate."""

    root: Path
    good: list[Path]  # every good image of train/
    own_val_good: list[Path]  # val/good/, a split of the user's, when there is one
    train_good: list[Path]
    val_good: list[Path]
    labelled: list[LabelledDefect]  # the labelled defects of train/
    own_val_defects: list[LabelledDefect]  # those of val/
    train_defects: list[LabelledDefect]
    val_defects: list[LabelledDefect]  # calibrate for recall; none when calibrating for false rejects
    by_recall: bool


@dataclass(frozen=True)
class _LoadedData:
    train_images: list[np.ndarray]
    val_images: list[np.ndarray]
    defect_samples: list[DefectSample]
    val_defect_images: list[np.ndarray]
    fingerprint: str


def _train(
    config: TrainConfig, data_root: Path, out_dir: Path, command: str, resume: bool, ctx: Distributed
) -> Path:
    """Find and split the data, build the batches, train, calibrate, write the run record."""
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    job = _Job(config, command, ctx, started_at, time.monotonic())
    say = log if ctx.is_main else (lambda line: None)

    split = _split_data(config, data_root)
    payload = _fresh_or_resumable(out_dir, config, resume)
    data = _load_data(split)
    _say_what_trains(split, data, say)

    device = pick_device() if not ctx.enabled else ctx.device()
    batches, validation = _batches_and_validation(config, data, ctx)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    result = train_network(
        config, batches, device=device, log=log, run_dir=out_dir, validation=validation, resume=payload, ctx=ctx
    )
    if not ctx.is_main:
        return out_dir

    _save_final_weights(config, result.net, out_dir)
    calibration = _calibrate(config, split, data, result.net, out_dir)
    record = _run_record(job, split, data.fingerprint, device, result, calibration)
    write_json_atomic(out_dir / RUN_FILE, record)
    log(f"run written to {out_dir} in {record['duration_s']:.0f} s")
    return out_dir


def _save_final_weights(config: TrainConfig, net: torch.nn.Module, out_dir: Path) -> None:
    """The finished run's checkpoint: the final weights in place of the resumable state."""
    save_atomic(
        {
            "format": FORMAT,
            "finished": True,
            "config": config.model_dump(mode="json"),
            "state_dict": net.state_dict(),
        },
        out_dir / CHECKPOINT_FILE,
    )


def _split_data(config: TrainConfig, data_root: Path) -> _DataSplit:
    paths = find_training_images(data_root)
    # A val/ split of the user's (the dataset contract) calibrates; otherwise a share of train/ is held back.
    own_val_good = find_validation_good(data_root)
    if own_val_good:
        train_paths, val_paths = paths, own_val_good
    else:
        train_paths, val_paths = split_train_val(
            paths, val_fraction=config.data.val_fraction, min_val_images=config.data.min_val_images, seed=config.seed
        )
    labelled = find_labelled_defects(data_root)
    own_val_defects = find_labelled_defects(data_root, "val")
    by_recall = config.calibration.mode == "recall"
    if by_recall and not (labelled or own_val_defects):
        raise TrainingError(
            f"calibration.mode=recall needs labelled defect images in {data_root / 'val'}/<defect_type>/ or "
            f"{data_root / 'train'}/<defect_type>/ (none found); use calibration.mode=false_reject_rate"
        )
    if own_val_defects or not by_recall:
        train_defects, val_defects = labelled, (own_val_defects if by_recall else [])
    else:
        train_defects, val_defects = split_defects(
            labelled, val_fraction=config.data.defect_val_fraction, seed=config.seed
        )
    return _DataSplit(
        data_root, paths, own_val_good, train_paths, val_paths,
        labelled, own_val_defects, train_defects, val_defects, by_recall,
    )


def _load_data(split: _DataSplit) -> _LoadedData:
    train_images, val_images = load_images(split.train_good), load_images(split.val_good)
    defect_samples = load_defects(split.train_defects)
    val_defect_images = [d.image for d in load_defects(split.val_defects)]
    used = split.train_defects + split.val_defects
    defect_files = [d.path for d in used] + [d.mask_path for d in used if d.mask_path is not None]
    fingerprint = dataset_fingerprint(split.root, sorted(set(split.good + split.own_val_good + defect_files)))
    return _LoadedData(train_images, val_images, defect_samples, val_defect_images, fingerprint)


def _say_what_trains(split: _DataSplit, data: _LoadedData, say: Callable[[str], None]) -> None:
    where = "from val/good" if split.own_val_good else "held back"
    say(
        f"training on {len(split.train_good)} good images, {len(split.val_good)} {where} for calibration "
        f"({split.root})"
    )
    if split.labelled or split.val_defects:
        weak = sum(d.mask is None for d in data.defect_samples)
        say(
            f"labelled defects: {len(split.train_defects)} of train/ trained on ({weak} image label only), "
            f"{len(split.val_defects)} for recall calibration"
        )


def _batches_and_validation(
    config: TrainConfig, data: _LoadedData, ctx: Distributed
) -> tuple[AnomalyBatches, ValidationSet]:
    # Rank 0 draws what a single process draws; other ranks get their own stream.
    data_rng = np.random.default_rng(config.seed if ctx.rank == 0 else [config.seed, ctx.rank])
    batches = AnomalyBatches(
        data.train_images,
        config.data,
        config.anomalies,
        data_rng,
        augment=train_augmenter(config.data.augment, rotate=config.data.rotate),
        defects=data.defect_samples,
        fill_padding=config.export.fill_padding,
    )
    validation = build_validation_set(
        [fill_padding(image) for image in data.val_images] if config.export.fill_padding else data.val_images,
        crops=config.data.validation_crops,
        crop_px=config.data.crop_px,
        anomalies=config.anomalies,
        seed=config.seed,
    )
    return batches, validation


def _calibrate(
    config: TrainConfig, split: _DataSplit, data: _LoadedData, net: torch.nn.Module, out_dir: Path
) -> dict:
    """Thresholds from the held-back images (and the parity crops beside them); the run record's part."""
    good_description = (
        f"{len(split.val_good)} good images of {split.val_good[0].parent}"
        if split.own_val_good
        else f"{len(split.val_good)} good images held back from {split.good[0].parent} (seed {config.seed})"
    )
    calibration = config.calibration
    if split.by_recall:  # the image threshold comes from the defects: no trained-on good scores needed
        calibration = calibration.model_copy(update={"image_scores_from": "held_back"})
    # Every image is scored by the graph the station will run, on the CPU (training.onnx_scoring).
    with fastest_tile_scorer(net.eval(), config.export) as scorer:
        fit, trained_on_scores = good_evidence(
            scorer, data.train_images, data.val_images, calibration, config.export, source=split.good[0].parent
        )
        position = fit.record if fit else None
        if position:
            log(f"position: {quieted_columns(position['scale'])} of {position['width']} columns quieted ({position['data']})")
        position_scale = ColumnFactors.from_record(position)
        if split.by_recall:
            val_defects = split.val_defects
            thresholds, summary = calibrate_for_recall(
                scorer,
                data.val_images,
                data.val_defect_images,
                config.calibration,
                config.export,
                data_description=f"{good_description}; {len(val_defects)} labelled defect images "
                f"{'of' if split.own_val_defects else 'held back from'} {val_defects[0].path.parent.parent} "
                f"({', '.join(sorted({d.defect_type for d in val_defects}))})",
                seed=config.seed,
                position_scale=position_scale,
            )
        else:
            thresholds, summary = calibrate(
                scorer,
                data.val_images,
                config.calibration,
                config.export,
                data_description=good_description,
                seed=config.seed,
                position_scale=position_scale,
                trained_on_scores=trained_on_scores,
            )
    unrepeated = self_similarity_record(
        data.train_images + data.val_images,
        config.calibration,
        data_description=f"{len(data.train_images)} good images trained on from {split.good[0].parent}; {good_description}",
    )
    if unrepeated is not None:
        log(f"self-similarity: threshold {unrepeated.threshold:.2f} ({unrepeated.method})")
    np.savez_compressed(out_dir / PARITY_FILE, **parity_crops(data.val_images, config))
    _say_calibration(config, thresholds, summary)
    return {
        "thresholds": thresholds.model_dump(mode="json"),
        **summary,
        "position": position,
        "self_similarity": unrepeated.model_dump(mode="json") if unrepeated else None,
    }


def _say_calibration(config: TrainConfig, thresholds: Thresholds, summary: dict) -> None:
    log(
        f"calibrated ({config.calibration.mode}): image threshold {thresholds.image:.4f}, pixel threshold "
        f"{thresholds.pixel:.4f} (held-back good scores up to {summary['good_scores']['max']:.4f}"
        + (f", trained-on up to {trained['max']:.4f})" if (trained := summary.get("trained_on_scores")) else ")")
    )
    rejected = max(summary.get("held_back_rejected", 0.0), (trained or {}).get("rejected", 0.0))
    if rejected > 0:
        log(
            f"WARNING: {rejected:.0%} of the held-back or trained-on good images score at or above the "
            f"image threshold (capped at calibration.max_threshold {config.calibration.max_threshold:g}): this "
            "model would reject good units of this fabric; more training, more good images or another "
            "net.backbone may help, and `qc eval` on labelled images shows by how much"
        )


def _run_record(
    job: _Job, split: _DataSplit, fingerprint: str, device: torch.device, result: TrainResult, calibration: dict
) -> dict:
    config, ctx, root = job.config, job.ctx, split.root
    return {
        "command": job.command,
        "config": config.model_dump(mode="json"),
        "dataset": str(root),
        "dataset_fingerprint": fingerprint,
        "started_at": job.started_at,
        "duration_s": round(time.monotonic() - job.started, 2),
        "hardware": hardware_string(device) + (f"; {ctx.world_size} processes (DDP)" if ctx.enabled else ""),
        "backbone": backbone_record(config.net),
        "init_weights": describe_init_weights(config.optim.init_weights),
        "seed": config.seed,
        "training": {
            "steps_done": result.steps_done,
            "stopped_by": result.stopped_by,
            "loop_duration_s": round(result.duration_s, 2),
            "first_loss": result.first_loss,
            "final_loss": result.final_loss,
            "resumed_from_step": result.resumed_from_step,
            "best_step": result.best_step,
            "validations": result.validations,
            "world_size": ctx.world_size,
            "augment": config.data.augment,
            "tensorboard": TENSORBOARD_DIR if config.optim.tensorboard else None,
        },
        "calibration": calibration,
        "files": {
            "train": [p.relative_to(root).as_posix() for p in split.train_good],
            "val": [p.relative_to(root).as_posix() for p in split.val_good],
            "train_defects": [d.path.relative_to(root).as_posix() for d in split.train_defects],
            "val_defects": [d.path.relative_to(root).as_posix() for d in split.val_defects],
        },
    }


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
