"""A small convolutional network over the 4-channel region crops (RGB + hint), and the region's
geometry (qc.defect_types.GEOMETRY) beside it.

About 7 MFLOPs per 64 px crop at width 16: well under the 2 ms per region budget on two CPU threads. Average
and max pooling together: a nep is a few hot pixels, a crease a long faint line. The geometry goes
through a small MLP whose output joins the pooled features before the last layer: the crop is scaled
to the region and cannot see how far across the piece the region runs.
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


GEOMETRY_WIDTH = 32


class TypeNet(nn.Module):
    """``geometry``: the number of geometry features it reads; 0 (heads made before them) reads
    the crops alone."""

    def __init__(self, n_types: int, width: int = 16, geometry: int = 0) -> None:
        super().__init__()
        w = width
        self.n_geometry = geometry
        self.body = nn.Sequential(
            _block(CHANNELS, w, 2),
            _block(w, 2 * w, 2),
            _block(2 * w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 2),
        )
        self.geometry = (
            nn.Sequential(
                nn.Linear(geometry, GEOMETRY_WIDTH), nn.ReLU(inplace=True),
                nn.Linear(GEOMETRY_WIDTH, GEOMETRY_WIDTH), nn.ReLU(inplace=True),
            )
            if geometry
            else None
        )
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(8 * w + (GEOMETRY_WIDTH if geometry else 0), n_types)

    def features(self, crops: torch.Tensor, geometry: torch.Tensor | None = None) -> torch.Tensor:
        x = self.body(crops)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        if self.geometry is None:
            return pooled
        return torch.cat([pooled, self.geometry(geometry)], dim=1)

    def forward(self, crops: torch.Tensor, geometry: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, n_types); ``geometry`` (N, n_geometry) where the net reads it."""
        return self.classifier(self.dropout(self.features(crops, geometry)))


class Probabilities(nn.Module):
    """What is exported: the softmax over the types, so a reader needs no post-processing."""

    def __init__(self, net: TypeNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor, geometry: torch.Tensor | None = None) -> torch.Tensor:
        return torch.softmax(self.net(crops, geometry), dim=1)
