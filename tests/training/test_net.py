from __future__ import annotations

import torch

from qc.contract import ModelOutputs
from training.config import NetConfig
from training.net import DefectUNet


import pytest


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_shapes_and_ranges_for_any_size(norm):
    net = DefectUNet(NetConfig(norm=norm)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 96))
        odd = net(torch.rand(1, 3, 50, 71))
    assert isinstance(out, ModelOutputs)
    assert out.heatmap.shape == (2, 1, 64, 96) and out.score.shape == (2,)
    assert 0 <= float(out.heatmap.min()) and float(out.heatmap.max()) <= 1
    assert torch.all(out.score <= out.heatmap.amax(dim=(1, 2, 3)) + 1e-6)
    assert odd.heatmap.shape == (1, 1, 50, 71)


def test_one_hot_pixel_does_not_make_a_high_score_but_a_patch_does():
    net = DefectUNet(NetConfig(score_pool_px=5))
    heat = torch.zeros(2, 1, 32, 32)
    heat[0, 0, 10, 10] = 1.0
    heat[1, 0, 10:16, 10:16] = 1.0
    score = net.score(heat)
    assert float(score[0]) <= 1 / 25 + 1e-6
    assert float(score[1]) == 1.0


def test_exported_size_budget():
    params = sum(p.numel() for p in DefectUNet(NetConfig()).parameters())
    assert params * 4 < 10e6 / 2, f"{params} parameters is too many for a < 10 MB model"
