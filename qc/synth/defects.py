"""Defect renderers: each takes (image, rng) and returns (new_image, mask) with an exact mask.

Fabric defects are here; seam defects (a fault in a seam, drawn on one) are in seam_defects.py and
are reached through the same `apply_defect`.

Contract, relied on by training and tests: pixels farther than BLUR_MARGIN_PX from the mask are
bit-identical to the input; pixels inside the mask change visibly. Only the mask's own edge is
softened (a Gaussian with a 5x5 support), so the margin is exactly 2 px.

Each defect picks whether it lightens or darkens from the fabric under it, so it stays visible on
dark denim as on white shirting, and draws its size and contrast from subtle to obvious.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from qc.synth.blending import (  # noqa: F401  (BLUR_MARGIN_PX is re-exported)
    BLUR_MARGIN_PX,
    _blend,
    _irregular_blob,
    _log_uniform,
    _random_centre,
    _toward_contrast,
)
from qc.synth.seam_defects import SEAM_DEFECT_RENDERERS, SEAM_DEFECTS, apply_seam_defect
from qc.synth.seams import Seam

DefectRenderer = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]

DEFECT_RENDERERS: dict[str, DefectRenderer] = {}


def register_defect(name: str) -> Callable[[DefectRenderer], DefectRenderer]:
    def decorate(renderer: DefectRenderer) -> DefectRenderer:
        if name in DEFECT_RENDERERS:
            raise ValueError(f"defect {name!r} is registered twice")
        DEFECT_RENDERERS[name] = renderer
        return renderer

    return decorate


def apply_defect(
    name: str, image: np.ndarray, rng: np.random.Generator, *, seam: Seam | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(image with the defect, uint8 0/255 mask of the defect) on any uint8 RGB image.

    A seam defect needs a seam: `image` is then the cloth before sewing, `seam` the seam to spoil
    (one is drawn from the rng when None), and outside the mask the result is the good seam.
    """
    if name in SEAM_DEFECT_RENDERERS:
        return apply_seam_defect(name, image, rng, seam)
    if name not in DEFECT_RENDERERS:
        known = ", ".join([*DEFECT_RENDERERS, *SEAM_DEFECT_RENDERERS])
        raise ValueError(f"unknown defect {name!r}; known: {known}")
    return DEFECT_RENDERERS[name](image, rng)


@register_defect("hole")
def hole(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[:2]
    radius = _log_uniform(rng, 2.0, 22.0)
    centre = _random_centre(rng, size, radius + 2)
    opening = _irregular_blob(rng, size, centre, radius, roughness=0.3)
    fray_px = int(rng.integers(1, 3))
    shape = cv2.dilate(opening, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * fray_px + 1,) * 2))
    image_f = image.astype(np.float32) / 255.0
    # Through the hole one sees what lies beneath: a dark table or belt, or a bright backlight.
    fabric_mean = float(image_f[shape > 0].mean())
    beneath = rng.uniform(0.02, 0.18) if fabric_mean > 0.3 else rng.uniform(0.75, 0.95)
    changed = np.full_like(image_f, beneath)
    inside = shape > 0
    changed[inside] += np.float32(0.01) * rng.standard_normal((int(inside.sum()), 3), dtype=np.float32)
    # Torn yarn ends around the opening: fabric pulled, brighter or darker, and hairy.
    ring = inside & (opening == 0)
    frayed = _toward_contrast(image_f, shape, rng.uniform(0.3, 0.6), rng)[ring]
    changed[ring] = frayed + np.float32(0.05) * rng.standard_normal(frayed.shape, dtype=np.float32)
    return _blend(image, shape, changed)


