"""Cutting images of any size into the network's tiles and blending the tile heatmaps back.

A 4096x256 line-scan strip or a 12 MP garment photo is inspected tile by tile at the resolution the
network was trained on; overlapping tiles are blended with a feathered weight so tile seams do not
show up as heatmap edges (or hide a defect that straddles two tiles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile`` px overlapping by >= ``overlap``."""
    if tile <= 0:
        raise ValueError("tile must be positive")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile={tile})")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # the last tile ends flush with the image: no padding needed
    return starts


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """Separable weight (tile, tile): ramps up over half the overlap from each edge, flat inside."""
    ramp = max(1, overlap // 2)
    idx = np.arange(tile, dtype=np.float32)
    edge_dist = np.minimum(idx + 1, tile - idx)
    w = np.clip(edge_dist / ramp, 1.0 / ramp, 1.0)
    return np.outer(w, w).astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one (padded) image lie."""

    height: int  # of the original image
    width: int
    padded_height: int
    padded_width: int
    tile: int
    overlap: int
    boxes: tuple[tuple[int, int], ...]  # (y0, x0) of each tile in the padded image

    @classmethod
    def for_image(cls, height: int, width: int, tile: int, overlap: int) -> "TileGrid":
        ph, pw = max(height, tile), max(width, tile)
        boxes = tuple(
            (y, x) for y in tile_starts(ph, tile, overlap) for x in tile_starts(pw, tile, overlap)
        )
        return cls(height, width, ph, pw, tile, overlap, boxes)

    def pad(self, image: np.ndarray) -> np.ndarray:
        """Mirror-pad an image smaller than a tile up to the tile size (mirroring adds no edges)."""
        dy, dx = self.padded_height - self.height, self.padded_width - self.width
        if dy == 0 and dx == 0:
            return image
        pad = [(0, dy), (0, dx)] + [(0, 0)] * (image.ndim - 2)
        return np.pad(image, pad, mode="symmetric")

    def cut(self, image: np.ndarray) -> np.ndarray:
        """(n_tiles, tile, tile, C) views of the padded image."""
        padded = self.pad(image)
        t = self.tile
        return np.stack([padded[y : y + t, x : x + t] for y, x in self.boxes])

    def blend(self, tile_maps: np.ndarray) -> np.ndarray:
        """Weighted average of (n_tiles, tile, tile) maps into one (height, width) float32 map."""
        t = self.tile
        window = blend_window(t, self.overlap)
        acc = np.zeros((self.padded_height, self.padded_width), np.float32)
        weight = np.zeros_like(acc)
        for (y, x), tile_map in zip(self.boxes, tile_maps):
            acc[y : y + t, x : x + t] += tile_map * window
            weight[y : y + t, x : x + t] += window
        return (acc / np.maximum(weight, 1e-12))[: self.height, : self.width]
