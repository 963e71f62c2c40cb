"""Shared fixtures: seeded rng, a tiny hand-built ONNX model with a valid card, the shipped model."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real dev data sit beside the checkout (../shared/data), outside the repository; tests that
# need them skip without them. $QC_SHARED_DATA points elsewhere. The one place that names them.
SHARED_DATA = Path(os.environ.get("QC_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
AITEX_DEV = SHARED_DATA / "aitex-dev"


def build_dark_spot_model(model_dir: Path, *, tile_px: int = 64, overlap_px: int = 16) -> Path:
    """Write a tiny but real exported model: heatmap = clip((0.25 - mean_rgb) * 4, 0, 1).

    It marks dark pixels as defects, so tests can draw a dark blob and know where the heatmap must
    light up. Built with onnx.helper (no torch), with the same contract and card as a trained model.
    """
    import onnx
    from onnx import TensorProto, helper

    from qc.card import (
        Calibration,
        ExportParity,
        InputSpec,
        ModelCard,
        Thresholds,
        TilingSpec,
        TrainingRecord,
        sha256_file,
        write_card,
    )
    from qc.contract import INPUT_NAME, MODEL_FILE, OUTPUT_NAMES

    heat_name, score_name = OUTPUT_NAMES
    const = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, [], [v])  # noqa: E731
    nodes = [
        helper.make_node("ReduceMean", [INPUT_NAME], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["quarter", "mean"], ["dark"]),
        helper.make_node("Mul", ["dark", "four"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "zero", "one"], [heat_name]),
        helper.make_node("ReduceMax", [heat_name], [score_name], axes=[1, 2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "dark_spot",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info(heat_name, TensorProto.FLOAT, ["N", 1, "H", "W"]),
            helper.make_tensor_value_info(score_name, TensorProto.FLOAT, ["N"]),
        ],
        initializer=[const("quarter", 0.25), const("four", 4.0), const("zero", 0.0), const("one", 1.0)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    model_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(model_dir / MODEL_FILE))
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    card = ModelCard(
        name=model_dir.parent.name,
        version=model_dir.name,
        created_at=now,
        onnx_sha256=sha256_file(model_dir / MODEL_FILE),
        opset=17,
        input=InputSpec(tile_px=tile_px),
        tiling=TilingSpec(tile_px=tile_px, overlap_px=overlap_px),
        thresholds=Thresholds(
            image=0.5,
            pixel=0.5,
            calibration=Calibration(method="fixed-for-tests", data="none", n_images=0),
        ),
        training=TrainingRecord(
            command="tests/conftest.py build_dark_spot_model",
            dataset="none",
            dataset_fingerprint="none",
            started_at=now,
            duration_s=0.0,
            hardware="none",
            seed=0,
        ),
        parity=ExportParity(
            max_abs_diff_heatmap=0.0, max_abs_diff_score=0.0, n_images=0, verdicts_identical=True
        ),
    )
    write_card(card, model_dir)
    return model_dir


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_dark_spot_model(tmp_path_factory.mktemp("models") / "dark_spot" / "1.0.0")


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The model that ships in models/default (the highest version present)."""
    versions = sorted(p for p in (REPO_ROOT / "models" / "default").glob("*/model.json"))
    if not versions:
        pytest.fail("models/default/<version>/model.json is missing: the repository ships one")
    return versions[-1].parent
