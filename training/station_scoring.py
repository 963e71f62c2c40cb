"""A torch network's heatmap and score for one image exactly as the station computes them from its
ONNX export (qc.inference): the same tiles, blending and post-processing (qc.postprocess), so
thresholds calibrated here and maps validated during training mean the same on the line."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn

from qc.padding import fill_padding, suppress_padding
from qc.position import ColumnFactors
from qc.postprocess import after_padding
from qc.tiling import TileGrid
from training.config import ExportConfig
from training.data import to_tensor_layout


class TileScorer(Protocol):
    """A network as the station runs it: float32 tiles (N, 3, T, T) in 0..1 -> heatmaps (N, T, T)
    and scores (N,). A torch module (``torch_tile_scorer``) or its ONNX graph (training.onnx_scoring)."""

    def __call__(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def torch_tile_scorer(net: nn.Module) -> TileScorer:
    """``net`` (in eval mode, as the caller left it) as a TileScorer, on the device its weights are on."""
    device = next(net.parameters()).device

    @torch.no_grad()
    def score(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = net(torch.from_numpy(tiles).to(device))
        return out.heatmap[:, 0].float().cpu().numpy(), out.score.float().cpu().numpy()

    return score


def as_tile_scorer(net: nn.Module | TileScorer) -> TileScorer:
    return torch_tile_scorer(net) if isinstance(net, nn.Module) else net


def station_tiles(image: np.ndarray, tile_px: int, overlap_px: int) -> int:
    """How many tiles the station cuts from ``image``: what scoring it costs."""
    return len(TileGrid.for_image(image.shape[0], image.shape[1], tile_px, overlap_px).boxes)


def station_map(
    net: nn.Module | TileScorer, image: np.ndarray, export: ExportConfig, *, batch_size: int = 8
) -> tuple[np.ndarray, float]:
    """(heatmap (H, W) float32, score) for one uint8 RGB image, tiled like qc.inference does, with the
    padding cleared: the station's map before column factors and smoothing."""
    grid = TileGrid.for_image(image.shape[0], image.shape[1], export.tile_px, export.overlap_px)
    tiles = grid.cut(fill_padding(image) if export.fill_padding else image)
    score_tiles = as_tile_scorer(net)
    heats, scores = [], []
    for start in range(0, len(tiles), batch_size):
        heat, score = score_tiles(to_tensor_layout(tiles[start : start + batch_size]))
        heats.append(heat)
        scores.append(score)
    heatmap = np.clip(grid.blend(np.concatenate(heats)), 0.0, 1.0)
    return suppress_padding(image, heatmap, float(np.concatenate(scores).max()))


def infer_image(
    net: nn.Module | TileScorer,
    image: np.ndarray,
    export: ExportConfig,
    *,
    batch_size: int = 8,
    position_scale: ColumnFactors | None = None,
) -> tuple[np.ndarray, float]:
    """(heatmap (H, W) float32, score) for one uint8 RGB image as the station shows and scores it."""
    # The station post-processes the same way (qc.inference), so thresholds mean the same.
    heatmap, score = station_map(net, image, export, batch_size=batch_size)
    return after_padding(heatmap, score, position_scale, export.broad_sigma_px)
