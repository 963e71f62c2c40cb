"""Searches for hard negatives score a bounded number of tiles, taking the good images in turns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.config import AnomalyConfig, DataConfig, NetConfig, TrainConfig
from training.data import AnomalyBatches
from training.hard_negatives import images_to_search, mine_hard_negatives
from training.net import DefectUNet
from training.station_scoring import station_tiles

from .conftest import striped_fabric, write_tiny_dataset


def test_tiles_are_counted_as_the_station_cuts_them():
    assert station_tiles(np.zeros((256, 4096, 3), np.uint8), 256, 32) == 19  # an AITEX strip
    assert station_tiles(np.zeros((480, 640, 3), np.uint8), 256, 32) == 6  # a line panel
    assert station_tiles(np.zeros((100, 90, 3), np.uint8), 256, 32) == 1  # padded up to one tile


def test_images_are_taken_in_turns_within_the_budget():
    tiles = [19, 19, 6, 1, 19]
    assert images_to_search(tiles, 0, 1000) == [0, 1, 2, 3, 4]  # everything fits: everything, once
    assert images_to_search(tiles, 0, 38) == [0, 1]
    assert images_to_search(tiles, 2, 26) == [2, 3, 4]
    assert images_to_search(tiles, 4, 38) == [4, 0]  # wraps round
    assert images_to_search(tiles, 3, 5) == [3]
    assert images_to_search(tiles, 0, 5) == [0]  # larger than the budget: still searched in its turn
    assert images_to_search([], 0, 10) == []


def firing_everywhere() -> tuple[DefectUNet, TrainConfig]:
    config = TrainConfig(data=DataConfig(crop_px=32), net=NetConfig(base_channels=4, channel_multipliers=[1, 2]))
    config.export.tile_px, config.export.overlap_px = 64, 16
    net = DefectUNet(config.net)
    torch.nn.init.constant_(net.head.bias, 3.0)
    return net, config


def test_a_search_within_budget_keeps_the_spots_of_the_images_it_skipped():
    net, config = firing_everywhere()
    config.data.hard_negative_search_tiles = 2  # a 64x80 image is 2 tiles of 64: one image a search
    rng = np.random.default_rng(0)
    feed = AnomalyBatches([striped_fabric(rng) for _ in range(3)], config.data, AnomalyConfig(), rng)
    searched = []
    for _ in range(4):
        mine_hard_negatives(net, feed, config)
        searched.append(sorted({i for i, _, _ in feed.hard_spots}))
    assert searched == [[0], [0, 1], [0, 1, 2], [0, 1, 2]]
    assert feed.hard_search_from == 1  # the fourth search took image 0 again
    spots_of_1 = [s for s in feed.hard_spots if s[0] == 1]
    torch.nn.init.constant_(net.head.bias, -9.0)  # now fires nowhere
    mine_hard_negatives(net, feed, config)  # searches image 1 only
    assert not [s for s in feed.hard_spots if s[0] == 1]
    assert [s for s in feed.hard_spots if s[0] != 1] and spots_of_1


def test_an_unbounded_search_is_every_image_each_time():
    net, config = firing_everywhere()
    rng = np.random.default_rng(0)
    feed = AnomalyBatches([striped_fabric(rng) for _ in range(3)], config.data, AnomalyConfig(), rng)
    mine_hard_negatives(net, feed, config)  # 6 tiles, within the default budget
    assert {i for i, _, _ in feed.hard_spots} == {0, 1, 2} and feed.hard_search_from == 0


RESUME_CONFIG = """
seed: 3
data: {crop_px: 32, val_fraction: 0.25, min_val_images: 2, hard_negative_fraction: 0.5,
       hard_negative_every_steps: 1, hard_negative_search_tiles: 2, validation_crops: 8}
net: {base_channels: 4, channel_multipliers: [1, 2], score_pool_px: 3}
optim: {batch_size: 4, steps: 10, schedule: steps, lr: 0.003, log_every_s: 0.000001,
        checkpoint_every_s: 0.000001, validate_every_steps: 1}
export: {tile_px: 64, overlap_px: 16, opset: 18}
"""


class PowerCut(Exception):
    pass


def test_a_resumed_run_searches_on_from_where_it_stopped(tmp_path, monkeypatch):
    # A search before every step, one image each: a resume that started the turns again would crop
    # other spots and train other weights. Paced by steps: a time-paced search's due time depends on
    # how long the resume took to start, so only a step-paced run repeats exactly.
    import training.commands as commands
    import training.hard_negatives as hard_negatives

    monkeypatch.setattr(hard_negatives, "HARD_MIN_HEAT", 0.0)  # spots on every searched image, however cool
    config = tmp_path / "config.yaml"
    config.write_text(RESUME_CONFIG, encoding="utf-8")
    dataset = write_tiny_dataset(tmp_path / "fabric", n_good=9, seed=2)
    full = commands.run_train(config, dataset, tmp_path / "full", [], "qc train")

    def crashing_log(line: str) -> None:
        if line.startswith("step 5/"):
            raise PowerCut(line)

    log = commands.log
    monkeypatch.setattr(commands, "log", crashing_log)
    with pytest.raises(PowerCut):
        commands.run_train(config, dataset, tmp_path / "cut", [], "qc train")
    monkeypatch.setattr(commands, "log", log)
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert checkpoint["hard_search_from"] != 0  # mid-way through the turns
    resumed = commands.run_train(config, dataset, tmp_path / "cut", [], "qc train --resume", resume=True)
    assert json.loads((resumed / "run.json").read_text())["training"]["resumed_from_step"] == 4
    want = torch.load(full / "checkpoint.pt", weights_only=True)["state_dict"]
    got = torch.load(resumed / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(want[k], got[k]) for k in want)
