"""Per-image feature normalisation over a window around each position, not over the whole input.

Instance norms (GroupNorm with one channel per group) normalise every feature map by the whole
input's mean and spread, so what a defect looks like depends on everything else in the tile: on the
default model's synthetic line panels an obvious green fibre on plain weave scored 1.00 in a
256-px tile that held only cloth and 0.00 in the station's tiles, which also held the dark belt
beside the panel (bench/results/default_candidates/README.md). Statistics taken over a window of
fixed size in image pixels keep what instance norms give (features relative to the fabric's own
texture and contrast) but make them depend only on the cloth around each position: the same
network sees a defect the same way in a 128-px training crop and in a 256-px station tile, and a
belt or a selvage a window away changes nothing.

The window statistics are computed on a coarser grid (average pooling) and upsampled by an exact
factor, as upsample2_to does: a window of 64 feature pixels costs a few operations per pixel
instead of thousands, and onnxruntime computes the same fixed-factor resize as torch.

Any input size works: a part-cell at the border is edge-padded before the pooling and the upsampled
statistics cropped back. Where every side is a whole number of cells (the station's 256-px tile is,
at every level) the pad and the crop change nothing, yet each is a copy of the whole feature map:
an export sets ``whole_cells`` to leave them out (training/export.py, ``export.whole_cells``), which
made the default network's 256-px tile about a fifth faster in onnxruntime with the same output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-3
"""Variance floor: a flat window (padding, a plain belt) is not blown up into noise."""
COARSE_CELLS = 8
"""Box windows span about this many cells of the coarse grid the statistics are taken on."""


def box_mean(x: torch.Tensor, cells: int) -> torch.Tensor:
    """Mean over a cells x cells window around each position, clipped at the border (separable)."""
    pad = cells // 2
    x = F.avg_pool2d(x, (1, cells), stride=1, padding=(0, pad), count_include_pad=False)
    return F.avg_pool2d(x, (cells, 1), stride=1, padding=(pad, 0), count_include_pad=False)


def upsample_to(x: torch.Tensor, factor: int, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Upsample by an exact integer factor (bilinear), then crop to ``size``."""
    if factor > 1:
        x = F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)
    return x[..., : size[0], : size[1]]


class LocalNorm(nn.Module):
    """Normalise each feature by the mean and spread of its channel in a window of about
    ``window`` feature pixels around it, then scale and shift per channel (as GroupNorm does)."""

    def __init__(self, channels: int, window: int, stride: int = 1) -> None:
        """``window`` in feature pixels; ``stride``: image pixels per feature pixel at this level."""
        super().__init__()
        if window < 1:
            raise ValueError(f"a local norm's window must be at least 1 feature pixel, got {window}")
        self.coarse = max(1, window // COARSE_CELLS)
        # Odd, so the window is centred on the position it normalises.
        self.cells = max(1, round(window / self.coarse)) | 1
        self.stride = stride
        self.whole_cells = False  # set by an export whose inputs are whole cells (module docstring)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @property
    def cell_image_px(self) -> int:
        """A cell's side in image pixels: an input whose sides are multiples of it is whole cells here."""
        return self.coarse * self.stride

    def extra_repr(self) -> str:
        return f"window={self.cells * self.coarse} (cells of {self.coarse} px)"

    def window_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of every feature over its window, at x's resolution."""
        size = x.shape[-2:]
        if self.coarse == 1:
            return box_mean(x, self.cells)
        if self.whole_cells:
            x = F.avg_pool2d(x, self.coarse, stride=self.coarse)
            return F.interpolate(box_mean(x, self.cells), scale_factor=float(self.coarse), mode="bilinear", align_corners=False)
        # Edge-padded rather than pooled with ceil_mode: torch and onnxruntime need not agree on
        # what a part-cell at the border averages. Padded by coarse - 1 whatever the size (the
        # pooling drops what is left over), so a part-cell averages its pixels with copies of
        # the border ones, and the graph holds no arithmetic on the size.
        pad = self.coarse - 1
        x = F.pad(x, (0, pad, 0, pad), mode="replicate")
        x = F.avg_pool2d(x, self.coarse, stride=self.coarse)
        return upsample_to(box_mean(x, self.cells), self.coarse, size)

    def departure_and_variance(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every feature's departure from its window mean, and the window variance, at x's
        resolution. The variance is the window's mean squared departure, not E[x^2] - E[x]^2: on
        flat cloth or padding that difference cancels to rounding noise, which torch and
        onnxruntime round differently (an exported network drifted 1.1e-3 from torch that way). The
        departure is kept for the norm itself: one full-size subtraction fewer in the graph."""
        departure = x - self.window_mean(x)
        return departure, self.window_mean(departure * departure)

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The window mean and variance of every feature, at x's resolution."""
        departure, var = self.departure_and_variance(x)
        return x - departure, var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        departure, var = self.departure_and_variance(x)
        x = departure * torch.rsqrt(var + EPS)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
