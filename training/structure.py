"""Where a good image has structure: detail well above the weave's own, a seam's stitches, a print's
or a stripe's edge, a selvage. Rare structure is where a detector trained on random crops knows the
cloth least (a seam crosses about 4 % of the 128-px crops of a garment photograph), so training can
draw some of its crops and anomalies there (data.structure_crop_share, anomalies.structure_share).
A uniform weave has no structure; on it nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

STRUCTURE_RATIO = 3.0
"""Detail this many times the image's median counts as structure."""
MIN_STRUCTURE_SHARE = 0.002
"""An image whose structure covers less of it has none: a few stray pixels of a plain weave would
otherwise draw every structure crop (a seam across a 512-px photograph covers about 4 %)."""
CELL_PX = 4
"""An image's structure is kept per cell of this many px a side: a 4096x256 strip's map is 64K cells."""


def structure_excess(image: np.ndarray) -> np.ndarray:
    """(H, W) float32: each pixel's detail beyond STRUCTURE_RATIO times the image's median detail, 0
    where there is none or where the structure covers less than MIN_STRUCTURE_SHARE of the image.

    Detail: the grey image band-passed (a 1.5-px blur minus an 8-px one), rectified and smoothed at
    2 px. The narrow blur mutes a weave's fine period, the wide one the cloth's shading; a stitch
    line keeps its sign along its length and survives both. Where structure is everywhere (a dense
    print) it is the image's own median and little stands out.
    """
    pixels = image.astype(np.float32)
    grey = (pixels[:, :, 0] + pixels[:, :, 1] + pixels[:, :, 2]) * np.float32(1.0 / 3.0)
    band = np.abs(cv2.GaussianBlur(grey, (0, 0), 1.5) - cv2.GaussianBlur(grey, (0, 0), 8.0))
    energy = cv2.GaussianBlur(band, (0, 0), 2.0)
    excess = np.maximum(energy - STRUCTURE_RATIO * max(float(np.median(energy)), 0.5), 0.0)
    if np.count_nonzero(excess) < MIN_STRUCTURE_SHARE * excess.size:
        excess[:] = 0.0
    return excess


def structure_weights(image: np.ndarray) -> np.ndarray | None:
    """Where the crop has structure, as sampling weights summing to 1, or None where it has none.
    The excess squared: a strong line's wide blur leaves a rim of excess a few px either side of it,
    and the line itself is what an anomaly should interrupt."""
    excess = np.square(structure_excess(image))
    total = float(excess.sum())
    return excess / total if total > 0.0 else None


@dataclass(frozen=True)
class StructureSampler:
    """Draws points of one image in proportion to its structure (cells of CELL_PX, a random pixel
    within the cell)."""

    cumulative: np.ndarray
    """cumulative share of the structure up to each cell, row-major"""
    cells_wide: int
    height: int
    width: int

    @classmethod
    def of(cls, image: np.ndarray) -> StructureSampler | None:
        """The image's sampler, or None where it has no structure."""
        excess = np.square(structure_excess(image))  # as structure_weights
        h, w = excess.shape
        ch, cw = -(-h // CELL_PX), -(-w // CELL_PX)
        padded = np.zeros((ch * CELL_PX, cw * CELL_PX), np.float64)
        padded[:h, :w] = excess
        cells = padded.reshape(ch, CELL_PX, cw, CELL_PX).sum(axis=(1, 3)).ravel()
        total = float(cells.sum())
        if total <= 0.0:
            return None
        return cls(np.cumsum(cells / total), cw, h, w)

    def point(self, rng: np.random.Generator) -> tuple[int, int]:
        """(y, x) of a pixel drawn in proportion to the structure around it."""
        cell = min(int(np.searchsorted(self.cumulative, rng.random(), side="right")), len(self.cumulative) - 1)
        cy, cx = divmod(cell, self.cells_wide)
        y = min(cy * CELL_PX + int(rng.integers(CELL_PX)), self.height - 1)
        x = min(cx * CELL_PX + int(rng.integers(CELL_PX)), self.width - 1)
        return y, x
