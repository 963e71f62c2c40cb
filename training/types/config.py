"""The type classifier's training configuration (configs/train/types.yaml), one for all fabrics."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from qc.overrides import ConfigError, apply_overrides, format_validation_error, load_yaml_mapping
from qc.strict import Strict


class TypesConfig(Strict):
    seed: int = 0
    crop_px: int = Field(64, ge=16, description="side of the crops the network reads (qc.defect_types.region_crops)")
    min_area_px: int = Field(6, ge=1, description="mask components smaller than this are not regions")
    synthetic_size_px: int = Field(256, ge=64, description="side of the synthetic tiles regions are drawn on")
    steps: int = Field(12000, ge=1, description="optimiser steps")
    batch_size: int = Field(48, ge=2)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    width: int = Field(24, ge=4, description="channels of the first convolution; later ones are multiples")
    geometry: bool = Field(
        True, description="the net also reads each region's geometry in the whole image "
        "(qc.defect_types.GEOMETRY: extent, aspect, fill); false: the crop alone",
    )
    held_back_fraction: float = Field(
        0.15, gt=0, lt=1, description="share of each type's images held back for accuracy and min_confidence"
    )
    target_precision: float = Field(
        0.95, gt=0, le=1, description="min_confidence is the lowest at which held-back labels are this precise"
    )
    min_confidence_floor: float = Field(0.5, ge=0, le=1, description="min_confidence never goes below this")
    threads: int = Field(2, ge=1, description="torch CPU threads, and the processes that draw synthetic images")
    detector: Path | None = Field(
        None,
        description="a model folder whose detector adds the station's view of each labelled image: its "
        "regions on the defect, hint = heatmap >= pixel threshold (training/types/station_view.py); "
        "None: ground-truth regions only. `qc train-types --detector MODEL_DIR` sets it",
    )
    synthetic_panel_share: float = Field(
        0.0, ge=0, le=1, description="share of each fabric type's synthetic images drawn as whole line "
        "panels (the simulated line's frames) instead of tiles",
    )


def load_types_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> TypesConfig:
    """Read ``path`` (YAML), apply ``key=value`` overrides, validate; errors raise ConfigError."""
    mapping = apply_overrides(load_yaml_mapping(path), overrides)
    try:
        return TypesConfig.model_validate(mapping)
    except ValidationError as exc:
        source = f"{path}" + (f" with overrides {list(overrides)}" if overrides else "")
        raise ConfigError(format_validation_error(source, exc)) from exc
