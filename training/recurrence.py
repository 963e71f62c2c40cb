"""How well each position's features recur elsewhere in the same image: a non-local cue.

A network that sees only the cloth around a position cannot tell a printed motif or the crossing of
a plaid's bands from a pasted blob of another colour: locally they are the same thing. On the
default model's good line panels every plaid crossing and many printed dots scored 0.99 or more
(bench/results/default_candidates/README.md). What tells them apart is that a pattern element
recurs across the panel and a defect does not. This module gives the network that fact as a
feature: each position's features are projected (a learnt 1x1 convolution), and the module reports
how far the position is from its nearest match among the positions outside a neighbourhood around
it (cosine distance, 0 = an exact repeat elsewhere, up to 2). The network learns what to do with it,
beside its local evidence.

In the exported graph it is a MatMul and a ReduceMax over the tile's positions (a 256-px tile has
1024 at stride 8: a 1024 x 1024 similarity), never a broadcast subtraction of every pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NO_MATCH = -4.0
"""Similarity given to excluded pairs: below any cosine, so an image too small to hold a position
outside the neighbourhood reads as 'no match' (distance clamped to 2), never as a repeat."""


class Recurrence(nn.Module):
    """features [N, C, H, W] -> [N, 1, H, W]: cosine distance from each position's projected
    features to the nearest ones at a position more than ``exclude`` cells away in y or x."""

    def __init__(self, channels: int, dims: int, *, exclude: int) -> None:
        super().__init__()
        if dims < 1:
            raise ValueError(f"recurrence needs at least 1 projected dimension, got {dims}")
        if exclude < 0:
            raise ValueError(f"recurrence's exclusion radius must be >= 0 cells, got {exclude}")
        self.project = nn.Conv2d(channels, dims, 1)
        self.exclude = exclude

    def extra_repr(self) -> str:
        return f"exclude={self.exclude} cells"

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, _, h, w = features.shape
        keys = F.normalize(self.project(features).flatten(2), dim=1)  # [N, D, HW]
        similarity = torch.matmul(keys.transpose(1, 2), keys)  # [N, HW, HW]
        best = (similarity + self.neighbourhood_penalty(h, w, features)).amax(dim=2)
        return (1.0 - best).clamp(0.0, 2.0).view(n, 1, h, w)

    def neighbourhood_penalty(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        """[HW, HW]: 0 between positions more than ``exclude`` cells apart in y or x, else a
        similarity below any cosine (a position never matches itself or its neighbours).

        Built from a [h, h] and a [w, w] table and one broadcast product: the graph computes it
        for every tile size, and elementwise work on all HW x HW pairs costs more than the MatMul.
        """
        rows = self.near(h, like) * (NO_MATCH - 1.0)
        columns = self.near(w, like)
        return (rows.view(h, 1, h, 1) * columns.view(1, w, 1, w)).reshape(h * w, h * w)

    def near(self, size: int, like: torch.Tensor) -> torch.Tensor:
        """[size, size]: 1.0 where two cells of one axis are at most ``exclude`` apart, else 0."""
        cells = torch.arange(size, device=like.device)
        return ((cells.view(-1, 1) - cells.view(1, -1)).abs() <= self.exclude).to(like.dtype)
