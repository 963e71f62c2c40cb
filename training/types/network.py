"""A small convolutional network over the 4-channel region crops (RGB + hint).

About 7 MFLOPs per 64 px crop at width 16: well under the 2 ms per region budget on two CPU threads. Average
and max pooling together: a nep is a few hot pixels, a crease a long faint line.
"""

from __future__ import annotations

import torch
from torch import nn

from qc.defect_types import CHANNELS


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TypeNet(nn.Module):
    def __init__(self, n_types: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _block(CHANNELS, w, 2),
            _block(w, 2 * w, 2),
            _block(2 * w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 2),
        )
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(8 * w, n_types)

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        x = self.body(crops)
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_types)."""
        return self.classifier(self.dropout(self.features(crops)))


class Probabilities(nn.Module):
    """What is exported: the softmax over the types, so a reader needs no post-processing."""

    def __init__(self, net: TypeNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(crops), dim=1)
