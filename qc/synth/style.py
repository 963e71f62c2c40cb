"""One roll of cloth and one garment style for a whole dataset.

By default every synthetic photograph draws its own colourway, yarn pitch and, where it has one, its
own seam thread and stitch: a fabric name is a family. A factory onboards one fabric and one garment
style, whose photographs show the same cloth and the same seams in other places. A ``FabricStyle``
is drawn once: the cloth, three times the photograph's side, before the camera; and the seam's
stitch, thread and fold. Each photograph then cuts its own window from the cloth and photographs it
(lighting, mottling, focus, noise of its own), and a seam keeps the style's look on a path of its
own. ``qc synth --one-style`` writes such a dataset; ``qc bench onboarding -- --one-style`` measures
the detector on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from qc.synth.fabrics import FABRIC_RENDERERS, FABRICS, photograph
from qc.synth.seams import Seam, random_seam, to_uint8

CLOTH_SCALE = 3  # the cloth's side in photographs: enough windows that two photographs rarely overlap much


@dataclass(frozen=True)
class FabricStyle:
    fabric: str
    cloth: np.ndarray = field(repr=False)  # (H, W, 3) float32 RGB 0..1, before the camera
    seam: Seam  # its kind, stitch, thread and fold are the style's; its path is one draw among many


def fabric_style(rng: np.random.Generator, fabric: str, size_px: tuple[int, int]) -> FabricStyle:
    """The cloth and seam style of ``fabric`` for photographs of ``size_px`` (height, width)."""
    if fabric not in FABRICS:
        raise ValueError(f"unknown fabric {fabric!r}; known: {', '.join(FABRICS)}")
    height, width = size_px
    cloth = FABRIC_RENDERERS[fabric](rng, (CLOTH_SCALE * height, CLOTH_SCALE * width))
    return FabricStyle(fabric, cloth, random_seam(rng, to_uint8(cloth)))


def photograph_of(style: FabricStyle, rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    """A (H, W, 3) uint8 RGB photograph of a window of the style's cloth, with a camera of its own."""
    height, width = size_px
    rows, cols = style.cloth.shape[:2]
    if height > rows or width > cols:
        raise ValueError(f"a {height}x{width} photograph does not fit the style's {rows}x{cols} cloth")
    top, left = int(rng.integers(0, rows - height + 1)), int(rng.integers(0, cols - width + 1))
    return photograph(rng, style.cloth[top : top + height, left : left + width])


def styled_seam(style: FabricStyle, rng: np.random.Generator, image: np.ndarray) -> Seam:
    """A seam across ``image`` on a path of its own, in the style's stitch, thread and fold."""
    own, look = random_seam(rng, image), style.seam
    return replace(
        own, kind=look.kind, stitch_px=look.stitch_px, gap_px=look.gap_px, thread_px=look.thread_px,
        thread=look.thread, fold_px=look.fold_px, fold_light=look.fold_light, fold_dark=look.fold_dark,
    )
