"""qc eval --report DIR: ROC and PR curves, a gallery of the worst misses and false alarms, and
F1 at the threshold and recall per defect type in the JSON, with the real tiny dark-spot model."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc.eval_report import pick_gallery, pr_curve, write_report
from qc.evaluate import evaluate_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def spot_dataset(tmp_path, rng):
    """Light fabric; 'stain' defects are dark (the model catches them), 'faint' ones are not (missed);
    one good image has a dark speck (a false alarm)."""
    root = tmp_path / "ds"

    def fabric():
        return rng.integers(150, 230, (64, 96, 3), dtype=np.uint8)

    def write(path, array):
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), array)

    for i in range(3):
        image = fabric()
        if i == 0:
            image[30:36, 40:46] = 0
        write(root / "test" / "good" / f"{i}.png", image)
    for kind, value in (("stain", 0), ("faint", 120)):
        for i in range(2):
            image, mask = fabric(), np.zeros((64, 96), np.uint8)
            image[10 + 20 * i : 18 + 20 * i, 20:28] = value
            mask[10 + 20 * i : 18 + 20 * i, 20:28] = 255
            write(root / "test" / kind / f"{i}.png", image)
            write(root / "ground_truth" / kind / f"{i}_mask.png", mask)
    return root


def test_pick_gallery_puts_errors_first_then_closest_calls():
    entries = [
        {"path": "g1", "type": "good", "score": 0.9},
        {"path": "g2", "type": "good", "score": 0.1},
        {"path": "d1", "type": "hole", "score": 0.2},
        {"path": "d2", "type": "hole", "score": 0.8},
    ]
    picked = pick_gallery(entries, threshold=0.5)
    assert [e["path"] for e in picked["misses"]] == ["d1", "d2"]
    assert [e["closest_call"] for e in picked["misses"]] == [False, True]
    assert [e["path"] for e in picked["false_alarms"]] == ["g1", "g2"]
    assert [e["closest_call"] for e in picked["false_alarms"]] == [False, True]


def test_pr_curve_of_a_perfect_ranking_keeps_precision_one():
    recall, precision = pr_curve(np.array([0.9, 0.8, 0.1]), np.array([True, True, False]))
    assert recall.tolist() == [0.5, 1.0, 1.0] and precision.tolist() == [1.0, 1.0, 2 / 3]


def test_report_folder_has_curves_gallery_and_figures(tiny_model_dir, spot_dataset, tmp_path):
    report = evaluate_model(tiny_model_dir, spot_dataset)
    assert report["recall_per_type"] == {"faint": 0.0, "stain": 1.0}
    assert report["false_reject_rate"] == pytest.approx(1 / 3)
    # 2 caught, 2 missed, 1 false alarm: precision 2/3, recall 1/2
    assert report["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    out = write_report(report, tiny_model_dir, tmp_path / "report")
    for name in ("roc.png", "pr.png", "gallery.png"):
        picture = cv2.imread(str(out / name))
        assert picture is not None and picture.shape[0] > 100, name
    saved = json.loads((out / "report.json").read_text())
    assert sorted(Path(p).parent.name for p in saved["gallery"]["misses"][:2]) == ["faint", "faint"]
    assert Path(saved["gallery"]["false_alarms"][0]).name == "0.png"
    # gallery: 4 defect rows + 3 good rows, 3 panels each, at 3.2 inches x 80 dpi a row
    assert cv2.imread(str(out / "gallery.png")).shape[0] == pytest.approx(7 * 3.2 * 80, abs=2)


def test_cli_eval_report(tiny_model_dir, spot_dataset, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "qc", "eval", str(tiny_model_dir), "--data", str(spot_dataset),
         "--report", str(tmp_path / "rep")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "report folder" in out.stdout
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"roc.png", "pr.png", "gallery.png", "report.json"}
