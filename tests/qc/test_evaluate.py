import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc.data import DatasetError
from qc.evaluate import evaluate_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dark_spot_dataset(tmp_path, rng):
    """Light fabric; 'stain' images carry a dark spot the tiny model finds, 'faint' ones a spot
    too light for it: so recall per type and the pixel metrics have something to tell apart."""
    root = tmp_path / "ds"

    def fabric():
        return rng.integers(150, 230, (80, 120, 3), dtype=np.uint8)

    for i in range(4):
        path = root / "test" / "good" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), fabric())
    for kind, value in (("stain", 0), ("faint", 120)):
        for i in range(3):
            image, mask = fabric(), np.zeros((80, 120), np.uint8)
            y, x = 10 + 15 * i, 20 + 25 * i
            image[y : y + 8, x : x + 8] = value
            mask[y : y + 8, x : x + 8] = 255
            for sub, array in ((root / "test" / kind, image), (root / "ground_truth" / kind, mask)):
                sub.mkdir(parents=True, exist_ok=True)
                name = f"{i}.png" if sub.parts[-2] == "test" else f"{i}_mask.png"
                cv2.imwrite(str(sub / name), array)
    return root


def test_eval_measures_image_and_pixel_metrics(tiny_model_dir, dark_spot_dataset):
    report = evaluate_model(tiny_model_dir, dark_spot_dataset)
    assert report["images"] == {"good": 4, "defect": 6}
    assert report["recall_per_type"] == {"faint": 0.0, "stain": 1.0}
    assert report["false_reject_rate"] == 0.0
    # good images score 0; faint spots also 0: ties with good give AUROC 0.5 for half the defects
    assert report["image_auroc"] == pytest.approx(0.75)
    assert 0.5 < report["pixel_auroc"] < 1.0 and 0.0 < report["aupro"] < 1.0
    assert report["defect_regions"] == 6


def test_eval_needs_a_test_split(tiny_model_dir, tmp_path, rng):
    (tmp_path / "ds" / "train" / "good").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "ds" / "train" / "good" / "0.png"), rng.integers(0, 255, (8, 8), dtype=np.uint8))
    with pytest.raises(DatasetError, match="no test/ images"):
        evaluate_model(tiny_model_dir, tmp_path / "ds")


def test_cli_eval_writes_json(tiny_model_dir, dark_spot_dataset, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "qc", "eval", str(tiny_model_dir), "--data", str(dark_spot_dataset),
         "--json", str(tmp_path / "r.json")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "image_auroc" in out.stdout
    assert json.loads((tmp_path / "r.json").read_text())["images"]["defect"] == 6


def test_eval_can_record_its_figures_in_the_card(tiny_model_dir, dark_spot_dataset, tmp_path):
    import shutil

    from qc.card import load_card, verify_files
    from qc.evaluate import record_in_card

    model = tmp_path / "m" / "1"
    shutil.copytree(tiny_model_dir, model)
    report = evaluate_model(model, dark_spot_dataset)
    record_in_card(model, report)
    card = verify_files(model)  # the onnx file is untouched
    assert card.metrics["image_auroc"] == pytest.approx(0.75) and "4 good, 6 defect" in card.metrics_data
    assert load_card(tiny_model_dir).metrics == {}


def test_eval_records_several_datasets_side_by_side(tiny_model_dir, dark_spot_dataset, tmp_path):
    import shutil

    from qc.card import verify_files
    from qc.evaluate import record_in_card

    model = tmp_path / "m" / "1"
    shutil.copytree(tiny_model_dir, model)
    report = evaluate_model(model, dark_spot_dataset)
    record_in_card(model, report)
    record_in_card(model, {**report, "image_auroc": 0.5}, prefix="aitex-00")
    record_in_card(model, {**report, "image_auroc": 0.6}, prefix="aitex-00")  # a re-run replaces
    card = verify_files(model)
    assert card.metrics["image_auroc"] == pytest.approx(0.75)
    assert card.metrics["aitex-00.image_auroc"] == pytest.approx(0.6)
    assert card.metrics_data.startswith("test/ of") and card.metrics_data.count("aitex-00: ") == 1
    with pytest.raises(ValueError, match="prefix"):
        record_in_card(model, report, prefix="../x")
