from __future__ import annotations

import torch

from qc.contract import ModelOutputs
from training.config import NetConfig
from training.net import DefectUNet, single_pass

import pytest


def test_stem_instance_norms_the_first_block_per_image_and_the_rest_per_batch():
    net = DefectUNet(NetConfig(norm="stem_instance"))
    stem = [type(m) for m in net.stem.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d))]
    rest = [type(m) for name, m in net.named_modules()
            if not name.startswith("stem") and isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d))]
    assert stem == [torch.nn.GroupNorm, torch.nn.GroupNorm]
    assert rest and set(rest) == {torch.nn.BatchNorm2d}


@pytest.mark.parametrize("norm", ["instance", "batch", "stem_instance", "local_instance"])
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


@pytest.mark.parametrize(
    "flips, mirrors",
    [("none", []), ("vertical", [(-2,)]), ("horizontal", [(-1,)]), ("all", [(-2,), (-1,), (-2, -1)])],
)
def test_test_time_flips_average_the_mirrored_heatmaps(flips, mirrors):
    torch.manual_seed(0)
    net = DefectUNet(NetConfig(test_time_flips=flips)).eval()
    image = torch.rand(2, 3, 48, 80)
    with torch.no_grad():
        out = net(image)
        maps = [torch.sigmoid(net.logits(image))]
        maps += [torch.flip(torch.sigmoid(net.logits(torch.flip(image, dims))), dims) for dims in mirrors]
    expected = torch.stack(maps).mean(dim=0)
    assert torch.allclose(out.heatmap, expected, atol=1e-6)
    assert torch.allclose(out.score, net.score(expected), atol=1e-6)
    if mirrors:  # a randomly initialised net is not mirror-symmetric: the average is not the single pass
        assert not torch.allclose(out.heatmap, maps[0], atol=1e-4)


def test_an_unknown_test_time_flip_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="'none', 'vertical', 'horizontal' or 'all'"):
        NetConfig(test_time_flips="diagonal")


def test_single_pass_runs_the_plain_network_and_gives_the_flips_back_even_on_error():
    torch.manual_seed(0)
    net = DefectUNet(NetConfig(test_time_flips="all")).eval()
    image = torch.rand(1, 3, 32, 48)
    with torch.no_grad(), single_pass(net):
        plain = net(image).heatmap
        assert torch.allclose(plain, torch.sigmoid(net.logits(image)))
    assert net.test_time_flips == "all"
    with pytest.raises(RuntimeError), single_pass(net):
        raise RuntimeError("a search failed")
    assert net.test_time_flips == "all"
    with single_pass(torch.nn.Conv2d(3, 1, 1)):  # a module without flips passes through untouched
        pass


def test_output_stride_4_stops_the_decoder_a_level_early_and_keeps_any_size():
    full = DefectUNet(NetConfig(output_stride=2))
    short = DefectUNet(NetConfig(output_stride=4, test_time_flips="none"))
    assert len(short.up) == len(full.up) - 1
    assert short.head.in_channels == 2 * full.head.in_channels  # the stride-4 level's width
    seen = []
    hook = short.head.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with torch.no_grad():
        out = short.eval()(torch.rand(1, 3, 83, 117))
    hook.remove()
    assert seen == [(1, 1, 21, 30)]  # 83 -> 42 -> 21, 117 -> 59 -> 30: the head reads stride 4
    assert out.heatmap.shape == (1, 1, 83, 117)


def test_output_stride_4_is_refused_for_the_pretrained_backbones():
    with pytest.raises(ValueError, match="output_stride 4 is built for the from-scratch U-Net only"):
        NetConfig(backbone="lite0", output_stride=4)
    with pytest.raises(ValueError):
        NetConfig(output_stride=8)


def test_a_pointwise_decoder_joins_each_level_with_a_1x1_conv_and_keeps_any_size(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from training.export import export_onnx

    full = DefectUNet(NetConfig(test_time_flips="none"))
    light = DefectUNet(NetConfig(decoder_fuse="pointwise", test_time_flips="none")).eval()
    joins = [block.fuse[0][0] for block in light.up]
    assert [conv.kernel_size for conv in joins] == [(1, 1)] * len(light.up)
    assert [block.fuse[1][0].kernel_size for block in light.up] == [(3, 3)] * len(light.up)
    # Each join keeps its inputs and outputs; only its 3x3 kernel becomes 1x1: 8 of 9 weights fewer.
    saved = sum(conv.in_channels * conv.out_channels * 8 for conv in joins)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(full) - count(light) == saved
    with torch.no_grad():
        assert light(torch.rand(1, 3, 50, 71)).heatmap.shape == (1, 1, 50, 71)
    path = tmp_path / "light.onnx"
    export_onnx(light, path, tile_px=64, opset=18, whole_cells=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.rand(2, 3, 83, 117)
    with torch.no_grad():
        expected = light(image).heatmap.numpy()
    got = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4


def test_an_unknown_decoder_fuse_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="conv3x3.*pointwise.*single"):
        NetConfig(decoder_fuse="dense")
    # The pretrained backbones build their own decoders: the setting would be silently ignored there.
    with pytest.raises(ValueError, match="decoder_fuse pointwise is built for the from-scratch U-Net only"):
        NetConfig(backbone="lite0_unet", decoder_fuse="pointwise")


def test_a_single_conv_decoder_joins_each_level_with_one_3x3_and_nothing_after():
    full = DefectUNet(NetConfig(test_time_flips="none"))
    single = DefectUNet(NetConfig(decoder_fuse="single", test_time_flips="none")).eval()
    assert [len(block.fuse) for block in single.up] == [1] * len(single.up)
    assert [block.fuse[0][0].kernel_size for block in single.up] == [(3, 3)] * len(single.up)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(full) - count(single) == sum(count(block.fuse[1]) for block in full.up)
    with torch.no_grad():
        assert single(torch.rand(1, 3, 50, 71)).heatmap.shape == (1, 1, 50, 71)
