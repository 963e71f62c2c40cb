"""``qc train-types``: gather labelled regions, train, and write the run folder export reads.

A types run folder holds types_run.json (the record: types, crop side, min_confidence, held-back
accuracy, the data and the command), types_checkpoint.pt (the weights) and types_parity.npz (held-back
crops export compares torch and onnxruntime on).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import torch

from qc.atomic import write_text_atomic
from qc.defect_types import GEOMETRY
from training.config import TrainingError
from training.types.config import TypesConfig
from training.types.regions import LabelledRegion, StationView, dataset_regions, synthetic_regions
from training.types.train import TypesResult, train_types

TYPES_RUN_FILE = "types_run.json"
TYPES_CHECKPOINT_FILE = "types_checkpoint.pt"
TYPES_PARITY_FILE = "types_parity.npz"


def is_types_run(run_dir: Path) -> bool:
    return (Path(run_dir) / TYPES_RUN_FILE).is_file()


def gather_regions(data: list[Path], synthetic: int, config: TypesConfig) -> tuple[list[LabelledRegion], str]:
    """Every labelled region of the roots and ``synthetic`` tiles per synthetic type; and a line
    saying what they were."""
    if not data and synthetic <= 0:
        raise TrainingError("train-types needs --data ROOT (one or more) and/or --synthetic N")
    regions: list[LabelledRegion] = []
    said = []
    station = open_station_view(config)
    for root in data:
        found = dataset_regions(Path(root), min_area_px=config.min_area_px, station=station)
        regions += found
        said.append(f"{root}/train ({len(found)} regions)")
    if synthetic > 0:
        found = synthetic_regions(
            synthetic, seed=config.seed, size_px=config.synthetic_size_px, min_area_px=config.min_area_px,
            panel_share=config.synthetic_panel_share, station=station, workers=config.threads,
        )
        regions += found
        panels = f", {config.synthetic_panel_share:.0%} of fabric types' as line panels" if config.synthetic_panel_share else ""
        said.append(f"synthetic generator, {synthetic} images per type{panels} (seed {config.seed}, {len(found)} regions)")
    if station is not None:
        said.append(f"plus the regions the detector of {station.describe()} finds on each image's defect")
    return regions, "; ".join(said)


def open_station_view(config: TypesConfig) -> StationView | None:
    """The config's detector as the station's view of the labelled images, or None."""
    if config.detector is None:
        return None
    from qc.card import ModelRefused
    from training.types.station_view import DetectorView

    try:
        return DetectorView.open(config.detector, threads=config.threads)
    except ModelRefused as exc:
        raise TrainingError(f"detector {config.detector}: {exc}") from exc


def run_train_types(
    data: list[Path], synthetic: int, out: Path, config: TypesConfig, command: str
) -> TypesResult:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out} exists and is not empty: choose a new run folder")
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    regions, described = gather_regions(data, synthetic, config)
    result = train_types(regions, config)
    out.mkdir(parents=True, exist_ok=True)
    geometry = list(GEOMETRY) if result.net.n_geometry else []
    torch.save({"state_dict": result.net.state_dict(), "types": result.types, "geometry": geometry,
                "config": config.model_dump(mode="json")}, out / TYPES_CHECKPOINT_FILE)
    np.savez_compressed(out / TYPES_PARITY_FILE, crops=result.parity_crops, geometry=result.parity_geometry)
    record = {
        "types": result.types,
        "crop_px": config.crop_px,
        "geometry": geometry,
        "min_confidence": result.min_confidence,
        "min_confidence_rule": f"lowest top probability at which held-back labels are >= {config.target_precision:.0%} "
        f"correct, floor {config.min_confidence_floor}",
        "held_out_accuracy": result.held_out_accuracy,
        "held_out_regions": result.held_out_regions,
        "held_out_confident_share": result.confident_share,
        "regions_per_type": result.regions_per_type,
        "data": described,
        "command": command,
        "config": config.model_dump(mode="json"),
        "started_at": started_at,
        "duration_s": result.duration_s,
    }
    write_text_atomic(out / TYPES_RUN_FILE, json.dumps(record, indent=2) + "\n")
    return result
