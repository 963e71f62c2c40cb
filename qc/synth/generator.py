"""One synthetic fabric tile, good or with one defect, with its exact defect mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qc.synth.defects import DEFECTS, FABRIC_DEFECTS, SEAM_DEFECTS, apply_defect
from qc.synth.fabrics import FABRICS, render_fabric
from qc.synth.seam_defects import seam_defect_with_seam_mask
from qc.synth.seams import draw_seam, random_seam, to_uint8
from qc.synth.style import FabricStyle, photograph_of, styled_seam

# Share of tiles with a seam when the caller leaves it to chance: enough that a model learns seams
# are normal cloth, few enough that plain cloth dominates as it does on a garment.
SEAM_PROBABILITY = 0.3


@dataclass(frozen=True)
class SynthSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) uint8, 255 = defect
    fabric: str
    defect_type: str | None
    seam_mask: np.ndarray | None = None  # (H, W) uint8, 255 = stitches and fold shading; None: no seam


def pick(rng: np.random.Generator, names: tuple[str, ...]) -> str:
    return names[int(rng.integers(len(names)))]


def generate_sample(
    rng: np.random.Generator,
    *,
    size_px: tuple[int, int] = (256, 256),
    fabric: str | None = None,
    defect: str | None = "random",
    seam: bool | None = None,
    style: FabricStyle | None = None,
) -> SynthSample:
    """A fabric tile of size_px (height, width); defect "random", None (good) or a name.

    seam: True draws a seam across the tile, False none, None a seam on SEAM_PROBABILITY of tiles
    (always when the defect is a seam defect). The seam is never in the mask. A random defect is
    drawn from all DEFECTS, or from the fabric defects when seam=False. ``style`` (qc.synth.style):
    a window of that style's cloth, and its seam's look, instead of a colourway and seam of the
    tile's own; ``fabric`` must then be None or the style's. Deterministic given the rng state.
    """
    if fabric is not None and fabric not in FABRICS:
        raise ValueError(f"unknown fabric {fabric!r}; known: {', '.join(FABRICS)}")
    if defect not in (None, "random") and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
    if seam is False and defect in SEAM_DEFECTS:
        raise ValueError(f"{defect} is a seam defect and needs a seam; seam=False forbids one")
    height, width = (int(side) for side in size_px)
    if height < 16 or width < 16:
        raise ValueError(f"size_px must be at least 16x16, got {size_px}")
    if style is not None:
        if fabric not in (None, style.fabric):
            raise ValueError(f"fabric {fabric!r} differs from the style's {style.fabric!r}")
        fabric_name = style.fabric
        image = photograph_of(style, rng, (height, width))
    else:
        fabric_name = fabric if fabric is not None else pick(rng, FABRICS)
        image = render_fabric(rng, fabric_name, (height, width))
    if defect == "random":
        defect_name = pick(rng, FABRIC_DEFECTS if seam is False else DEFECTS)
    else:
        defect_name = defect
    has_seam = defect_name in SEAM_DEFECTS or (rng.random() < SEAM_PROBABILITY if seam is None else seam)
    mask = np.zeros((height, width), np.uint8)
    seam_mask = None
    if has_seam:
        spec = random_seam(rng, image) if style is None else styled_seam(style, rng, image)
        if defect_name in SEAM_DEFECTS:
            image, mask, seam_mask = seam_defect_with_seam_mask(defect_name, image, rng, spec)
            return SynthSample(image, mask, fabric_name, defect_name, seam_mask)
        drawn, seam_mask = draw_seam(image, spec)
        image = to_uint8(drawn)
    if defect_name is not None:
        image, mask = apply_defect(defect_name, image, rng)
    return SynthSample(image, mask, fabric_name, defect_name, seam_mask)
