"""One synthetic fabric tile, good or with one defect, with its exact defect mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qc.synth.defects import DEFECTS, apply_defect
from qc.synth.fabrics import FABRICS, render_fabric


@dataclass(frozen=True)
class SynthSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) uint8, 255 = defect
    fabric: str
    defect_type: str | None


def pick(rng: np.random.Generator, names: tuple[str, ...]) -> str:
    return names[int(rng.integers(len(names)))]


def generate_sample(
    rng: np.random.Generator,
    *,
    size_px: tuple[int, int] = (256, 256),
    fabric: str | None = None,
    defect: str | None = "random",
) -> SynthSample:
    """A fabric tile of size_px (height, width); defect "random", None (good) or a name.

    Deterministic given the rng state.
    """
    if fabric is not None and fabric not in FABRICS:
        raise ValueError(f"unknown fabric {fabric!r}; known: {', '.join(FABRICS)}")
    if defect not in (None, "random") and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
    height, width = (int(side) for side in size_px)
    if height < 16 or width < 16:
        raise ValueError(f"size_px must be at least 16x16, got {size_px}")
    fabric_name = fabric if fabric is not None else pick(rng, FABRICS)
    image = render_fabric(rng, fabric_name, (height, width))
    if defect is None:
        return SynthSample(image, np.zeros((height, width), np.uint8), fabric_name, None)
    defect_name = pick(rng, DEFECTS) if defect == "random" else defect
    image, mask = apply_defect(defect_name, image, rng)
    return SynthSample(image, mask, fabric_name, defect_name)
