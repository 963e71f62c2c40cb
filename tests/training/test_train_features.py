"""Training features around the optimisation step: checkpoint and resume, TensorBoard, early stopping,
labelled defects from train/, augmentation presets, recall calibration, DDP through torchrun, and
the bad inputs issue #4 names. Tiny networks and a dozen steps: seconds, never a real training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import TrainConfig, TrainingError

from .conftest import fires_on_bright, striped_fabric, write_png, write_tiny_dataset

REPO = Path(__file__).resolve().parents[2]

FEATURE_CONFIG = """
seed: 5
data: {crop_px: 32, val_fraction: 0.25, min_val_images: 2, hard_negative_fraction: 0.0, validation_crops: 8}
net: {base_channels: 4, channel_multipliers: [1, 2], score_pool_px: 3}
optim: {batch_size: 4, steps: 12, time_budget_s: 3600, lr: 0.003, log_every_s: 0.000001,
        checkpoint_every_s: 0.000001, validate_every_s: 0.000001}
export: {tile_px: 64, overlap_px: 16, opset: 18}
"""


class PowerCut(Exception):
    """Raised from the log seam to stop a run mid-way, as a crash would."""


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "features.yaml"
    path.write_text(FEATURE_CONFIG, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "fabric", n_good=6, seed=1)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, config_path, dataset) -> Path:
    from training.commands import run_train

    return run_train(config_path, dataset, tmp_path_factory.mktemp("runs") / "full", [], "qc train (full)")


def interrupted_run(out: Path, config_path: Path, dataset: Path, monkeypatch, at_step: int = 6) -> Path:
    """Train until the progress line of ``at_step``, then 'lose power'."""
    import training.commands as commands

    def crashing_log(line: str) -> None:
        if line.startswith(f"step {at_step}/"):
            raise PowerCut(line)

    monkeypatch.setattr(commands, "log", crashing_log)
    with pytest.raises(PowerCut):
        commands.run_train(config_path, dataset, out, [], "qc train (crashes)")
    monkeypatch.undo()
    return out


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["state_dict"]


# --- checkpoint and resume -------------------------------------------------------------------------


def test_resume_after_a_crash_reaches_the_same_weights(tmp_path, config_path, dataset, full_run, monkeypatch):
    from training.commands import run_train

    run = interrupted_run(tmp_path / "run", config_path, dataset, monkeypatch)
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    assert payload["finished"] is False and payload["step"] == 5  # written before step 6 began
    assert not (run / "run.json").exists()
    assert not list(run.glob(".*.tmp"))  # written atomically: no temporary file left behind

    run_train(config_path, dataset, run, [], "qc train --resume", resume=True)
    record = json.loads((run / "run.json").read_text())
    assert record["training"]["resumed_from_step"] == 5 and record["training"]["steps_done"] == 12
    full, resumed = weights(full_run), weights(run)
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert record["calibration"] == json.loads((full_run / "run.json").read_text())["calibration"]


def test_resume_from_another_architecture_names_the_keys(tmp_path, config_path, dataset, monkeypatch):
    from training.commands import run_train

    run = interrupted_run(tmp_path / "run", config_path, dataset, monkeypatch, at_step=3)
    expected = r"another network architecture.*net\.base_channels: 4 in the checkpoint, 8 now"
    with pytest.raises(TrainingError, match=expected):
        run_train(config_path, dataset, run, ["net.base_channels=8"], "qc train", resume=True)
    with pytest.raises(TrainingError, match=r"net\.channel_multipliers"):  # resume=true in the config works too
        run_train(config_path, dataset, run, ["net.channel_multipliers=[1,3]", "resume=true"], "qc train")
    # How the station runs the weights is no architecture: a run may resume with other test-time flips.
    run_train(config_path, dataset, run, ["net.test_time_flips=all"], "qc train", resume=True)
    assert json.loads((run / "run.json").read_text())["config"]["net"]["test_time_flips"] == "all"


def test_an_unfinished_run_is_not_overwritten_and_a_finished_one_not_resumed(
    tmp_path, config_path, dataset, full_run, monkeypatch
):
    from training.commands import run_train

    run = interrupted_run(tmp_path / "run", config_path, dataset, monkeypatch, at_step=2)
    with pytest.raises(TrainingError, match="unfinished run.*--resume"):
        run_train(config_path, dataset, run, [], "qc train")
    with pytest.raises(TrainingError, match="has finished"):
        run_train(config_path, dataset, full_run, [], "qc train", resume=True)
    with pytest.raises(TrainingError, match="does not exist"):
        run_train(config_path, dataset, tmp_path / "nothing", [], "qc train", resume=True)


@pytest.mark.slow
def test_cli_resume_flag(tmp_path, config_path, dataset, monkeypatch):
    run = interrupted_run(tmp_path / "run", config_path, dataset, monkeypatch, at_step=4)
    out = subprocess.run(
        [sys.executable, "-m", "qc", "train", "--config", str(config_path), "--data", str(dataset),
         "--out", str(run), "--resume"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert "resumed at step 3/12" in out.stderr
    assert json.loads((run / "run.json").read_text())["training"]["resumed_from_step"] == 3


# --- weights a run starts from (optim.init_weights) ------------------------------------------------------


def test_a_run_starts_from_another_runs_weights(tmp_path, config_path, dataset, full_run):
    from qc.card import sha256_file
    from training.commands import run_train

    source = full_run / "checkpoint.pt"
    # A learning rate too small to move anything: what the run ends with is what it started from.
    still = ["seed=9", "optim.lr=1e-12", "optim.weight_decay=0"]
    started = run_train(config_path, dataset, tmp_path / "from", [*still, f"optim.init_weights={source}"], "qc train")
    fresh = run_train(config_path, dataset, tmp_path / "fresh", still, "qc train")
    given, kept, random_start = weights(full_run), weights(started), weights(fresh)
    floats = [k for k in given if given[k].dtype.is_floating_point and given[k].numel() > 1]
    assert all(torch.allclose(kept[k], given[k], atol=1e-5) for k in floats)
    assert not all(torch.allclose(random_start[k], given[k], atol=1e-2) for k in floats)
    record = json.loads((started / "run.json").read_text())
    assert record["init_weights"] == {"path": str(source), "sha256": sha256_file(source)}
    assert json.loads((fresh / "run.json").read_text())["init_weights"] is None


def test_init_weights_of_another_network_or_no_weights_are_refused(tmp_path, config_path, dataset, full_run):
    from training.commands import run_train

    source = full_run / "checkpoint.pt"
    wider = [f"optim.init_weights={source}", "net.base_channels=8"]
    shape = r"does not match the network.*shape differs: context.0.weight \(8, 8, 3, 3\) vs \(16, 16, 3, 3\)"
    with pytest.raises(TrainingError, match=shape):
        run_train(config_path, dataset, tmp_path / "wider", wider, "qc train")
    deeper = [f"optim.init_weights={source}", "net.channel_multipliers=[1,2,3]"]
    with pytest.raises(TrainingError, match=r"does not match the network.*missing "):
        run_train(config_path, dataset, tmp_path / "deeper", deeper, "qc train")
    with pytest.raises(TrainingError, match="optim.init_weights: no file at"):
        run_train(config_path, dataset, tmp_path / "none", [f"optim.init_weights={tmp_path / 'nope.pt'}"], "qc train")
    not_weights = tmp_path / "notes.pt"
    torch.save({"note": "no tensors here"}, not_weights)
    with pytest.raises(TrainingError, match="holds no state dict"):
        run_train(config_path, dataset, tmp_path / "notes", [f"optim.init_weights={not_weights}"], "qc train")
    text = tmp_path / "text.pt"
    text.write_text("not a torch file")
    with pytest.raises(TrainingError, match="cannot be loaded as torch weights"):
        run_train(config_path, dataset, tmp_path / "text", [f"optim.init_weights={text}"], "qc train")


# --- TensorBoard, progress, validation ----------------------------------------------------------------


def test_tensorboard_holds_loss_lr_and_the_validation_signal(full_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(full_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "validation/signal", "validation/pixel_ap", "validation/image_auroc"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 13))
    record = json.loads((full_run / "run.json").read_text())
    signals = [v["signal"] for v in record["training"]["validations"]]
    assert len(signals) == 12 and all(0.0 <= s <= 1.0 for s in signals)
    assert events.Scalars("validation/signal")[-1].value == pytest.approx(signals[-1])


def test_progress_bar_on_a_terminal_shows_the_eta(capsys):
    from training.train import _Progress

    config = TrainConfig(optim={"steps": 10, "log_every_s": 100})
    bar = _Progress(config.optim, 0, True, log=lambda line: None)
    bar.update(5, 10.0, 0.5, 1e-3)
    bar.close()
    err = capsys.readouterr().err
    assert "5/10" in err and "ETA 0m10s" in err and "loss 0.5000" in err


def tiny_config(**optim) -> TrainConfig:
    return TrainConfig(
        data={"crop_px": 32, "hard_negative_fraction": 0.0},
        net={"base_channels": 4, "channel_multipliers": [1, 2]},
        optim={"batch_size": 4, "log_every_s": 100, "validate_every_s": 1e-6, **optim},
        export={"tile_px": 64, "overlap_px": 16},
    )


def feed_and_validation(config: TrainConfig):
    from training.data import AnomalyBatches
    from training.validation import build_validation_set

    rng = np.random.default_rng(0)
    images = [striped_fabric(rng) for _ in range(4)]
    vset = build_validation_set(images[:2], crops=8, crop_px=32, anomalies=config.anomalies, seed=0)
    return AnomalyBatches(images[2:], config.data, config.anomalies, rng), vset


def test_early_stopping_stops_when_the_signal_stalls():
    from training.train import train_network

    config = tiny_config(steps=50, lr=1e-12, weight_decay=0.0, patience=2)  # weights barely move
    feed, vset = feed_and_validation(config)
    lines = []
    result = train_network(config, feed, device=torch.device("cpu"), log=lines.append, validation=vset)
    assert result.stopped_by == "early_stopping" and result.steps_done == 3
    assert any("early stopping" in line for line in lines)


def test_early_stopping_returns_the_best_weights():
    from training.net import single_pass
    from training.train import train_network
    from training.validation import score_validation

    config = tiny_config(steps=8, lr=0.05, patience=100)
    feed, vset = feed_and_validation(config)
    result = train_network(config, feed, device=torch.device("cpu"), log=lambda _: None, validation=vset)
    best = max(v["signal"] for v in result.validations)
    with single_pass(result.net):  # as training validates
        assert score_validation(result.net, vset)["signal"] == pytest.approx(best)
    assert result.best_step in (None, *[v["step"] for v in result.validations if v["signal"] == best])


def test_validation_set_is_fixed_and_half_anomalous():
    from training.validation import build_validation_set

    rng = np.random.default_rng(0)
    images = [striped_fabric(rng) for _ in range(2)]
    config = TrainConfig()
    a = build_validation_set(images, crops=6, crop_px=32, anomalies=config.anomalies, seed=4)
    b = build_validation_set(images, crops=6, crop_px=32, anomalies=config.anomalies, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.labels.tolist() == [False, True] * 3


# --- labelled defects ----------------------------------------------------------------------------------


def add_labelled_defects(root: Path, *, masked: int = 3, weak: int = 2, seed: int = 9) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(masked):
        image, mask = striped_fabric(rng), np.zeros((64, 80), np.uint8)
        image[20:30, 30:44] = 10
        mask[20:30, 30:44] = 255
        write_png(root / "train" / "stain" / f"{i:03d}.png", image)
        write_png(root / "ground_truth" / "stain" / f"{i:03d}_mask.png", np.repeat(mask[:, :, None], 3, axis=2))
    for i in range(weak):
        image = striped_fabric(rng)
        image[40:46, 10:50] = 250
        write_png(root / "train" / "streak" / f"{i:03d}.png", image)
    return root


def test_labelled_defects_feed_masked_crops_and_weak_positives(tmp_path):
    from training.data import AnomalyBatches, find_labelled_defects, load_defects

    root = add_labelled_defects(write_tiny_dataset(tmp_path / "ds", n_good=3))
    found = find_labelled_defects(root)
    assert [(d.defect_type, d.mask_path is not None) for d in found] == [("stain", True)] * 3 + [("streak", False)] * 2
    config = TrainConfig(data={"crop_px": 32, "real_defect_fraction": 1.0})
    feed = AnomalyBatches([striped_fabric(np.random.default_rng(0))], config.data, config.anomalies,
                          np.random.default_rng(0), defects=load_defects(found))
    images, masks, weak = feed.next_batch_with_weak(64)
    assert weak.any() and (~weak).any()
    assert (masks[~weak].reshape((~weak).sum(), -1).max(axis=1) == 1.0).all()  # every masked crop holds its defect
    assert (masks[weak] == 0).all()  # weak positives have no pixel target
    # their crop sits on the network's hottest spot once one was found
    feed.weak_spots = {3: (43, 30), 4: (43, 30)}
    images, masks, weak = feed.next_batch_with_weak(32)
    bright = images[weak].mean(axis=1) > 0.95
    assert bright.reshape(weak.sum(), -1).any(axis=1).all()


def test_weak_positives_are_left_out_of_the_pixel_loss():
    from training.net import DefectUNet
    from training.train import segmentation_loss, training_loss

    config = tiny_config()
    net = DefectUNet(config.net)
    images = torch.rand(4, 3, 32, 32)
    logits = net.logits(images)
    masks = torch.zeros(4, 1, 32, 32)
    masks[1, :, 5:9, 5:9] = 1
    none = torch.zeros(4, dtype=torch.bool)
    plain = segmentation_loss(logits, masks, config.optim)
    assert torch.equal(training_loss(logits, masks, none, net, config.optim), plain)
    weak = torch.tensor([False, False, True, True])
    other_masks = masks.clone()
    other_masks[2:] = 1  # whatever a weak positive's mask says does not matter
    a = training_loss(logits, masks, weak, net, config.optim)
    assert torch.equal(a, training_loss(logits, other_masks, weak, net, config.optim))
    # the weak term is a BCE of the image score toward 1: its gradient raises the weak crops' scores
    score_before = net.score(torch.sigmoid(logits[2:])).detach()
    net.zero_grad()
    training_loss(net.logits(images), masks, torch.tensor([False, False, True, True]), net, config.optim).backward()
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    assert (net.score(torch.sigmoid(net.logits(images)[2:])) > score_before).all()


def test_recall_calibration_from_labelled_defects_never_reads_test(tmp_path, config_path):
    from training.commands import run_train

    root = add_labelled_defects(write_tiny_dataset(tmp_path / "ds", n_good=6))  # test/ holds undecodable files
    run = run_train(
        config_path, root, tmp_path / "run",
        ["calibration.mode=recall", "calibration.target_recall=0.9", "optim.steps=4"], "qc train",
    )
    record = json.loads((run / "run.json").read_text())
    files = record["files"]
    assert len(files["val_defects"]) == 2 and len(files["train_defects"]) == 3  # 0.3 of 5, rounded
    assert not set(files["val_defects"]) & set(files["train_defects"])
    calibration = record["calibration"]["thresholds"]["calibration"]
    assert calibration["method"].startswith("image: recall >= 0.9 on 2 held-back labelled defect images")
    assert "labelled defect images held back" in calibration["data"] and calibration["target_false_reject_rate"] is None
    assert record["calibration"]["at_threshold"]["recall"] >= 0.9


def test_recall_threshold_is_the_kth_highest_defect_score():
    from training.calibrate import recall_threshold

    scores = np.array([0.9, 0.2, 0.6, 0.4])
    assert recall_threshold(scores, 0.5) == 0.6
    assert recall_threshold(scores, 0.75) == 0.4
    assert recall_threshold(scores, 1.0) == 0.2
    assert np.mean(scores >= recall_threshold(scores, 0.7)) >= 0.7


def test_recall_mode_without_labelled_defects_is_refused(tmp_path, config_path, dataset):
    from training.commands import run_train

    with pytest.raises(TrainingError, match=r"calibration.mode=recall needs labelled defect images"):
        run_train(config_path, dataset, tmp_path / "run", ["calibration.mode=recall"], "qc train")


def test_a_mask_of_the_wrong_size_is_named(tmp_path, config_path):
    from training.commands import run_train

    root = add_labelled_defects(write_tiny_dataset(tmp_path / "ds", n_good=6), weak=0)
    write_png(root / "ground_truth" / "stain" / "001_mask.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(TrainingError, match=r"001_mask.png is 10x10 px but its image .*001.png is 80x64 px"):
        run_train(config_path, root, tmp_path / "run", [], "qc train")


# --- augmentation presets --------------------------------------------------------------------------


def test_augment_presets_are_seeded_mild_and_respect_rotation():
    from training.augment import eval_augmenter, train_augmenter

    assert train_augmenter("none") is None
    crop = striped_fabric(np.random.default_rng(0), 32, 48)
    augment = train_augmenter("default")
    a = [augment(np.random.default_rng(s), crop) for s in range(20)]
    b = [augment(np.random.default_rng(s), crop) for s in range(20)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(x.shape == (48, 32, 3) for x in a) and all(x.dtype == np.uint8 for x in a)
    assert all(abs(float(x.mean()) - float(crop.mean())) < 0.15 * 255 for x in a)  # mild
    fixed = train_augmenter("light", rotate=False)
    assert all(fixed(np.random.default_rng(s), crop).shape == crop.shape for s in range(20))
    assert eval_augmenter()(None, crop) is crop


def test_default_config_keeps_batches_unchanged():
    """data.augment none and no labelled defects: the batch stream is what it was before these features."""
    from training.data import AnomalyBatches, is_blank, train_crop

    config = TrainConfig(data={"crop_px": 32, "anomaly_probability": 0.0, "redraw_blank": 0.0})
    images = [striped_fabric(np.random.default_rng(1))]
    feed = AnomalyBatches(images, config.data, config.anomalies, np.random.default_rng(3))
    expected_rng = np.random.default_rng(3)
    got, _ = feed.next_batch(2)
    expected = []
    for _ in range(2):
        crop = train_crop(expected_rng, images[int(expected_rng.integers(1))], crop_px=32)
        expected_rng.random(), expected_rng.random()  # redraw-blank and anomaly draws
        expected.append(crop)
    assert np.allclose(got, np.stack(expected).transpose(0, 3, 1, 2) / 255.0)
    assert not is_blank(expected[0])


def test_augmentation_runs_inside_training(tmp_path, config_path, dataset):
    from training.commands import run_train

    run = run_train(config_path, dataset, tmp_path / "run", ["data.augment=default", "optim.steps=3"], "qc train")
    assert json.loads((run / "run.json").read_text())["training"]["augment"] == "default"


# --- bad input ----------------------------------------------------------------------------------------


def test_bad_inputs_are_named(tmp_path, config_path, dataset):
    from training.commands import run_train

    empty = tmp_path / "empty"
    (empty / "train" / "good").mkdir(parents=True)
    with pytest.raises(TrainingError, match=r"no good training images .* in .*empty/train/good"):
        run_train(config_path, empty, tmp_path / "r1", [], "qc train")
    with pytest.raises(TrainingError, match=r"optim\.stepz.*unknown key"):
        run_train(config_path, dataset, tmp_path / "r2", ["optim.stepz=3"], "qc train")
    with pytest.raises(TrainingError, match=r"data\.augment"):
        run_train(config_path, dataset, tmp_path / "r3", ["data.augment=heavy"], "qc train")
    aitex = tmp_path / "aitex"
    (aitex / "Defect_images").mkdir(parents=True)
    with pytest.raises(TrainingError, match=r"AITEX layout.*qc data convert"):
        run_train(config_path, aitex, tmp_path / "r4", [], "qc train")
    only_test = tmp_path / "only_test"
    shutil.copytree(dataset / "test", only_test / "test")
    with pytest.raises(TrainingError, match=r"no train/.*train/good"):
        run_train(config_path, only_test, tmp_path / "r5", [], "qc train")
    no_good = tmp_path / "no_good"
    (no_good / "train" / "hole").mkdir(parents=True)
    with pytest.raises(TrainingError, match=r"train/good is missing.*train/ holds hole"):
        run_train(config_path, no_good, tmp_path / "r6", [], "qc train")


# --- several processes --------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, config_path, dataset):
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.fail(f"{torchrun} is missing: torch installs it")
    run = tmp_path / "ddp"
    out = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "qc", "train", "--config", str(config_path),
         "--data", str(dataset), "--out", str(run), "optim.steps=4", "optim.threads=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["training"]["world_size"] == 2 and "2 processes (DDP)" in record["hardware"]
    assert record["training"]["steps_done"] == 4
    assert out.stderr.count("run written to") == 1  # only rank 0 writes and logs
    assert len(list((run / "tensorboard").iterdir())) == 1
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["finished"] is True and not any(k.startswith("module.") for k in checkpoint["state_dict"])


def test_rotate_false_never_turns_a_fabric_with_a_direction():
    from training.data import AnomalyBatches

    rows = np.repeat(np.repeat(np.arange(64, dtype=np.uint8)[:, None] * 3, 80, axis=1)[:, :, None], 3, axis=2)
    for rotate, turned_expected in ((False, False), (True, True)):
        config = TrainConfig(data={"crop_px": 32, "anomaly_probability": 0.0, "rotate": rotate})
        feed = AnomalyBatches([rows], config.data, config.anomalies, np.random.default_rng(0))
        images, _ = feed.next_batch(16)
        turned = [float(np.abs(np.diff(img[0], axis=0)).sum()) == 0.0 for img in images]  # stripes now run down
        assert any(turned) == turned_expected


def test_training_locates_weak_positives_on_the_network_hottest_spot(tmp_path):
    from training.data import AnomalyBatches, find_labelled_defects, load_defects
    from training.train import find_weak_spots, train_network

    root = add_labelled_defects(write_tiny_dataset(tmp_path / "ds", n_good=3), masked=1, weak=2)
    config = tiny_config(steps=3)
    config.data.hard_negative_every_s = 1e-6  # search before every step
    config.data.real_defect_fraction = 0.5
    feed = AnomalyBatches([striped_fabric(np.random.default_rng(0))], config.data, config.anomalies,
                          np.random.default_rng(0), defects=load_defects(find_labelled_defects(root)))
    train_network(config, feed, device=torch.device("cpu"), log=lambda _: None)
    assert sorted(feed.weak_spots) == [1, 2]  # the two image-label-only defects, not the masked one

    feed.weak_spots.clear()
    find_weak_spots(fires_on_bright(), feed, config)
    assert sorted(feed.weak_spots) == [1, 2]
    assert all(40 <= y < 46 and 10 <= x < 50 for y, x in feed.weak_spots.values())


def test_mining_and_validation_run_single_pass_while_the_network_keeps_its_flips(monkeypatch):
    from training.net import SegmentationNet
    from training.train import train_network

    seen: list[str] = []
    forward = SegmentationNet.forward
    monkeypatch.setattr(SegmentationNet, "forward", lambda net, image: (seen.append(net.test_time_flips), forward(net, image))[1])
    config = tiny_config(steps=3)
    config.net.test_time_flips = "vertical"
    config.data.hard_negative_fraction = 0.5
    config.data.hard_negative_every_s = 1e-6  # search before every step
    feed, vset = feed_and_validation(config)
    result = train_network(config, feed, device=torch.device("cpu"), log=lambda _: None, validation=vset)
    assert len(result.validations) == 3 and len(seen) > 3  # both searches ran, through forward
    assert set(seen) == {"none"}
    assert result.net.test_time_flips == "vertical"  # what calibration and export then run
    heatmap = result.net.eval()(torch.rand(1, 3, 32, 32)).heatmap
    assert seen[-1] == "vertical" and heatmap.shape == (1, 1, 32, 32)


def test_a_val_split_of_the_user_calibrates_and_train_good_is_all_trained_on(tmp_path, config_path):
    from training.commands import run_train

    root = add_labelled_defects(write_tiny_dataset(tmp_path / "ds", n_good=4), masked=2, weak=1)
    rng = np.random.default_rng(11)
    for i in range(2):
        write_png(root / "val" / "good" / f"v{i}.png", striped_fabric(rng))
        image, mask = striped_fabric(rng), np.zeros((64, 80, 3), np.uint8)
        image[5:15, 5:25], mask[5:15, 5:25] = 0, 255
        write_png(root / "val" / "stain" / f"v{i}.png", image)
        write_png(root / "ground_truth" / "stain" / f"v{i}_mask.png", mask)
    run = run_train(config_path, root, tmp_path / "run", ["calibration.mode=recall", "optim.steps=2"], "qc train")
    record = json.loads((run / "run.json").read_text())
    files = record["files"]
    assert len(files["train"]) == 4 and files["val"] == ["val/good/v0.png", "val/good/v1.png"]
    assert files["val_defects"] == ["val/stain/v0.png", "val/stain/v1.png"] and len(files["train_defects"]) == 3
    calibration = record["calibration"]["thresholds"]["calibration"]
    assert "2 good images of" in calibration["data"] and "2 labelled defect images of" in calibration["data"]


@pytest.mark.slow
def test_torchrun_resumes_a_single_process_checkpoint(tmp_path, config_path, dataset, monkeypatch):
    run = interrupted_run(tmp_path / "run", config_path, dataset, monkeypatch, at_step=4)
    torchrun = Path(sys.executable).parent / "torchrun"
    out = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "qc", "train", "--config", str(config_path),
         "--data", str(dataset), "--out", str(run), "--resume", "optim.threads=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("resumed at step 3/12") == 1
    assert "resuming with 2 process(es) instead of 1: crops will differ" in out.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["training"]["resumed_from_step"] == 3 and record["training"]["steps_done"] == 12
    assert record["training"]["world_size"] == 2
