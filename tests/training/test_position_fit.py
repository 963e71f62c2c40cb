"""Training fits a fixed camera's column factors on line-scan strips (qc/position.py), calibrates
with them, the card carries them and the station applies them; other images get none."""

from __future__ import annotations

import json

import numpy as np

from tests.training.conftest import striped_fabric, write_png
from training.commands import run_export, run_train


def write_strips(root, rng, n=8, size=(32, 160)):
    for i in range(n):
        strip = striped_fabric(rng, *size)
        strip[:, 20:26] = 255 - strip[:, 20:26]  # the same odd band in every strip: the station's, not a defect
        write_png(root / "train" / "good" / f"{i:03d}.png", strip)
    return root


def test_line_scan_strips_get_column_factors_that_calibration_card_and_station_share(tmp_path, tiny_config_path):
    from qc.card import verify_files
    from qc.imageio import read_image
    from qc.inference import Inferencer

    rng = np.random.default_rng(1)
    data = write_strips(tmp_path / "strips", rng)
    run = run_train(tiny_config_path, data, tmp_path / "run", [], command="qc train (tests)")
    position = json.loads((run / "run.json").read_text())["calibration"]["position"]
    assert position["width"] == 160 and len(position["scale"]) == 160
    assert all(0.0 < v <= 1.0 for v in position["scale"]) and "trained on" in position["data"]

    model = run_export(run, tmp_path / "models" / "strips" / "0.0.1", name=None, version=None, command="qc export (tests)")
    card = verify_files(model)
    assert card.position is not None and card.position.scale == position["scale"]
    assert card.position.applies_to == position["applies_to"] == "odds"  # calibration.column_factors' default

    strip = read_image(sorted((data / "train" / "good").iterdir())[0])
    with_factors = Inferencer(model).infer(strip)
    (model / "model.json").write_text(  # the same model without them
        json.dumps({**json.loads((model / "model.json").read_text()), "position": None}), encoding="utf-8"
    )
    without = Inferencer(model).infer(strip)
    scale = np.asarray(position["scale"], np.float32)
    assert with_factors.score <= without.score + 1e-6
    if scale.min() < 1.0:  # where a column is quieted, the station's map is quieter there
        quiet = scale < 1.0
        assert with_factors.heatmap[:, quiet].sum() < without.heatmap[:, quiet].sum()


def test_tiles_and_never_get_no_factors(tmp_path, tiny_config_path, tiny_run):
    assert json.loads((tiny_run / "run.json").read_text())["calibration"]["position"] is None  # 64x80 images
    rng = np.random.default_rng(2)
    data = write_strips(tmp_path / "strips", rng)
    run = run_train(tiny_config_path, data, tmp_path / "run", ["calibration.position=never"], command="qc train (tests)")
    assert json.loads((run / "run.json").read_text())["calibration"]["position"] is None
