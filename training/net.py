"""The defect-segmentation network: a small fully convolutional U-Net, a plain ``nn.Module``.

It is trained from scratch on good images with synthetic anomalies (no pretrained weights: the
product never downloads any). The first convolution has stride 2 and the heatmap is upsampled at the
end: full-resolution feature maps would cost most of the compute budget (a 256x256 tile must run in
<= 10 ms on 2 CPU threads) and defects worth reporting are wider than two pixels anyway.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from qc.contract import ModelOutputs
from training.config import NetConfig
from training.local_norm import LocalNorm, upsample_to
from training.recurrence import Recurrence

# Fixed input statistics rather than per-dataset ones: one exported graph serves any fabric, and the
# client never normalises (the ONNX contract: normalisation lives inside the graph).
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.25, 0.25, 0.25)
HEAD_PRIOR_LOGIT = -4.6  # sigmoid = 0.01


Norm = str | Callable[[int], nn.Module]
"""A norm kind ("instance", "batch") or a factory of norm modules by channel count."""


def make_norm(kind: Norm, channels: int) -> nn.Module:
    """A factory is called (local norms, whose window depends on the stride: ``norm_at_stride``).

    "instance" normalises each feature map by its own image's statistics (GroupNorm with one
    channel per group). A defect is a local departure from the fabric's own texture, so features
    expressed relative to the image's mean and spread make it visible from the first layers; with
    BatchNorm the same network barely learnt in the same few minutes (pixel AUROC 0.56 vs 0.93 on
    synthetic fabric after 800 steps)."""
    if callable(kind):
        return kind(channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm {kind!r} is built per level by DefectUNet only (net.backbone none)")


def norm_at_stride(config: NetConfig, stride: int) -> Norm:
    """The norm of features ``stride`` image px apart: with net.norm local_instance, local norms
    over a window of net.norm_window_px image px (so of norm_window_px / stride feature px), and
    whole-tile instance norms below net.local_norm_from_stride. A local norm's window statistics
    (pools, resizes, pads) cost per feature pixel, so most of their time goes to the finest levels."""
    if config.norm != "local_instance":
        return config.norm
    if stride < config.local_norm_from_stride:
        return "instance"
    return functools.partial(LocalNorm, window=max(1, config.norm_window_px // stride), stride=stride)


def conv_bn_relu(in_ch: int, out_ch: int, *, norm: Norm, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        make_norm(norm, out_ch),
        nn.ReLU(inplace=True),
    )


def pooled_max_score(heatmap: torch.Tensor, pool_px: int) -> torch.Tensor:
    """Image score: the hottest local *average* of the heatmap, so one hot pixel cannot fail a unit."""
    pooled = F.avg_pool2d(heatmap, pool_px, stride=1, padding=pool_px // 2, count_include_pad=False)
    return pooled.amax(dim=(1, 2, 3))


class DownBlock(nn.Sequential):
    """Halve the resolution with a strided conv, then one more conv at the new resolution."""

    def __init__(self, in_ch: int, out_ch: int, *, norm: Norm) -> None:
        super().__init__(
            conv_bn_relu(in_ch, out_ch, norm=norm, stride=2), conv_bn_relu(out_ch, out_ch, norm=norm)
        )


def upsample2_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Double the resolution, then crop to ``size`` (at most one row and column less).

    Always an exact factor of 2, never "resize to H x W": with a size target the scale becomes
    H_in/H_out, which onnxruntime computes in float32 and torch in float64, so on odd sizes their
    sampling positions differ and the exported heatmap drifted past the 1e-4 parity tolerance
    (1.1e-4 on a 163x235 crop, where torch in float32 and in float64 agreed to 5e-6). A fixed
    factor also keeps the geometry the same for every tile size, which tiling relies on.
    """
    return upsample_to(x, 2, size)