@register_defect("stain")
def stain(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = size = image.shape[:2]
    radius = _log_uniform(rng, 6.0, 45.0)
    centre = _random_centre(rng, size, radius * 0.5)
    shape = _irregular_blob(rng, size, centre, radius, roughness=0.5)
    image_f = image.astype(np.float32) / 255.0
    fabric_mean = float(image_f[shape > 0].mean())
    # Oil, grease, rust and dirt darken; on dark cloth a bleach or chalk mark lightens.
    if fabric_mean > 0.35:
        tint = np.array(rng.choice([[0.35, 0.25, 0.12], [0.2, 0.2, 0.2], [0.45, 0.2, 0.08], [0.1, 0.12, 0.3]]))
    else:
        tint = np.array(rng.choice([[0.85, 0.85, 0.8], [0.8, 0.75, 0.55], [0.9, 0.6, 0.4]]))
    tint = tint.astype(np.float32) * np.float32(rng.uniform(0.85, 1.15))
    blotch = cv2.resize(rng.uniform(0.7, 1.0, (5, 5)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    # A dried stain is darkest at its rim, where the liquid carried the dirt.
    distance = cv2.distanceTransform(shape, cv2.DIST_L2, 3)
    rim = 1.0 + 0.3 * np.exp(-distance / 2.0)
    strength = np.clip(rng.uniform(0.2, 0.8) * blotch * rim, 0.15, 0.95)
    changed = image_f + strength[..., None] * (tint - image_f)
    return _blend(image, shape, changed)


def _yarn_fault(
    image: np.ndarray, rng: np.random.Generator, vertical: bool, *, full_length: bool = False, prefer: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A missing or broken yarn: a thin line along the warp (vertical) or weft direction."""
    height, width = size = image.shape[:2]
    length_axis, cross_axis = (height, width) if vertical else (width, height)
    length = length_axis if full_length else int(length_axis * rng.uniform(0.35, 1.0))
    start = int(rng.integers(0, length_axis - length + 1))
    offset = rng.uniform(4, cross_axis - 4)
    drift = np.tan(np.deg2rad(rng.uniform(-2.0, 2.0))) * length
    thickness = int(rng.integers(1, 4))
    a, b = (offset, start), (offset + drift, start + length - 1)
    if not vertical:
        a, b = a[::-1], b[::-1]
    shape = np.zeros(size, np.uint8)
    cv2.line(shape, tuple(int(round(c)) for c in a), tuple(int(round(c)) for c in b), 1, thickness)
    image_f = image.astype(np.float32) / 255.0
    along = cv2.resize(rng.uniform(0.75, 1.0, (4, 4)).astype(np.float32), (width, height))
    changed = _toward_contrast(image_f, shape, rng.uniform(0.2, 0.8) * along, rng, prefer=prefer)
    return _blend(image, shape, changed)


@register_defect("broken_end")
def broken_end(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _yarn_fault(image, rng, vertical=True)


@register_defect("broken_pick")
def broken_pick(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _yarn_fault(image, rng, vertical=False)


@register_defect("slub")
def slub(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thick, spindle-shaped stretch of yarn, raised and usually lighter than the cloth."""
    size = image.shape[:2]
    length = rng.uniform(12.0, 70.0)
    half_width = rng.uniform(1.5, 4.0)
    centre = _random_centre(rng, size, length / 2 + 2)
    angle = (0.0 if rng.integers(2) else np.pi / 2) + np.deg2rad(rng.uniform(-3, 3))
    t = np.linspace(-0.5, 0.5, 24)
    widths = half_width * np.sin(np.pi * (t + 0.5)) ** 0.7
    direction, normal = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    axis = np.array(centre) + np.outer(t * length, direction)
    outline = np.concatenate([axis + np.outer(widths, normal), (axis - np.outer(widths, normal))[::-1]])
    shape = np.zeros(size, np.uint8)
    cv2.fillPoly(shape, [np.round(outline).astype(np.int32)], 1)
    image_f = image.astype(np.float32) / 255.0
    distance = cv2.distanceTransform(shape, cv2.DIST_L2, 3)
    strength = rng.uniform(0.2, 0.75) * (0.7 + 0.3 * np.clip(distance / max(half_width, 1.0), 0, 1))
    changed = _toward_contrast(image_f, shape, strength, rng, prefer=1)
    return _blend(image, shape, changed)


@register_defect("knot")
def knot(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small tight lump of yarn with one or two short loose tails."""
    size = image.shape[:2]
    radius = rng.uniform(2.0, 7.0)
    centre = _random_centre(rng, size, radius + 14)
    shape = _irregular_blob(rng, size, centre, radius, roughness=0.2)
    for _ in range(int(rng.integers(1, 3))):
        angle, tail = rng.uniform(0, 2 * np.pi), rng.uniform(radius + 3, radius + 12)
        end = (centre[0] + tail * np.cos(angle), centre[1] + tail * np.sin(angle))
        cv2.line(shape, (int(centre[0]), int(centre[1])), (int(end[0]), int(end[1])), 1, 1)
    image_f = image.astype(np.float32) / 255.0
    ys, xs = np.indices(size, dtype=np.float32)
    # Lit from one side: a lump shows a highlight and falls off toward its shadowed side.
    light = rng.uniform(0, 2 * np.pi)
    side = ((xs - centre[0]) * np.cos(light) + (ys - centre[1]) * np.sin(light)) / (radius + 1)
    strength = rng.uniform(0.25, 0.8) * (0.75 + 0.25 * np.clip(side, -1, 1))
    changed = _toward_contrast(image_f, shape, strength, rng, prefer=1)
    return _blend(image, shape, changed)


@register_defect("crease")
def crease(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A pressed-in fold across the piece: one flank catches the light, the other is in shadow."""
    size = image.shape[:2]
    half_width = rng.uniform(2.0, 8.0)
    centre = _random_centre(rng, size, 8)
    angle = rng.uniform(0, np.pi)
    ys = np.arange(size[0], dtype=np.float32)[:, None]
    xs = np.arange(size[1], dtype=np.float32)[None, :]
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    dx, dy = xs - np.float32(centre[0]), ys - np.float32(centre[1])
    signed = (dy * cos - dx * sin) / np.float32(half_width)
    along = dx * cos + dy * sin
    # A crease need not run edge to edge; it fades out where the fold ends.
    extent = rng.uniform(0.4, 1.5) * max(size)
    shape = ((np.abs(signed) < 1.0) & (np.abs(along) < extent / 2)).astype(np.uint8)
    band = shape > 0
    image_f = image.astype(np.float32) / 255.0
    fabric, position = image_f[band], signed[band][:, None]
    lift = np.float32(rng.uniform(0.15, 0.6)) * (1.0 - 0.5 * np.abs(position))
    lit = np.clip(fabric + lift * (1.0 - fabric), 0, 1)
    changed = image_f.copy()
    changed[band] = np.where(position > 0, lit, fabric * (1.0 - lift))
    return _blend(image, shape, changed)


@register_defect("foreign_fiber")
def foreign_fiber(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A stray fibre or hair woven in or lying on the cloth: a thin curved line of another colour."""
    size = image.shape[:2]
    steps = int(rng.integers(15, 70))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.15, steps))
    step_px = 1.5
    start = np.array(_random_centre(rng, size, 4))
    points = start + np.cumsum(step_px * np.stack([np.cos(heading), np.sin(heading)], axis=1), axis=0)
    points = np.vstack([start, points])
    points[:, 0] = np.clip(points[:, 0], 0, size[1] - 1)
    points[:, 1] = np.clip(points[:, 1], 0, size[0] - 1)
    shape = np.zeros(size, np.uint8)
    cv2.polylines(shape, [np.round(points).astype(np.int32)], False, 1, int(rng.integers(1, 3)))
    image_f = image.astype(np.float32) / 255.0
    fabric_mean = float(image_f[shape > 0].mean())
    colour = rng.uniform(0.0, 0.25, 3) if fabric_mean > 0.45 else rng.uniform(0.7, 1.0, 3)
    changed = image_f + rng.uniform(0.35, 0.9) * (colour.astype(np.float32) - image_f)
    return _blend(image, shape, changed)


@register_defect("float")
def float_yarn(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A yarn that missed its interlacing and lies loose over several crossing yarns: smooth, raised."""
    size = image.shape[:2]
    vertical = bool(rng.integers(2))
    length, width = _log_uniform(rng, 8.0, 45.0), int(rng.integers(1, 4))
    centre = np.array(_random_centre(rng, size, length / 2 + 3))
    angle = (np.pi / 2 if vertical else 0.0) + np.deg2rad(rng.uniform(-4, 4))
    half = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    shape = np.zeros(size, np.uint8)
    ends = [tuple(int(round(c * 8)) for c in centre + s * half) for s in (-1, 1)]
    cv2.line(shape, ends[0], ends[1], 1, width, cv2.LINE_8, 3)
    image_f = image.astype(np.float32) / 255.0
    # Nothing crosses a float, so the weave texture under it smooths out along the yarn.
    smooth = cv2.blur(image_f, (1, 9) if vertical else (9, 1))
    changed = _toward_contrast(smooth, shape, rng.uniform(0.15, 0.5), rng, prefer=1)
    return _blend(image, shape, changed)


@register_defect("missing_yarn")
def missing_yarn(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A warp or weft yarn absent over the whole piece: an open line one sees through."""
    return _yarn_fault(image, rng, vertical=bool(rng.integers(2)), full_length=True, prefer=-1)


@register_defect("colour_band")
def colour_band(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A bar of yarns dyed or tensioned differently, across the piece (barre, shade bar)."""
    height, width = size = image.shape[:2]
    vertical = rng.random() < 0.3
    cross_axis = width if vertical else height
    band = min(_log_uniform(rng, 3.0, 40.0), cross_axis / 3)
    offset = rng.uniform(0, cross_axis - band)
    tilt = np.float32(np.tan(np.deg2rad(rng.uniform(-2.0, 2.0))))
    ys, xs = np.indices(size, dtype=np.float32)
    across = (xs - tilt * ys) if vertical else (ys - tilt * xs)
    shape = ((across >= offset) & (across < offset + band)).astype(np.uint8)
    image_f = image.astype(np.float32) / 255.0
    tint = (1.0 + rng.uniform(-0.12, 0.12, 3)).astype(np.float32)
    along = cv2.resize(rng.uniform(0.8, 1.0, (3, 3)).astype(np.float32), (width, height))
    changed = _toward_contrast(np.clip(image_f * tint, 0, 1), shape, _log_uniform(rng, 0.08, 0.4) * along, rng)
    return _blend(image, shape, changed)


@register_defect("needle_mark")
def needle_mark(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A damaged needle: a line of small, evenly spaced punctures along a wale or seam line."""
    size = image.shape[:2]
    count, spacing = int(rng.integers(3, 13)), rng.uniform(3.5, 12.0)
    radius = rng.uniform(0.6, 2.2)
    angle = (np.pi / 2 if rng.integers(2) else 0.0) + np.deg2rad(rng.uniform(-5, 5))
    direction = np.array([np.cos(angle), np.sin(angle)])
    centre = np.array(_random_centre(rng, size, (count - 1) * spacing / 2 + radius + 3))
    shape = np.zeros(size, np.uint8)
    for k in range(count):
        x, y = centre + (k - (count - 1) / 2) * spacing * direction + rng.normal(0, 0.3, 2)
        cv2.circle(shape, (int(round(x * 8)), int(round(y * 8))), int(round(radius * 8)), 1, -1, cv2.LINE_8, 3)
        shape[int(np.clip(round(y), 0, size[0] - 1)), int(np.clip(round(x), 0, size[1] - 1))] = 1
    image_f = image.astype(np.float32) / 255.0
    changed = _toward_contrast(image_f, shape, rng.uniform(0.35, 0.9), rng, prefer=-1)
    return _blend(image, shape, changed)


FABRIC_DEFECTS: tuple[str, ...] = tuple(DEFECT_RENDERERS)
DEFECTS: tuple[str, ...] = FABRIC_DEFECTS + SEAM_DEFECTS
