"""ONNX export of a trained run, a parity check of onnxruntime against torch, and the model card.

The parity check runs both on held-back good crops saved by training, on the same crops with
synthetic anomalies, and on one non-square crop (the spatial size is dynamic): every heatmap and
score must agree within PARITY_TOLERANCE and every verdict at the card's image threshold must be the
same, or nothing is written.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qc.atomic import write_bytes_atomic
from qc.card import (
    BackboneRecord,
    HeatmapRecord,
    PositionRecord,
    SelfSimilarityRecord,
    ExportParity,
    InputSpec,
    ModelCard,
    Thresholds,
    TilingSpec,
    TrainingRecord,
    sha256_file,
    write_card,
)
from qc.contract import BACKBONE_METADATA_KEY, INPUT_NAME, MODEL_FILE, OUTPUT_NAMES
from training.anomalies import add_anomaly
from training.config import TrainConfig, TrainingError
from training.data import to_tensor_layout
from training.local_norm import LocalNorm
from training.net import DefectUNet
from training.networks import build_network

CHECKPOINT_FILE = "checkpoint.pt"
RUN_FILE = "run.json"
PARITY_FILE = "parity_crops.npz"
# A quarter of one grey level of the 8-bit heatmap a station stores (1/255 = 3.9e-3), and every
# verdict must match besides. 1e-4 was too tight for real fabric: on a high-contrast AITEX crop
# onnxruntime's float32 differed from a float64 reference by 1.1e-4 where torch's differed by
# 1.3e-6, and that failed the export of a good model after seven minutes of training.
PARITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class TrainedRun:
    net: DefectUNet
    config: TrainConfig
    record: dict
    parity_good: np.ndarray  # (k, tile, tile, 3) uint8 held-back good crops
    parity_odd: np.ndarray  # (1, h, w, 3) uint8, a non-square crop


def as_calibrated(config: dict) -> dict:
    """A run's config as its thresholds were calibrated, whatever today's defaults are. A run from
    before ``net.test_time_flips`` existed was calibrated on single-pass maps, and one from before
    ``export.broad_sigma_px`` on the 4-px smoothing alone: both stay so."""
    return {
        **config,
        "net": {"test_time_flips": "none", **config.get("net", {})},
        "export": {"broad_sigma_px": 0.0, **config.get("export", {})},
    }


def load_run(run_dir: Path) -> TrainedRun:
    """Rebuild the trained network and its record; any missing or broken file raises TrainingError."""
    run_dir = Path(run_dir)
    ckpt_path, record_path, parity_path = (run_dir / n for n in (CHECKPOINT_FILE, RUN_FILE, PARITY_FILE))
    for path in (ckpt_path, record_path, parity_path):
        if not path.is_file():
            raise TrainingError(f"{path} is missing: is {run_dir} a finished `qc train` run?")
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        config = TrainConfig.model_validate(as_calibrated(checkpoint["config"]))
        net = build_network(config.net)
        net.load_state_dict(checkpoint["state_dict"])
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise TrainingError(f"checkpoint {ckpt_path} cannot be loaded: {exc}") from exc
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        Thresholds.model_validate(record["calibration"]["thresholds"])
    except Exception as exc:
        raise TrainingError(f"run record {record_path} is unreadable or incomplete: {exc}") from exc
    try:
        with np.load(parity_path) as crops:
            good, odd = crops["good"], crops["odd"]
    except Exception as exc:
        raise TrainingError(f"parity crops {parity_path} cannot be loaded: {exc}") from exc
    return TrainedRun(net.eval(), config, record, good, odd)


def with_instance_norms(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose one-channel-per-group GroupNorms are InstanceNorm2d layers with the
    same scale and shift: the same function (1e-6 apart in float32), a cheaper graph. A GroupNorm
    exports as reshape, InstanceNormalization, reshape, multiply and add after every convolution,
    and onnxruntime reorders its blocked conv layout around each reshape. With the plain node a
    4096x256 strip of the default network (vertical flips, 2 threads) took 216-221 ms instead of
    233-244 ms (`qc bench inference`). The parity check compares the graph with the unchanged ``net``."""
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.GroupNorm) and child.num_groups == child.num_channels and child.affine:
                norm = nn.InstanceNorm2d(child.num_channels, eps=child.eps, affine=True)
                with torch.no_grad():
                    norm.weight.copy_(child.weight)
                    norm.bias.copy_(child.bias)
                setattr(parent, name, norm)
    return net


def whole_cell_px(net: nn.Module) -> int:
    """The side, in image px, that an input must be a multiple of to be whole cells in every local
    norm of ``net`` (training/local_norm.py); 1 for a network without local norms."""
    return math.lcm(1, *(m.cell_image_px for m in net.modules() if isinstance(m, LocalNorm)))


