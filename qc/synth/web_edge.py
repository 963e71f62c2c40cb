"""The edge of a web of cloth, as a line-scan camera sees it: bed | (guide line) | selvage | cloth.

Why (2026-12-07): a network pretrained on tiles of cloth alone learnt that a boundary between two
textures is a pasted anomaly. Onboarded on AITEX 02 from that start, it put its hottest heat on
most good strips where the selvage band meets the body of the cloth (docs/detector-log.md, "A lower
learning rate from the synthetic start, and where that start fires on 02"). Every real strip holds
such an edge, so a start meant for real webs must see them as normal cloth.

What a real edge holds (the AITEX dev strips): beyond the cloth, either flat saturated padding or a
mottled machine bed, sometimes a thin bright guide line, then a band of selvage (denser yarns in
vertical stripes, 20-60 px) and the cloth. The edge runs along the strip, so it is vertical here.
"""

from __future__ import annotations

import cv2
import numpy as np

BED_KINDS = ("padding", "bed", "none")


def _stripe_profile(rng: np.random.Generator, width: int) -> np.ndarray:
    """Relative brightness of each selvage column: stripes 2-8 px wide, up to 35 % off the cloth."""
    profile = np.empty(width, np.float32)
    x = 0
    while x < width:
        stripe = int(rng.integers(2, 9))
        profile[x:x + stripe] = rng.uniform(-0.35, 0.2)
        x += stripe
    return profile


def _bed(rng: np.random.Generator, kind: str, size_px: tuple[int, int], cloth_mean: np.ndarray) -> np.ndarray:
    """Float RGB 0..255 of what lies beyond the cloth: saturated padding or a mottled bed."""
    height, width = size_px
    if kind == "padding":
        return np.full((height, width, 3), 255.0, np.float32)
    level = rng.uniform(0.5, 1.3) * float(cloth_mean.mean())
    mottle = cv2.resize(
        rng.standard_normal((max(height // 24, 2), max(width // 24, 2))).astype(np.float32), (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    grain = rng.standard_normal((height, width)).astype(np.float32)
    bed = level * (1.0 + 0.12 * mottle) + rng.uniform(1.0, 4.0) * grain
    return np.repeat(bed[..., None], 3, axis=2)


def add_web_edge(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """`image` (H, W, 3 uint8 RGB cloth) with a web edge on its left or right side; the cloth keeps the rest.

    The selvage keeps the cloth's own fine texture (its high-pass part) over a stripe profile, so it
    reads as the same cloth woven denser, not as a pasted patch. The result is a good image: no mask.
    """
    height, width = image.shape[:2]
    cloth = image.astype(np.float32)
    mirrored = rng.random() < 0.5
    if mirrored:
        cloth = cloth[:, ::-1]
    kind = BED_KINDS[int(rng.integers(len(BED_KINDS)))]
    bed_w = 0 if kind == "none" else int(rng.integers(width // 16, width * 2 // 5 + 1))
    selvage_w = int(rng.integers(max(width // 12, 4), max(width // 4, 5) + 1))
    selvage_end = min(bed_w + selvage_w, width - width // 4)  # at least a quarter stays plain cloth

    result = cloth.copy()
    cloth_mean = cloth.reshape(-1, 3).mean(axis=0)
    fine = cloth - cv2.GaussianBlur(cloth, (0, 0), 2.0)
    band = slice(bed_w, selvage_end)
    profile = _stripe_profile(rng, selvage_end - bed_w)
    result[:, band] = cloth_mean * (1.0 + profile)[None, :, None] + rng.uniform(0.6, 1.2) * fine[:, band]
    if bed_w:
        result[:, :bed_w] = _bed(rng, kind, (height, bed_w), cloth_mean)
        if rng.random() < 0.4:  # a guide line, as on AITEX 04 and 06
            line_w = int(rng.integers(1, 4))
            result[:, max(bed_w - line_w, 0):bed_w] = rng.uniform(200.0, 255.0)
    # The camera's focus softens the new edges as it softened the cloth; saturated padding stays flat.
    soft = cv2.GaussianBlur(result, (0, 0), rng.uniform(0.4, 0.9))
    if kind == "padding":
        soft[:, :max(bed_w - 2, 0)] = 255.0
    soft[:, selvage_end + 3:] = cloth[:, selvage_end + 3:]  # the cloth beyond the selvage is untouched
    if mirrored:
        soft = soft[:, ::-1]
    return np.clip(soft + 0.5, 0, 255).astype(np.uint8)
