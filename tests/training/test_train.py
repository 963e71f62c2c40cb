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
    from training.hard_negatives import mine_hard_negatives

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


def test_a_step_paced_run_ignores_the_clock_and_repeats_exactly(monkeypatch):
    # Searches and validations every few steps, a budget that would have stopped a time-paced run
    # at once, and a slow first run: the step schedule makes the same network both times.
    import time

    import training.train as loop
    from training.config import AnomalyConfig
    from training.validation import build_validation_set

    search = loop.mine_hard_negatives

    def run(pause_s: float):
        config = tiny_config(steps=24, time_budget_s=0.001, schedule="steps", validate_every_steps=5)
        config.data.hard_negative_fraction, config.data.hard_negative_every_steps = 0.5, 7
        config.export.tile_px, config.export.overlap_px = 64, 16
        data, drawn, searched_after = batches(config), [], []
        draw = data.next_batch_with_weak
        data.next_batch_with_weak = lambda size: (drawn.append(1), time.sleep(pause_s), draw(size))[2]
        monkeypatch.setattr(loop, "mine_hard_negatives", lambda *a: (searched_after.append(len(drawn)), search(*a)))
        validation = build_validation_set(
            [striped_fabric(np.random.default_rng(9))], crops=8, crop_px=32, anomalies=AnomalyConfig(), seed=0
        )
        result = train_network(config, data, device=torch.device("cpu"), log=lambda _: None, validation=validation)
        return result, searched_after

    (slow, slow_searches), (fast, fast_searches) = run(0.02), run(0.0)
    assert slow.stopped_by == fast.stopped_by == "steps" and slow.steps_done == fast.steps_done == 24
    assert [v["step"] for v in slow.validations] == [v["step"] for v in fast.validations] == [5, 10, 15, 20, 24]
    assert slow_searches == fast_searches == [7, 14, 21]  # after that many steps, however long they took
    for name, weight in slow.net.state_dict().items():
        assert torch.equal(weight, fast.net.state_dict()[name]), name


def test_a_time_paced_run_still_stops_at_its_budget_with_steps_paced_options_beside():
    config = tiny_config(steps=10_000, time_budget_s=0.5, schedule="time", validate_every_steps=1)
    result = train_network(config, batches(config), device=torch.device("cpu"), log=lambda _: None)
    assert result.stopped_by == "time_budget" and result.steps_done < 10_000
