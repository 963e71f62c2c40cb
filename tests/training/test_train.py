from __future__ import annotations

import json

import numpy as np
import torch

from training.config import AnomalyConfig, DataConfig, NetConfig, OptimConfig, TrainConfig
from training.data import AnomalyBatches
from training.train import learning_rate, train_network

from .conftest import striped_fabric


def tiny_config(**optim) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(crop_px=32, anomaly_probability=0.7),
        net=NetConfig(base_channels=4, channel_multipliers=[1, 2]),
        optim=OptimConfig(batch_size=8, log_every_s=100, **optim),
    )


def batches(config: TrainConfig) -> AnomalyBatches:
    rng = np.random.default_rng(0)
    return AnomalyBatches([striped_fabric(rng) for _ in range(4)], config.data, AnomalyConfig(), rng)


def test_a_few_dozen_steps_reduce_the_loss():
    config = tiny_config(steps=60, lr=0.01)
    result = train_network(config, batches(config), device=torch.device("cpu"), log=lambda _: None)
    assert result.steps_done == 60 and result.stopped_by == "steps"
    assert np.mean(result.losses[-10:]) < 0.9 * np.mean(result.losses[:10])
    assert not result.net.training


def test_time_budget_stops_training():
    config = tiny_config(steps=10_000, time_budget_s=0.5)
    lines = []
    result = train_network(config, batches(config), device=torch.device("cpu"), log=lines.append)
    assert result.stopped_by == "time_budget" and result.steps_done < 10_000
    assert any("time budget" in line for line in lines)


def test_learning_rate_warms_up_then_decays():
    optim = OptimConfig(lr=1.0, warmup_fraction=0.1)
    assert learning_rate(0.05, optim) < learning_rate(0.1, optim) == 1.0
    assert learning_rate(0.5, optim) > learning_rate(0.99, optim) >= 0.02


def test_run_writes_checkpoint_and_record_without_reading_test(tiny_run, tiny_dataset):
    # tiny_dataset's test/ and ground_truth/ hold undecodable files: reading them would have failed.
    assert (tiny_run / "checkpoint.pt").is_file()
    record = json.loads((tiny_run / "run.json").read_text())
    for key in ("config", "dataset", "dataset_fingerprint", "started_at", "duration_s", "hardware", "seed", "command"):
        assert key in record, key
    assert record["command"] == "qc train (tests)" and record["seed"] == 3
    assert len(record["dataset_fingerprint"]) == 64
    assert record["training"]["steps_done"] == 4
    assert len(record["files"]["val"]) == 2 and len(record["files"]["train"]) == 6
    assert all(name.startswith("train/good/") for name in record["files"]["train"] + record["files"]["val"])
    thresholds = record["calibration"]["thresholds"]
    assert thresholds["pixel"] >= 0.5 and thresholds["calibration"]["n_images"] == 2 + 6  # held back + trained on
    checkpoint = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["net"]["base_channels"] == 4


def test_progress_goes_to_stderr(tmp_path, tiny_dataset, tiny_config_path, capsys):
    from training.commands import run_train

    run_train(tiny_config_path, tiny_dataset, tmp_path / "run", ["optim.steps=2"], command="qc train")
    captured = capsys.readouterr()
    assert "step 2/2" in captured.err and "ETA" in captured.err and captured.out == ""


def test_hard_negatives_are_found_where_the_network_fires_on_good_images():
    from training.net import DefectUNet
    from training.train import mine_hard_negatives

    config = tiny_config()
    config.export.tile_px, config.export.overlap_px = 64, 16
    feed = batches(config)
    net = DefectUNet(config.net)
    torch.nn.init.constant_(net.head.bias, 3.0)  # fires everywhere
    mine_hard_negatives(net, feed, config)
    assert feed.hard_spots and {i for i, _, _ in feed.hard_spots} == set(range(len(feed.images)))
    assert all(0 <= y < 64 and 0 <= x < 80 for _, y, x in feed.hard_spots)
    torch.nn.init.constant_(net.head.bias, -9.0)  # fires nowhere
    mine_hard_negatives(net, feed, config)
    assert feed.hard_spots == []
