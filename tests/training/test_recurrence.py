from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from training.config import NetConfig
from training.export import export_onnx
from training.net import DefectUNet
from training.recurrence import Recurrence


def identity_recurrence(channels: int, exclude: int) -> Recurrence:
    """Compares the features as they are (the projection is the identity)."""
    module = Recurrence(channels, channels, exclude=exclude)
    with torch.no_grad():
        module.project.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        module.project.bias.zero_()
    return module


def motif_grid(h: int = 16, w: int = 16, period: int = 4) -> torch.Tensor:
    """[1, 3, h, w] features: a motif (one feature vector) every ``period`` cells on a plain ground."""
    features = torch.zeros(1, 3, h, w)
    features[0, 0] = 1.0  # the ground
    features[0, :, ::period, ::period] = torch.tensor([0.0, 1.0, 0.2]).view(3, 1, 1)
    return features


def test_a_repeated_motif_matches_elsewhere_and_a_one_off_blob_does_not():
    features = motif_grid()
    features[0, :, 6, 9] = torch.tensor([0.1, 0.0, 1.0])  # a defect: nowhere else in the image
    distance = identity_recurrence(3, exclude=2)(features)[0, 0]
    assert distance[4, 4] < 1e-5 and distance[8, 12] < 1e-5  # motifs: another motif 4 cells away
    assert distance[1, 1] < 1e-5  # the ground recurs everywhere
    assert distance[6, 9] > 0.5


def test_a_position_never_matches_itself_or_its_own_neighbourhood():
    features = motif_grid()
    features[0, :, 7, 7] = features[0, :, 7, 8] = torch.tensor([0.1, 0.0, 1.0])  # a two-cell defect
    close = identity_recurrence(3, exclude=1)(features)[0, 0]
    assert close[7, 7] > 0.5 and close[7, 8] > 0.5  # its twin is a neighbour: no match
    assert identity_recurrence(3, exclude=0)(features)[0, 0, 7, 7] < 1e-5  # unless nothing is excluded


def test_an_image_without_positions_outside_the_neighbourhood_reads_as_no_match():
    distance = identity_recurrence(3, exclude=4)(motif_grid(3, 5))  # every pair within 4 cells
    assert torch.equal(distance, torch.full_like(distance, 2.0))


def test_the_cue_does_not_depend_on_the_features_scale():
    features = motif_grid()
    features[0, :, 6, 9] = torch.tensor([0.1, 0.0, 1.0])
    module = identity_recurrence(3, exclude=2)
    assert torch.allclose(module(features), module(7.0 * features), atol=1e-5)


@pytest.mark.parametrize("stride", [8, 16])
def test_the_exported_graph_matches_torch_at_other_sizes(tmp_path, stride):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(3)
    config = NetConfig(recurrence_dims=8, recurrence_stride=stride, test_time_flips="vertical")
    net = DefectUNet(config).eval()
    for parameter in net.parameters():
        parameter.data += 0.05 * torch.randn_like(parameter)
    path = tmp_path / "recurrence.onnx"
    export_onnx(net, path, tile_px=64, opset=18, whole_cells=False)  # odd sizes too: the cue takes any
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "MatMul" in ops  # the similarity of every pair of positions, not a broadcast subtraction
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 83, 117), (1, 3, 256, 256), (1, 3, 40, 300)]:
        image = torch.rand(*shape)
        with torch.no_grad():
            expected = net(image).heatmap.numpy()
        got = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
        assert np.abs(got - expected).max() < 1e-4


def test_the_cue_changes_the_network_only_when_asked_for():
    plain = DefectUNet(NetConfig())
    assert plain.recurrence is None
    assert not any(isinstance(m, Recurrence) for m in plain.modules())
    joined = DefectUNet(NetConfig(recurrence_dims=16))
    assert joined.recurrence.project.in_channels == 48  # stride 8: the third level, 12 x 4 channels
    assert joined.context[0].in_channels == 72  # the bottleneck is after the level: unchanged
    assert joined.down[2][0][0].in_channels == 49  # the level's features plus the cue


def test_recurrence_settings_that_cannot_be_built_are_refused():
    with pytest.raises(ValidationError, match="from-scratch U-Net"):
        NetConfig(recurrence_dims=8, backbone="lite0")
    with pytest.raises(ValidationError, match="recurrence_stride 16 needs a level"):
        NetConfig(recurrence_dims=8, recurrence_stride=16, channel_multipliers=[1, 2, 4])
    with pytest.raises(ValidationError):
        NetConfig(recurrence_dims=-1)
