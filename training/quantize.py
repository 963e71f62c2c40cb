"""int8 static quantization (QDQ) of an exported model, calibrated on good training images.

onnxruntime's quantizer runs the fp32 graph on calibration tiles to learn activation ranges, then
writes QuantizeLinear/DequantizeLinear pairs around the int8 kernels. The heatmap's sigmoid output
stays fp32-shaped, so the contract (names, shapes, 0..1 values) is unchanged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qc.inference import to_input_tensor


class _TileReader:
    """onnxruntime CalibrationDataReader over uint8 RGB tiles, one tile per call."""

    def __init__(self, input_name: str, tiles: np.ndarray):
        self._input_name = input_name
        self._tiles: Iterator[np.ndarray] = iter(tiles)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tile = next(self._tiles, None)
        return None if tile is None else {self._input_name: to_input_tensor(tile[None])}

    def rewind(self) -> None:  # not needed by MinMax calibration; kept for the reader protocol
        pass


def quantize_int8(src_onnx: Path, dst_onnx: Path, calibration_tiles: np.ndarray) -> Path:
    """Write an int8 QDQ copy of ``src_onnx`` calibrated on (N, T, T, 3) uint8 good tiles."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from qc.contract import INPUT_NAME

    if len(calibration_tiles) == 0:
        raise ValueError("int8 calibration needs at least one good tile")
    reader = _TileReader(INPUT_NAME, calibration_tiles)
    CalibrationDataReader.register(_TileReader)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and graph clean-up first, as onnxruntime recommends before quantizing.
        quant_pre_process(str(src_onnx), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(dst_onnx),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # Only convolutions: norms, resizes and the sigmoid head stay in fp32, where int8
            # costs accuracy for little speed.
            op_types_to_quantize=["Conv"],
        )
    _keep_metadata(src_onnx, dst_onnx)
    return dst_onnx


def _keep_metadata(src_onnx: Path, dst_onnx: Path) -> None:
    """The quantizer writes a new model without the source's metadata (the backbone's name, which a
    station checks against the card): copy it over."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(src_onnx), load_external_data=False).metadata_props}
    if props:
        model = onnx.load(str(dst_onnx))
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(dst_onnx))


AUROC_DROP_LIMIT = 0.005
CALIBRATION_TILES = 64
EVAL_TILES = 64


def _crops(rng: np.random.Generator, images: list[np.ndarray], n: int, tile: int) -> np.ndarray:
    from qc.tiling import TileGrid

    out = []
    for i in range(n):
        image = images[i % len(images)]
        grid = TileGrid.for_image(image.shape[0], image.shape[1], tile, 0)
        padded = grid.pad(image)
        y = int(rng.integers(0, padded.shape[0] - tile + 1))
        x = int(rng.integers(0, padded.shape[1] - tile + 1))
        out.append(padded[y : y + tile, x : x + tile])
    return np.stack(out)


def evaluation_tiles(
    run_record: dict, tile: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibration tiles, evaluation tiles, labels) from the run's own images.

    Calibration uses the training images; evaluation uses the held-back good images, half of them
    with a defect drawn by the synthetic renderers, so the int8 check never touches test/.
    """
    from qc.imageio import read_image
    from qc.synth import FABRIC_DEFECTS, apply_defect

    root = Path(run_record["dataset"])
    rng = np.random.default_rng(seed)
    train = [read_image(root / f) for f in run_record["files"]["train"]]
    val = [read_image(root / f) for f in run_record["files"]["val"]]
    calibration = _crops(rng, train, CALIBRATION_TILES, tile)
    good = _crops(rng, val, EVAL_TILES, tile)
    labels = np.arange(EVAL_TILES) % 2 == 1
    tiles = good.copy()
    for i in np.flatnonzero(labels):
        name = FABRIC_DEFECTS[int(rng.integers(len(FABRIC_DEFECTS)))]
        tiles[i], _ = apply_defect(name, good[i], rng)
    return calibration, tiles, labels


def quantize_export(model_dir: Path, run_dir: Path, *, force: bool = False) -> dict:
    """Replace an fp32 export in ``model_dir`` by its int8 version, if accuracy allows.

    Image AUROC is measured before and after on the run's held-back images with synthetic defects;
    a drop over 0.005 is refused (the fp32 model stays) unless ``force``. Both figures go into the
    card either way, with how the model was quantized.
    """
    import json
    import shutil

    from qc.card import load_card, sha256_file, write_card
    from qc.inference import Inferencer
    from qc.metrics import auroc
    from training.config import TrainingError

    model_dir, run_dir = Path(model_dir), Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    card = load_card(model_dir)
    calibration, tiles, labels = evaluation_tiles(record, card.input.tile_px, seed=card.training.seed)
    fp32_scores = Inferencer(model_dir, threads=2).infer_tiles(tiles)[1]
    with tempfile.TemporaryDirectory() as tmp:
        int8_dir = Path(tmp) / card.version
        int8_dir.mkdir()
        quantize_int8(model_dir / card.onnx_file, int8_dir / card.onnx_file, calibration)
        int8_card = card.model_copy(deep=True)
        int8_card.onnx_sha256 = sha256_file(int8_dir / card.onnx_file)
        write_card(int8_card, int8_dir)
        int8_scores = Inferencer(int8_dir, threads=2).infer_tiles(tiles)[1]
        before, after = auroc(fp32_scores, labels), auroc(int8_scores, labels)
        report = {
            "auroc_fp32": before,
            "auroc_int8": after,
            "drop": before - after,
            "eval_tiles": int(len(tiles)),
            "calibration_tiles": int(len(calibration)),
        }
        card.metrics.update({"synthetic_image_auroc_fp32": before, "synthetic_image_auroc_int8": after})
        if before - after > AUROC_DROP_LIMIT and not force:
            write_card(card, model_dir)  # keep fp32, but record why int8 was refused
            raise TrainingError(
                f"int8 loses {before - after:.4f} image AUROC ({before:.4f} -> {after:.4f}) on the "
                f"run's held-back images, more than {AUROC_DROP_LIMIT}; the fp32 model is kept "
                "(use --force to export int8 anyway)"
            )
        shutil.copyfile(int8_dir / card.onnx_file, model_dir / card.onnx_file)
    card.onnx_sha256 = sha256_file(model_dir / card.onnx_file)
    card.quantization = (
        f"int8 static QDQ (onnxruntime; Conv weights per channel int8, activations uint8), "
        f"calibrated on {len(calibration)} good training tiles; image AUROC on held-back "
        f"synthetic-defect tiles {before:.4f} fp32 -> {after:.4f} int8"
    )
    write_card(card, model_dir)
    return report
