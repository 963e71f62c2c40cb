"""A contact sheet of what the generator draws: every fabric, seams, and every defect with its mask.

For people: the README shows it, and it is the quickest check that a new fabric or defect looks
like cloth and that its mask outline sits on what was drawn.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from qc.imageio import write_image_atomic
from qc.synth.defects import FABRIC_DEFECTS, SEAM_DEFECTS, apply_defect
from qc.synth.fabrics import FABRICS, render_fabric
from qc.synth.seams import draw_seam, random_seam, to_uint8

GAP_PX = 4
BACKGROUND = (28, 28, 32)
OUTLINE = (255, 40, 40)
_CANDIDATES = 6  # draws per defect tile; the clearest one is shown


def _label(tile: np.ndarray, text: str) -> None:
    """Small white text on a dark strip along the tile's bottom edge."""
    scale, thickness = 0.38, 1
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    top = tile.shape[0] - height - baseline - 6
    strip = tile[top:, : width + 8]
    strip[:] = (strip.astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(tile, text, (4, tile.shape[0] - baseline - 3), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thickness, cv2.LINE_AA)


def _outline(tile: np.ndarray, mask: np.ndarray) -> None:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(tile, contours, -1, OUTLINE, 1, cv2.LINE_8)


def _defect_tile(seed: int, fabric: str, name: str, tile_px: int) -> np.ndarray:
    """The clearest of a few draws of `name` on `fabric`, outlined and labelled."""
    best, best_score = None, -1.0
    for attempt in range(_CANDIDATES):
        rng = np.random.default_rng([seed, 7, FABRICS.index(fabric), attempt])
        cloth = render_fabric(rng, fabric, (tile_px, tile_px))
        if name in SEAM_DEFECTS:
            seam = random_seam(rng, cloth)
            before = to_uint8(draw_seam(cloth, seam)[0])
            after, mask = apply_defect(name, cloth, rng, seam=seam)
        else:
            before = cloth
            after, mask = apply_defect(name, cloth, rng)
        inside = mask > 0
        change = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)[inside].mean()
        # Clear, not huge (a defect filling the tile hides the cloth it sits on), and near the middle.
        ys, xs = np.nonzero(inside)
        off_centre = max(abs(ys.mean() / tile_px - 0.5), abs(xs.mean() / tile_px - 0.5))
        score = change * min(inside.mean(), 0.08) ** 0.5 * (1.0 - off_centre)
        if score > best_score:
            best, best_score = (after, mask), score
    image, mask = best
    tile = image.copy()
    _outline(tile, mask)
    _label(tile, name)
    return tile


def _seam_tile(seed: int, index: int, tile_px: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 8, index])
    fabric = FABRICS[(3 * index + 1) % len(FABRICS)]
    cloth = render_fabric(rng, fabric, (tile_px, tile_px))
    seam = random_seam(rng, cloth)
    tile = to_uint8(draw_seam(cloth, seam)[0])
    _label(tile, f"good: {seam.kind} seam")
    return tile


def write_gallery(path: Path | str, *, seed: int = 0, tile_px: int = 160) -> Path:
    """Write a PNG contact sheet to `path`: a row of good fabrics, then good seams and every defect
    type (mask outlined in red, name below). Same seed, same bytes. Returns the path."""
    if tile_px < 64:
        raise ValueError(f"tile_px must be at least 64, got {tile_px}")
    columns = len(FABRICS)
    tiles = []
    for index, fabric in enumerate(FABRICS):
        tile = render_fabric(np.random.default_rng([seed, 6, index]), fabric, (tile_px, tile_px))
        _label(tile, fabric)
        tiles.append(tile)
    for index, name in enumerate(FABRIC_DEFECTS):
        tiles.append(_defect_tile(seed, FABRICS[index % len(FABRICS)], name, tile_px))
    tiles += [_seam_tile(seed, index, tile_px) for index in range(3)]
    for index, name in enumerate(SEAM_DEFECTS):
        tiles.append(_defect_tile(seed, FABRICS[(index + 3) % len(FABRICS)], name, tile_px))
    rows = -(-len(tiles) // columns)
    step = tile_px + GAP_PX
    sheet = np.empty((rows * step + GAP_PX, columns * step + GAP_PX, 3), np.uint8)
    sheet[:] = BACKGROUND
    for k, tile in enumerate(tiles):
        top, left = GAP_PX + (k // columns) * step, GAP_PX + (k % columns) * step
        sheet[top: top + tile_px, left: left + tile_px] = tile
    # Six bits per channel look the same and keep the PNG small enough for a README.
    return write_image_atomic(Path(path), sheet & 0xFC)