class UpBlock(nn.Module):
    """Upsample to the skip connection's exact size (so any H, W works), concatenate, convolve.

    ``fuse`` "conv3x3" joins the two with a 3x3 conv, "pointwise" with a 1x1 conv, a 3x3 conv
    following either; "single" with a 3x3 conv and nothing after it. The joining conv reads both
    inputs' channels at the skip's resolution, so as a 3x3 it was about half the network's
    multiply-adds (net.decoder_fuse)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, *, norm: Norm, fuse: str = "conv3x3") -> None:
        super().__init__()
        layers = [conv_bn_relu(in_ch + skip_ch, out_ch, norm=norm, kernel=1 if fuse == "pointwise" else 3)]
        if fuse != "single":
            layers.append(conv_bn_relu(out_ch, out_ch, norm=norm))
        self.fuse = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([upsample2_to(x, skip.shape[-2:]), skip], dim=1))


# Test-time flips (``net.test_time_flips``): the image axes each extra pass mirrors, besides the
# image as it is. The heatmaps are mirrored back and averaged before the score is taken.
TEST_TIME_FLIPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": (),
    "vertical": ((-2,),),
    "horizontal": ((-1,),),
    "all": ((-2,), (-1,), (-2, -1)),
}


@contextlib.contextmanager
def single_pass(net: nn.Module) -> Iterator[None]:
    """``net`` runs without its test-time flips inside the block (training's own searches).

    Hard-negative mining and the validation that picks the shipped weights see the network as
    training shapes it; only what the station runs (calibration, export, parity) averages mirror
    images. With the flips in mining and validation too, networks trained from scratch scored lower
    on 00 and 06 (bench/results/aitex_flips.json) than the same flips added after training did.
    """
    flips = getattr(net, "test_time_flips", None)
    if flips is None:
        yield
        return
    net.test_time_flips = "none"
    try:
        yield
    finally:
        net.test_time_flips = flips


class SegmentationNet(nn.Module):
    """What every detector network shares: ``logits`` per pixel in, the contract's outputs out.

    Training optimises ``logits`` on the image as it is; ``forward`` (what calibration and the
    exported graph run; training's mining and validation run it under ``single_pass``) averages the
    heatmaps of the image and its mirror images named by ``test_time_flips``. A network's false alarms are specks that mostly change when the fabric is
    mirrored; a defect is found either way, so the average keeps it and dilutes the specks: on the
    12 AITEX dev networks of the committed configuration, recalibrated either way, one vertical
    mirror raised strip-level image AUROC from 0.850 to 0.898 on average and the worst seed from
    0.56 to 0.68 (``qc bench flips``, bench/results/flips.json); on three fresh seeds trained as
    the default does (mining and validation single pass), 0.864 -> 0.903 against the same networks
    run single pass (bench/results/flips_fresh.json), so "vertical" is the default. Each mirror
    costs one more pass of the network.
    """

    score_pool_px: int
    test_time_flips: str = "none"

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, heatmap: torch.Tensor) -> torch.Tensor:
        return pooled_max_score(heatmap, self.score_pool_px)

    def forward(self, image: torch.Tensor) -> ModelOutputs:
        flips = TEST_TIME_FLIPS[self.test_time_flips]
        if not flips:
            heatmap = torch.sigmoid(self.logits(image))
            return ModelOutputs(heatmap=heatmap, score=self.score(heatmap))
        # One pass over the image and its mirror images stacked as one batch (each image is
        # normalised on its own, so stacking changes no map).
        views = torch.stack([image, *(torch.flip(image, dims) for dims in flips)]).flatten(0, 1)
        maps = torch.sigmoid(self.logits(views)).unflatten(0, (len(flips) + 1, -1))
        heatmap = maps[0]
        for index, dims in enumerate(flips, start=1):
            heatmap = heatmap + torch.flip(maps[index], dims)
        heatmap = heatmap / (len(flips) + 1)
        return ModelOutputs(heatmap=heatmap, score=self.score(heatmap))


class DefectUNet(SegmentationNet):
    """RGB image in 0..1 [N, 3, H, W] -> ModelOutputs(heatmap [N, 1, H, W], score [N]).

    Any H, W >= 1 works: strided convs round sizes up and every upsampling targets the exact size of
    its skip connection, so there is no padding constraint on the input.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        widths = [config.base_channels * m for m in config.channel_multipliers]
        self.register_buffer("mean", torch.tensor(INPUT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT_STD).view(1, 3, 1, 1), persistent=False)
        # The norm of each level (stride 2 at level 0, doubling per level), and the stem's.
        if config.norm == "stem_instance":  # per-image norms in the stem only, per-batch after it
            norms: list[Norm] = ["batch"] * len(widths)
        else:
            norms = [norm_at_stride(config, 2 ** (level + 1)) for level in range(len(widths))]
        self.stem = DownBlock(3, widths[0], norm="instance" if config.norm == "stem_instance" else norms[0])
        # The level whose features get the recurrence cue joined as one more channel (None: off).
        self.recurrence_level = None
        self.recurrence = None
        level_channels = list(widths)
        if config.recurrence_dims:
            self.recurrence_level = config.recurrence_stride.bit_length() - 2  # stride 8 -> level 2
            self.recurrence = Recurrence(
                widths[self.recurrence_level], config.recurrence_dims, exclude=config.recurrence_exclude_cells
            )
            level_channels[self.recurrence_level] += 1
        self.down = nn.ModuleList(
            DownBlock(a, b, norm=norm) for a, b, norm in zip(level_channels[:-1], widths[1:], norms[1:])
        )
        self.context = conv_bn_relu(level_channels[-1], widths[-1], norm=norms[-1])
        # The decoder climbs back to the level of the output stride (level 0 is stride 2, level 1 stride 4).
        top = {2: 0, 4: 1}[config.output_stride]
        self.output_stride = config.output_stride
        self.up = nn.ModuleList(
            UpBlock(widths[i + 1], level_channels[i], widths[i], norm=norms[i], fuse=config.decoder_fuse)
            for i in reversed(range(top, len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[top], 1, 1)
        # Start from "almost every pixel is good" (RetinaNet's prior init): otherwise the first few
        # hundred steps are spent only pulling the background from p=0.5 down to its base rate.
        nn.init.constant_(self.head.bias, HEAD_PRIOR_LOGIT)
        self.score_pool_px = config.score_pool_px
        self.test_time_flips = config.test_time_flips

    def joined(self, level: int, features: torch.Tensor) -> torch.Tensor:
        """The level's features, with the recurrence cue as one more channel at its level."""
        if level != self.recurrence_level:
            return features
        return torch.cat([features, self.recurrence(features)], dim=1)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """Per-pixel defect logits [N, 1, H, W]; training uses these (numerically stable BCE)."""
        x = (image - self.mean) / self.std
        skips = [self.joined(0, self.stem(x))]
        for level, block in enumerate(self.down, start=1):
            skips.append(self.joined(level, block(skips[-1])))
        x = self.context(skips.pop())
        for block in self.up:
            x = block(x, skips.pop())
        return upsample_to(self.head(x), self.output_stride, image.shape[-2:])
