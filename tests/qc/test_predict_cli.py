"""`qc predict` and the CLI's own behaviour, run as a user runs them: a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def qc(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "qc", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


def _write_images(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = np.full((256, 700, 3), 210, np.uint8)  # wider than a tile: exercises tiling
    bad = good.copy()
    bad[100:120, 400:430] = 0
    cv2.imwrite(str(folder / "good.png"), good)
    cv2.imwrite(str(folder / "bad.png"), bad)
    return folder / "good.png", folder / "bad.png"


def test_help_lists_every_subcommand():
    out = qc("--help")
    assert out.returncode == 0
    for name in ("synth", "train", "export", "predict", "edge"):
        assert name in out.stdout



def test_synth_writes_one_fabric_and_names_an_unknown_one(tmp_path):
    out = qc("synth", "--out", tmp_path / "twill", "--count", 2, "--size", 32, "--fabrics", "twill")
    assert out.returncode == 0, out.stderr
    assert "'fabrics': ['twill']" in out.stdout
    assert len(list((tmp_path / "twill" / "train" / "good").glob("*.png"))) == 2
    out = qc("synth", "--out", tmp_path / "roll", "--count", 2, "--size", 32, "--fabrics", "twill", "--one-style")
    assert out.returncode == 0, out.stderr
    assert "'one_style': True" in out.stdout
    out = qc("synth", "--out", tmp_path / "bad", "--count", 2, "--size", 32, "--fabrics", "twill,tweed")
    assert out.returncode != 0
    assert "unknown fabric 'tweed'" in out.stderr and "twill" in out.stderr
    assert not (tmp_path / "bad").exists()


def test_synth_web_edges_is_a_share_and_a_bad_one_is_named(tmp_path):
    out = qc("synth", "--out", tmp_path / "web", "--count", 4, "--size", 32, "--web-edges", 0.5)
    assert out.returncode == 0, out.stderr
    assert "'web_edges': 0.5" in out.stdout
    out = qc("synth", "--out", tmp_path / "bad", "--count", 2, "--size", 32, "--web-edges", 50)
    assert out.returncode != 0
    assert "web_edges is a share of the good tiles, 0 to 1; got 50" in out.stderr
    assert not (tmp_path / "bad").exists()


def test_predict_writes_results_overlays_and_heatmaps(tiny_model_dir, tmp_path):
    good, bad = _write_images(tmp_path / "in")
    out = qc("predict", tiny_model_dir, good, bad, "--out", tmp_path / "out", "--save-heatmaps")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(l) for l in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    by_name = {Path(r["path"]).name: r for r in lines}
    assert by_name["good.png"]["verdict"] == "pass" and by_name["good.png"]["defects"] == []
    failing = by_name["bad.png"]
    assert failing["verdict"] == "fail"
    assert failing["defects"][0]["box"] == [400, 100, 30, 20]
    heat = np.load(failing["heatmap"])
    assert heat.shape == (256, 700) and heat.dtype == np.float32
    assert cv2.imread(failing["overlay"]).shape == (256, 700, 3)


def test_predict_reports_bad_files_processes_the_rest_and_fails(tiny_model_dir, tmp_path):
    good, _ = _write_images(tmp_path / "in")
    corrupt = tmp_path / "in" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    missing = tmp_path / "in" / "missing.png"
    out = qc("predict", tiny_model_dir, corrupt, missing, good, "--out", tmp_path / "out")
    assert out.returncode != 0
    assert "corrupt.png" in out.stderr and "missing.png" in out.stderr
    lines = [json.loads(l) for l in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [("error" in r) for r in lines] == [True, True, False]
    assert lines[2]["verdict"] == "pass"


def test_predict_accepts_a_folder(tiny_model_dir, tmp_path):
    _write_images(tmp_path / "in")
    out = qc("predict", tiny_model_dir, tmp_path / "in", "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 2


def test_predict_refuses_a_folder_without_a_model(tmp_path):
    out = qc("predict", tmp_path, tmp_path, "--out", tmp_path / "out")
    assert out.returncode == 2 and "model refused" in out.stderr
