"""int8 export on the tiny run: contract kept, accuracy checked, refusal keeps the fp32 model."""

import shutil

import numpy as np
import onnx
import pytest

from qc.card import load_card, verify_files
from qc.inference import Inferencer
from training.config import TrainingError
from training.quantize import quantize_export, quantize_int8


def test_int8_graph_keeps_the_contract(tiny_export, tmp_path, rng):
    tiles = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    out = quantize_int8(tiny_export / "model.onnx", tmp_path / "int8.onnx", tiles)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    with pytest.raises(ValueError, match="at least one"):
        quantize_int8(tiny_export / "model.onnx", tmp_path / "x.onnx", tiles[:0])


def test_quantize_export_records_both_aurocs_in_a_verified_card(tiny_export, tiny_run, tmp_path):
    model_dir = tmp_path / "m" / "1"
    shutil.copytree(tiny_export, model_dir)
    report = quantize_export(model_dir, tiny_run, force=True)
    card = verify_files(model_dir)
    assert card.quantization.startswith("int8 static QDQ")
    assert card.metrics["synthetic_image_auroc_int8"] == pytest.approx(report["auroc_int8"])
    heat = Inferencer(model_dir).infer(np.full((70, 90, 3), 128, np.uint8)).heatmap
    assert heat.shape == (70, 90) and 0.0 <= heat.min() and heat.max() <= 1.0


def test_an_accuracy_drop_is_refused_and_fp32_kept(tiny_export, tiny_run, tmp_path, monkeypatch):
    import training.quantize as quantize

    model_dir = tmp_path / "m" / "1"
    shutil.copytree(tiny_export, model_dir)
    before = (model_dir / "model.onnx").read_bytes()
    monkeypatch.setattr(quantize, "AUROC_DROP_LIMIT", -1.0)  # any result counts as a drop
    with pytest.raises(TrainingError, match="fp32 model is kept"):
        quantize_export(model_dir, tiny_run)
    assert (model_dir / "model.onnx").read_bytes() == before
    card = load_card(model_dir)
    assert card.quantization is None and "synthetic_image_auroc_int8" in card.metrics
    verify_files(model_dir)