def with_whole_cells(net: nn.Module, tile_px: int) -> tuple[nn.Module, int]:
    """``net`` (a copy) with its local norms' edge pads and crops left out, and the multiple of image
    px its inputs' sides must then be; ``net`` itself and a multiple of 1 where the tile is not
    whole cells. The same function on such inputs, and what the station feeds it: tiles of
    ``tile_px``."""
    multiple = whole_cell_px(net)
    if multiple == 1 or tile_px % multiple:
        return net, 1
    net = copy.deepcopy(net)
    for norm in net.modules():
        if isinstance(norm, LocalNorm):
            norm.whole_cells = True
    return net, multiple


def export_onnx(
    net: DefectUNet, path: Path, *, tile_px: int, opset: int, exporter: str = "torchscript", whole_cells: bool = True
) -> int:
    """Single-file ONNX with dynamic batch, height and width, with the network's instance norms as
    such (``with_instance_norms``). With ``whole_cells`` (and a tile that is whole cells) the graph
    takes heights and widths that are multiples of ``whole_cell_px(net)`` only (``with_whole_cells``):
    on the default network a 256-px tile ran in 13.2 ms instead of 16.8 (`qc bench norms`). Returns
    the multiple the graph's sides must be (1: any size), which the card records.

    The TorchScript exporter traces the network once: about 2 s on 2 cores. The dynamo exporter
    reasons symbolically about every shape in the graph, and the pads, pools, resizes and crops of
    the local norms made that 45-70 s (16-24 s without them) of a five-minute onboarding, for
    graphs onnxruntime runs at the same speed. Both give the same function (the parity check that
    follows compares the graph with torch on good, anomalous and non-square inputs); ``dynamo`` is
    kept for a torch that has dropped the TorchScript exporter.
    """
    example = torch.rand(1, 3, tile_px, tile_px)
    net = with_instance_norms(net).eval()
    multiple = 1
    if whole_cells:
        net, multiple = with_whole_cells(net, tile_px)
    if exporter == "torchscript":
        with warnings.catch_warnings():
            # The exporter's own notices (its deprecation, slices it cannot fold, instance norms
            # that always use the input's statistics) and torch's input checks, which the trace
            # freezes harmlessly; a TracerWarning from this project's code still shows.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
            warnings.filterwarnings("ignore", message="ONNX export mode is set", category=UserWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.")
            torch.onnx.export(
                net,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamo=False,
                opset_version=opset,
                dynamic_axes={
                    INPUT_NAME: {0: "N", 2: "H", 3: "W"},
                    OUTPUT_NAMES[0]: {0: "N", 2: "H", 3: "W"},
                    OUTPUT_NAMES[1]: {0: "N"},
                },
            )
        return multiple
    if multiple == 1:
        height, width = torch.export.Dim("H", min=8, max=65536), torch.export.Dim("W", min=8, max=65536)
    else:  # sides in whole cells: torch.export must know, or it cannot prove the shapes match
        height = multiple * torch.export.Dim("cells_h", min=1, max=65536 // multiple)
        width = multiple * torch.export.Dim("cells_w", min=1, max=65536 // multiple)
    dims = {0: torch.export.Dim("N", min=1, max=4096), 2: height, 3: width}
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamo=True,
        opset_version=opset,
        external_data=False,
        dynamic_shapes={"image": dims},
        verbose=False,
    )
    return multiple


def simplify_onnx(path: Path, *, backbone: str | None = None) -> None:
    """Fold constants and drop redundant shape arithmetic (onnxslim), in place; name the pretrained
    backbone in the graph's metadata, where a station checks it against the card.

    Done before the parity check, so the graph that ships is the graph that was compared.
    """
    import onnx
    import onnxslim

    model = onnxslim.slim(str(path))
    if backbone is not None:
        onnx.helper.set_model_props(model, {BACKBONE_METADATA_KEY: backbone})
    onnx.save(model, str(path))


def parity_inputs(run: TrainedRun, size_multiple: int = 1) -> list[np.ndarray]:
    """Batches (float32 NCHW) compared between torch and onnxruntime; the non-square crop is cut
    down to sides that are multiples of ``size_multiple``, the sizes the graph takes."""
    rng = np.random.default_rng(run.config.seed)
    good = run.parity_good
    anomalous = np.stack(
        [add_anomaly(rng, crop, good[(i + 1) % len(good)], run.config.anomalies)[0] for i, crop in enumerate(good)]
    )
    height, width = run.parity_odd.shape[1:3]
    odd = run.parity_odd[:, : height - height % size_multiple, : width - width % size_multiple]
    return [to_tensor_layout(good), to_tensor_layout(anomalous), to_tensor_layout(odd)]


def check_parity(net: DefectUNet, onnx_path: Path, batches: list[np.ndarray], image_threshold: float) -> ExportParity:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    diff_heat = diff_score = 0.0
    same_verdicts = True
    n_images = 0
    for batch in batches:
        with torch.no_grad():
            expected = net(torch.from_numpy(batch))
        heat, score = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        if heat.shape != tuple(expected.heatmap.shape) or score.shape != tuple(expected.score.shape):
            raise TrainingError(
                f"exported model gives shapes {heat.shape}, {score.shape} for input {batch.shape}; "
                f"torch gives {tuple(expected.heatmap.shape)}, {tuple(expected.score.shape)}"
            )
        diff_heat = max(diff_heat, float(np.abs(heat - expected.heatmap.numpy()).max()))
        diff_score = max(diff_score, float(np.abs(score - expected.score.numpy()).max()))
        same_verdicts &= bool(np.array_equal(score >= image_threshold, expected.score.numpy() >= image_threshold))
        n_images += len(batch)
    if diff_heat > PARITY_TOLERANCE or diff_score > PARITY_TOLERANCE or not same_verdicts:
        raise TrainingError(
            f"export parity failed: onnxruntime differs from torch by {diff_heat:.3g} (heatmap) and "
            f"{diff_score:.3g} (score), tolerance {PARITY_TOLERANCE:g}; verdicts identical: {same_verdicts}"
        )
    return ExportParity(
        max_abs_diff_heatmap=diff_heat,
        max_abs_diff_score=diff_score,
        n_images=n_images,
        verdicts_identical=same_verdicts,
    )


def position_record(position: dict | None) -> PositionRecord | None:
    """The card's record of the run's position factors, if it has any."""
    return PositionRecord.model_validate(position) if position else None


def self_similarity_record_of(record: dict | None) -> SelfSimilarityRecord | None:
    """The card's record of the run's unrepeated-structure cue, if it was fitted (runs before 2026-12-07 were not)."""
    return SelfSimilarityRecord.model_validate(record) if record else None


def export_run(run_dir: Path, out_dir: Path, *, name: str, version: str, command: str) -> ModelCard:
    """Export ``run_dir`` to ``out_dir``/{model.onnx, model.json}; nothing lands there unless parity holds."""
    run = load_run(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    thresholds = Thresholds.model_validate(run.record["calibration"]["thresholds"])
    backbone = run.record.get("backbone")
    backbone = BackboneRecord.model_validate(backbone) if backbone else None
    tmp_path = out_dir / f".{MODEL_FILE}.tmp"
    try:
        size_multiple = export_onnx(
            run.net,
            tmp_path,
            tile_px=run.config.export.tile_px,
            opset=run.config.export.opset,
            exporter=run.config.export.exporter,
            whole_cells=run.config.export.whole_cells,
        )
        simplify_onnx(tmp_path, backbone=backbone.name if backbone else None)
        parity = check_parity(run.net, tmp_path, parity_inputs(run, size_multiple), thresholds.image)
        write_bytes_atomic(out_dir / MODEL_FILE, tmp_path.read_bytes())  # the compared bytes, fsynced
    finally:
        tmp_path.unlink(missing_ok=True)

    record = run.record
    card = ModelCard(
        name=name,
        version=version,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        onnx_sha256=sha256_file(out_dir / MODEL_FILE),
        opset=run.config.export.opset,
        input=InputSpec(tile_px=run.config.export.tile_px, size_multiple_px=size_multiple),
        tiling=TilingSpec(
            tile_px=run.config.export.tile_px,
            overlap_px=run.config.export.overlap_px,
            fill_padding=run.config.export.fill_padding,
        ),
        thresholds=thresholds,
        defect_classes=[],
        training=TrainingRecord(
            command=record["command"],
            config=record["config"],
            dataset=record["dataset"],
            dataset_fingerprint=record["dataset_fingerprint"],
            started_at=record["started_at"],
            duration_s=record["duration_s"],
            hardware=record["hardware"],
            seed=record["seed"],
        ),
        metrics={},
        parity=parity,
        quantization=None,
        export_command=command,
        backbone=backbone,
        position=position_record(record["calibration"].get("position")),
        heatmap=HeatmapRecord(broad_sigma_px=broad) if (broad := run.config.export.broad_sigma_px) > 0 else None,
        self_similarity=self_similarity_record_of(record["calibration"].get("self_similarity")),
    )
    write_card(card, out_dir)
    return card
