"""A memory of good patches over pretrained features (PatchCore-style), measured as a detector head.

    good images -> tiles (as a station tiles them) -> EfficientNet-Lite0 features at strides 8 and
    16, the coarser resized to stride 8, concatenated, a 3x3 local average -> one vector per
    8x8-pixel cell -> a coreset of them is the memory.
    a new image -> the same vectors -> distance of each to its nearest memory vector -> a map.

No training: fitting is a forward pass and a coreset. Issue 12 asks whether such a head, or its map
combined with the trained network's, beats the trained network alone; bench/bench_memory_bank.py
answers on the AITEX dev fabrics (bench/results/memory_bank.json: better on 06 only, and combined
no better than either). Nothing here is exported: a station cannot run it.

The coreset is greedy k-centre (each pick is the vector farthest from those already picked), not a
random sample: a rare but normal patch (a selvage, a pattern repeat) is exactly what a random
sample drops and what then fires on every good image. On AITEX 04 (one seed, 4000 of 233k vectors,
measured by a throw-away script before the bench existed) greedy scored image AUROC 0.825 where a
random sample of the same size scored 0.675.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from qc.tiling import Blender, TileGrid
from training.backbone import Lite0Features

LOCAL_AVERAGE_PX = 3  # cells, PatchCore's neighbourhood aggregation
PROJECTION_DIMS = 32  # the coreset's distances are taken in a random projection: 5x cheaper
SMOOTHING_SIGMA_PX = 4.0


@torch.no_grad()
def patch_features(extractor: Lite0Features, tiles_rgb: np.ndarray) -> torch.Tensor:
    """(n, T, T, 3) uint8 tiles -> (n, C, T/8, T/8) float32 cell vectors (C = 40 + 112)."""
    x = torch.from_numpy(np.ascontiguousarray(tiles_rgb)).permute(0, 3, 1, 2).float() / 255.0
    _, stride8, stride16 = extractor(x)
    coarse = F.interpolate(stride16, size=stride8.shape[-2:], mode="bilinear", align_corners=False)
    cells = torch.cat([stride8, coarse], dim=1)
    return F.avg_pool2d(cells, LOCAL_AVERAGE_PX, 1, LOCAL_AVERAGE_PX // 2, count_include_pad=False)


def image_vectors(extractor: Lite0Features, image_rgb: np.ndarray, *, tile_px: int, overlap_px: int) -> torch.Tensor:
    """Every cell vector of every tile of one image: (cells, C)."""
    grid = TileGrid.for_image(image_rgb.shape[0], image_rgb.shape[1], tile_px, overlap_px)
    vectors = []
    for _, tiles in grid.batches(image_rgb, 8):
        cells = patch_features(extractor, tiles)
        vectors.append(cells.permute(0, 2, 3, 1).reshape(-1, cells.shape[1]))
    return torch.cat(vectors)


def greedy_coreset(points: torch.Tensor, size: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of ``size`` points picked greedily, each the farthest from those picked before.

    Distances are taken in a fixed random projection to PROJECTION_DIMS dimensions (distances
    survive it roughly, Johnson-Lindenstrauss), which is what makes 200k points x 4000 picks take a
    minute on 2 cores rather than five.
    """
    if size >= len(points):
        return torch.arange(len(points))
    generator = torch.Generator().manual_seed(seed)
    dims = min(PROJECTION_DIMS, points.shape[1])
    projection = torch.randn(points.shape[1], dims, generator=generator) / dims**0.5
    projected = points @ projection
    squared = (projected * projected).sum(1)
    picked = [int(torch.randint(len(points), (1,), generator=generator))]
    nearest = torch.full((len(points),), float("inf"))
    for _ in range(size - 1):
        centre = projected[picked[-1]]
        nearest = torch.minimum(nearest, squared - 2.0 * projected @ centre + centre @ centre)
        picked.append(int(nearest.argmax()))
    return torch.tensor(picked)


@dataclass(frozen=True)
class MemoryBank:
    vectors: torch.Tensor  # (k, C)
    sources: torch.Tensor  # (k,) index of the good image each vector came from
    tile_px: int
    overlap_px: int

    @property
    def squared_norms(self) -> torch.Tensor:
        return (self.vectors * self.vectors).sum(1)


def fit_memory_bank(
    extractor: Lite0Features, images_rgb: list[np.ndarray], *, size: int, seed: int, tile_px: int, overlap_px: int
) -> MemoryBank:
    vectors, sources = [], []
    for index, image in enumerate(images_rgb):
        cells = image_vectors(extractor, image, tile_px=tile_px, overlap_px=overlap_px)
        vectors.append(cells)
        sources.append(torch.full((len(cells),), index))
    every, origin = torch.cat(vectors), torch.cat(sources)
    keep = greedy_coreset(every, size, seed=seed)
    return MemoryBank(every[keep].contiguous(), origin[keep], tile_px, overlap_px)


@torch.no_grad()
def distance_map(
    extractor: Lite0Features, bank: MemoryBank, image_rgb: np.ndarray, *, leave_out: int | None = None
) -> np.ndarray:
    """(H, W) float32: each cell's distance to its nearest memory vector, upsampled, blended over
    tiles like the station's heatmaps, smoothed.

    The squared distance is ||x||^2 - 2 x.b + ||b||^2, one matrix product: never x - b broadcast
    over the bank, which is cells x bank x C floats. ``leave_out`` ignores the vectors of that
    good image, so a good image of the fit is scored as if it had not been (cross-fitting).
    """
    grid = TileGrid.for_image(image_rgb.shape[0], image_rgb.shape[1], bank.tile_px, bank.overlap_px)
    blender = Blender(grid)
    norms = bank.squared_norms
    if leave_out is not None:
        norms = torch.where(bank.sources == leave_out, torch.tensor(float("inf")), norms)
    for boxes, tiles in grid.batches(image_rgb, 8):
        cells = patch_features(extractor, tiles)
        n, c, h, w = cells.shape
        x = cells.permute(0, 2, 3, 1).reshape(-1, c)
        squared = (x * x).sum(1, keepdim=True) - 2.0 * x @ bank.vectors.T + norms[None]
        nearest = squared.amin(1).clamp_min(0.0).sqrt().reshape(n, 1, h, w)
        upsampled = F.interpolate(nearest, size=(bank.tile_px, bank.tile_px), mode="bilinear", align_corners=False)
        blender.add(boxes, upsampled[:, 0].numpy())
    return cv2.GaussianBlur(np.ascontiguousarray(blender.result()), (0, 0), SMOOTHING_SIGMA_PX)
