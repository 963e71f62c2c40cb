"""A torch network's heatmap and score for one image exactly as the station computes them from its
ONNX export (qc.inference): the same tiles, blending and post-processing (qc.postprocess), so
thresholds calibrated here and maps validated during training mean the same on the line."""

from __future__ import annotations

import numpy as np
import torch

from qc.padding import fill_padding, suppress_padding
from qc.position import ColumnFactors
from qc.postprocess import after_padding
from qc.tiling import TileGrid
from training.config import ExportConfig
from training.data import to_tensor_layout
from training.net import DefectUNet


@torch.no_grad()
def station_map(net: DefectUNet, image: np.ndarray, export: ExportConfig, *, batch_size: int = 8) -> tuple[np.ndarray, float]:
    """(heatmap (H, W) float32, score) for one uint8 RGB image, tiled like qc.inference does, with the
    padding cleared: the station's map before column factors and smoothing."""
    grid = TileGrid.for_image(image.shape[0], image.shape[1], export.tile_px, export.overlap_px)
    tiles = grid.cut(fill_padding(image) if export.fill_padding else image)
    device = next(net.parameters()).device
    heats, scores = [], []
    for start in range(0, len(tiles), batch_size):
        batch = torch.from_numpy(to_tensor_layout(tiles[start : start + batch_size])).to(device)
        out = net(batch)
        heats.append(out.heatmap[:, 0].float().cpu().numpy())
        scores.append(out.score.float().cpu().numpy())
    heatmap = np.clip(grid.blend(np.concatenate(heats)), 0.0, 1.0)
    return suppress_padding(image, heatmap, float(np.concatenate(scores).max()))


def infer_image(
    net: DefectUNet,
    image: np.ndarray,
    export: ExportConfig,
    *,
    batch_size: int = 8,
    position_scale: ColumnFactors | None = None,
) -> tuple[np.ndarray, float]:
    """(heatmap (H, W) float32, score) for one uint8 RGB image as the station shows and scores it."""
    # The station post-processes the same way (qc.inference), so thresholds mean the same.
    heatmap, score = station_map(net, image, export, batch_size=batch_size)
    return after_padding(heatmap, score, position_scale)
