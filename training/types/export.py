"""``qc export TYPES_RUN --out MODEL_DIR``: the type head into an existing model folder.

Writes types.onnx beside the detector (whose model.onnx and sha256 are untouched) after torch and
onnxruntime agree on the run's held-back crops, then rewrites the card atomically with its
type_head record. A station reading the card meanwhile sees the old card or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from qc.atomic import write_bytes_atomic
from qc.card import ModelRefused, TypeHeadRecord, sha256_file, verify_files, write_card
from qc.contract import TYPES_FILE, TYPES_GEOMETRY_NAME, TYPES_INPUT_NAME, TYPES_OUTPUT_NAME
from qc.defect_types import CHANNELS, GEOMETRY, load_type_classifier
from training.config import TrainingError
from training.export import PARITY_TOLERANCE
from training.types.network import Probabilities, TypeNet
from training.types.train import as_input
from training.types.run import TYPES_CHECKPOINT_FILE, TYPES_PARITY_FILE, TYPES_RUN_FILE

OPSET = 18


def load_types_run(run_dir: Path) -> tuple[TypeNet, dict, np.ndarray, np.ndarray]:
    """The net, the run record, and the held-back crops and geometry rows parity is checked on. A run
    made before geometry features reads the crops alone (its record and checkpoint name none)."""
    run_dir = Path(run_dir)
    paths = [run_dir / name for name in (TYPES_RUN_FILE, TYPES_CHECKPOINT_FILE, TYPES_PARITY_FILE)]
    for path in paths:
        if not path.is_file():
            raise TrainingError(f"{path} is missing: is {run_dir} a finished `qc train-types` run?")
    try:
        record = json.loads(paths[0].read_text(encoding="utf-8"))
        checkpoint = torch.load(paths[1], map_location="cpu", weights_only=True)
        geometry = checkpoint.get("geometry", [])
        net = TypeNet(len(record["types"]), checkpoint["config"]["width"], len(geometry))
        net.load_state_dict(checkpoint["state_dict"])
        with np.load(paths[2]) as parity:
            crops = parity["crops"]
            rows = parity["geometry"] if "geometry" in parity else np.zeros((len(crops), len(GEOMETRY)), np.float32)
    except Exception as exc:  # json, torch and numpy raise many types for a broken file
        raise TrainingError(f"types run {run_dir} cannot be loaded: {exc}") from exc
    if geometry and list(geometry) != list(GEOMETRY):
        raise TrainingError(f"types run {run_dir} reads geometry features {geometry}; this version computes {list(GEOMETRY)}")
    return net.eval(), record, crops, rows


def export_onnx(net: TypeNet, path: Path, crop_px: int) -> None:
    """Dynamic batch, fixed crop side (the card's crop_px); the geometry as a second input where the
    net reads it."""
    batch = torch.export.Dim("N", min=1, max=4096)
    inputs: tuple[torch.Tensor, ...] = (torch.rand(2, CHANNELS, crop_px, crop_px),)
    names, shapes = [TYPES_INPUT_NAME], {"crops": {0: batch}}
    if net.n_geometry:
        inputs += (torch.rand(2, net.n_geometry),)
        names.append(TYPES_GEOMETRY_NAME)
        shapes["geometry"] = {0: batch}
    torch.onnx.export(
        Probabilities(net).eval(),
        inputs,
        str(path),
        input_names=names,
        output_names=[TYPES_OUTPUT_NAME],
        dynamo=True,
        opset_version=OPSET,
        external_data=False,
        dynamic_shapes=shapes,
        verbose=False,
    )


def parity(net: TypeNet, session_probabilities, crops: np.ndarray, geometry: np.ndarray) -> float:
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(crops), as_input(net, geometry)), dim=1).numpy()
    got = session_probabilities(crops, geometry)
    diff = float(np.abs(got - expected).max())
    if diff > PARITY_TOLERANCE or not np.array_equal(got.argmax(1), expected.argmax(1)):
        raise TrainingError(
            f"type head export parity failed: onnxruntime differs from torch by {diff:.3g} "
            f"(tolerance {PARITY_TOLERANCE:g}) or picks another type"
        )
    return diff


def export_types(run_dir: Path, model_dir: Path, *, command: str) -> TypeHeadRecord:
    """Add the run's type head to the model in ``model_dir``; nothing changes unless parity holds."""
    net, record, crops, geometry = load_types_run(run_dir)
    model_dir = Path(model_dir)
    try:
        card = verify_files(model_dir)
    except ModelRefused as exc:
        raise TrainingError(f"{exc}: a type head is exported into an existing model folder") from exc
    tmp = model_dir / f".{TYPES_FILE}.tmp"
    try:
        export_onnx(net, tmp, record["crop_px"])
        head = TypeHeadRecord(
            types=record["types"],
            onnx_file=TYPES_FILE,
            onnx_sha256=sha256_file(tmp),
            crop_px=record["crop_px"],
            geometry=list(GEOMETRY) if net.n_geometry else [],
            min_confidence=record["min_confidence"],
            data=record["data"],
            held_out_accuracy=record["held_out_accuracy"],
            held_out_regions=record["held_out_regions"],
            training_command=record["command"],
            export_command=command,
        )
        trial = card.model_copy(update={"type_head": head.model_copy(update={"onnx_file": tmp.name})})
        classifier = load_type_classifier(model_dir, trial, threads=2)
        head.max_abs_diff_parity = parity(net, classifier.probabilities, crops, geometry)
        write_bytes_atomic(model_dir / TYPES_FILE, tmp.read_bytes())  # the compared bytes, fsynced
    finally:
        tmp.unlink(missing_ok=True)
    card.type_head = head
    write_card(card, model_dir)
    return head
