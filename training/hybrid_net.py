"""The from-scratch U-Net with frozen pretrained features beside it (net.backbone: lite0_unet).

    image -> DefectUNet encoder (trained)  --strides 2..16-->  decoder (trained) -> logit per pixel
          -> EfficientNet-Lite0 (frozen)    --strides 8, 16-->  concatenated into the U-Net's
                                                                  stride-8 skip and its context

Why both: the U-Net alone keeps the fine detail of thin yarn defects (AITEX 02 pixel AUROC 0.99)
but sees each fabric only through what a few minutes of training teach it, so on fabrics it never
met (the simulated line's random fabrics) prints and check crossings fire. The decoder over frozen
ImageNet features alone generalised across those fabrics (synthetic split image AUROC 0.85 against
0.72) but lost image AUROC on AITEX 00, 02 and 06, whose defects are a few pixels wide.

Measured as the default model's network (bench/results/default_candidates/): synthetic split image
AUROC 0.716 -> 0.844 and false rejects 0.13 -> 0.07 over the from-scratch U-Net, but every good
AITEX strip then fails at the capped threshold, so it is an option, not the default.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from training.backbone import STAGE_CHANNELS, Lite0Features
from training.config import NetConfig
from training.feature_net import FrozenBackboneNet
from training.net import HEAD_PRIOR_LOGIT, INPUT_MEAN, INPUT_STD, DownBlock, UpBlock
from training.net import conv_bn_relu, norm_at_stride, upsample2_to


class HybridUNet(FrozenBackboneNet):
    """RGB 0..1 [N, 3, H, W] -> ModelOutputs; any H, W >= 1, like DefectUNet.

    Needs four levels (strides 2, 4, 8, 16: ``channel_multipliers`` of length 4), so that the
    U-Net's last two levels meet Lite0's stride-8 and stride-16 features at the same size.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        widths = [config.base_channels * m for m in config.channel_multipliers]
        _, c8, c16 = STAGE_CHANNELS
        norm = functools.partial(norm_at_stride, config)  # by stride: local norms' windows depend on it
        self.register_buffer("mean", torch.tensor(INPUT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT_STD).view(1, 3, 1, 1), persistent=False)
        self.backbone = Lite0Features()
        self.backbone.requires_grad_(False)
        self.stem = DownBlock(3, widths[0], norm=norm(2))
        self.down = nn.ModuleList(
            DownBlock(a, b, norm=norm(2 ** (level + 2))) for level, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
        )
        self.context = conv_bn_relu(widths[3] + c16, widths[3], norm=norm(16))
        self.up = nn.ModuleList(
            [
                UpBlock(widths[3], widths[2] + c8, widths[2], norm=norm(8)),
                UpBlock(widths[2], widths[1], widths[1], norm=norm(4)),
                UpBlock(widths[1], widths[0], widths[0], norm=norm(2)),
            ]
        )
        self.head = nn.Conv2d(widths[0], 1, 1)
        nn.init.constant_(self.head.bias, HEAD_PRIOR_LOGIT)
        self.score_pool_px = config.score_pool_px
        self.test_time_flips = config.test_time_flips

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        _, pre8, pre16 = self.backbone(image)
        x = (image - self.mean) / self.std
        s2 = self.stem(x)
        s4 = self.down[0](s2)
        s8 = self.down[1](s4)
        s16 = self.down[2](s8)
        # Both encoders round odd sizes up at every stride-2 step, so their maps agree in size.
        x = self.context(torch.cat([s16, pre16], dim=1))
        x = self.up[0](x, torch.cat([s8, pre8], dim=1))
        x = self.up[1](x, s4)
        x = self.up[2](x, s2)
        return upsample2_to(self.head(x), image.shape[-2:])
