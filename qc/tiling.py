"""Cutting images of any size into the network's tiles and blending the tile heatmaps back.

A 4096x256 line-scan strip or a 12 MP garment photo is inspected tile by tile at the resolution the
network was trained on; overlapping tiles are blended with a feathered weight so tile seams do not
show up as heatmap edges (or hide a defect that straddles two tiles).

A large image is cut and blended a batch of tiles at a time (:meth:`TileGrid.batches`,
:class:`Blender`): memory holds one float32 map of the image's size, never all its tiles.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


def min_side_px(tile: int) -> int:
    """The smallest image side worth inspecting with ``tile`` px tiles: half a tile.

    A smaller image is mirror-padded up to a tile (:meth:`TileGrid.pad`) with more than one
    reflection per side, so most of what the network sees are mirrored copies of a few pixels
    and their seams, not fabric. (The default model's 128 px half tile is also its training crop.)
    """
    return (tile + 1) // 2


def _window_1d(tile: int, overlap: int) -> np.ndarray:
    ramp = max(1, overlap // 2)
    idx = np.arange(tile, dtype=np.float32)
    edge_dist = np.minimum(idx + 1, tile - idx)
    return np.clip(edge_dist / ramp, 1.0 / ramp, 1.0).astype(np.float32)


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """Separable weight (tile, tile): ramps up over half the overlap from each edge, flat inside."""
    w = _window_1d(tile, overlap)
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
        """(n_tiles, tile, tile, C): every tile of the padded image at once."""
        _, tiles = next(self.batches(image, len(self.boxes)))
        return tiles

    def batches(
        self, image: np.ndarray, size: int
    ) -> Iterator[tuple[tuple[tuple[int, int], ...], np.ndarray]]:
        """(boxes, (n <= size, tile, tile, C) tiles), ``size`` tiles at a time, in ``boxes`` order."""
        padded = self.pad(image)
        t = self.tile
        for start in range(0, len(self.boxes), size):
            boxes = self.boxes[start : start + size]
            yield boxes, np.stack([padded[y : y + t, x : x + t] for y, x in boxes])

    def blend(self, tile_maps: np.ndarray) -> np.ndarray:
        """Weighted average of (n_tiles, tile, tile) maps into one (height, width) float32 map."""
        blender = Blender(self)
        blender.add(self.boxes, tile_maps)
        return blender.result()


class Blender:
    """A grid's weighted average of tile maps, added a batch at a time.

    It holds one float32 sum of the (padded) image's size. The weights need no second one: the
    boxes are every row start by every column start and the window is an outer product, so the
    weight summed at a pixel is (sum over row starts) x (sum over column starts).
    """

    def __init__(self, grid: TileGrid):
        self.grid = grid
        self._window_1d = _window_1d(grid.tile, grid.overlap)
        self._window = np.outer(self._window_1d, self._window_1d)
        self._sum = np.zeros((grid.padded_height, grid.padded_width), np.float32)

    def add(self, boxes: Sequence[tuple[int, int]], tile_maps: np.ndarray) -> None:
        t = self.grid.tile
        for (y, x), tile_map in zip(boxes, tile_maps):
            self._sum[y : y + t, x : x + t] += tile_map * self._window

    def _axis_weight(self, length: int) -> np.ndarray:
        weight = np.zeros(length, np.float32)
        for start in tile_starts(length, self.grid.tile, self.grid.overlap):
            weight[start : start + self.grid.tile] += self._window_1d
        return np.maximum(weight, 1e-12)

    def result(self) -> np.ndarray:
        """The (height, width) average, divided in place in the sum: call once, after every add."""
        self._sum /= self._axis_weight(self.grid.padded_height)[:, None]
        self._sum /= self._axis_weight(self.grid.padded_width)[None, :]
        return self._sum[: self.grid.height, : self.grid.width]
