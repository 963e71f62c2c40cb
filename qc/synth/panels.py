"""What the simulated line camera sees: a cut garment panel lying on a conveyor belt.

The panel is fabric cut to a garment-part outline (body panel, sleeve, pocket-like piece),
sometimes with a lockstitch seam along its hem, on a darker belt under slightly uneven light.
A defect, when drawn, lies inside the panel and only there.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from qc.synth.defects import BLUR_MARGIN_PX, FABRIC_DEFECTS, apply_defect
from qc.synth.fabrics import FABRICS, render_fabric
from qc.synth.generator import SynthSample, pick

# An outline in a unit box (x, y in 0..1) and the index of the vertex that starts its hem, the
# straight edge a seam runs along (hem = vertices hem_index, hem_index + 1).
Outline = tuple[np.ndarray, int]

PANEL_SHAPES: dict[str, Callable[[np.random.Generator], Outline]] = {}
DEFECT_CROP_PX = 160
_PLACEMENT_TRIES = 12
# A defect mostly cut away by the panel edge would be a few stray pixels: draw another instead.
MIN_KEPT_FRACTION = 0.9


def register_panel_shape(name: str) -> Callable[[Callable[[np.random.Generator], Outline]], Callable]:
    def decorate(build: Callable[[np.random.Generator], Outline]) -> Callable:
        PANEL_SHAPES[name] = build
        return build

    return decorate


def _arc(centre: tuple[float, float], radius: float, start: float, stop: float, count: int = 8) -> np.ndarray:
    angles = np.linspace(start, stop, count)
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)


@register_panel_shape("rounded_rect")
def _rounded_rect(rng: np.random.Generator) -> Outline:
    r = rng.uniform(0.03, 0.15)
    corners = [
        _arc((1 - r, 1 - r), r, 0, np.pi / 2),  # bottom right (y grows downward)
        _arc((r, 1 - r), r, np.pi / 2, np.pi),
        _arc((r, r), r, np.pi, 1.5 * np.pi),
        _arc((1 - r, r), r, 1.5 * np.pi, 2 * np.pi),
    ]
    outline = np.concatenate(corners)
    return outline, 7  # from the end of the bottom-right arc to the start of the bottom-left one


@register_panel_shape("body_panel")
def _body_panel(rng: np.random.Generator) -> Outline:
    """A front/back body piece: wider hem, narrower shoulders, a scooped neckline."""
    inset = rng.uniform(0.05, 0.2)
    neck_depth, neck_half = rng.uniform(0.05, 0.2), rng.uniform(0.12, 0.22)
    angles = np.linspace(np.pi, 0, 9)
    neck = np.stack([0.5 + neck_half * np.cos(angles), neck_depth * np.sin(angles)], axis=1)
    outline = np.concatenate([[[1.0, 1.0], [0.0, 1.0], [inset, 0.0]], neck, [[1 - inset, 0.0]]])
    return outline, 0


@register_panel_shape("sleeve")
def _sleeve(rng: np.random.Generator) -> Outline:
    """A sleeve: a rounded cap at the top, tapering to a straight cuff at the bottom."""
    cuff_inset = rng.uniform(0.15, 0.3)
    cap_height = rng.uniform(0.25, 0.4)
    cap_angles = np.linspace(np.pi, 2 * np.pi, 15)
    cap = np.stack([0.5 + 0.5 * np.cos(cap_angles), cap_height + cap_height * np.sin(cap_angles)], axis=1)
    outline = np.concatenate([[[1 - cuff_inset, 1.0], [cuff_inset, 1.0]], cap])
    return outline, 0


def _place_outline(rng: np.random.Generator, outline: np.ndarray, size_px: tuple[int, int]) -> np.ndarray:
    height, width = size_px
    box_w, box_h = width * rng.uniform(0.45, 0.75), height * rng.uniform(0.6, 0.85)
    centred = (outline - 0.5) * np.array([box_w, box_h])
    angle = np.deg2rad(rng.uniform(-10, 10))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([width / 2 + rng.uniform(-0.08, 0.08) * width, height / 2 + rng.uniform(-0.05, 0.05) * height])
    return centred @ rotation.T + centre


def _belt(rng: np.random.Generator, size_px: tuple[int, int]) -> np.ndarray:
    height, width = size_px
    grey = rng.uniform(0.08, 0.22)
    tone = np.float32(grey) * (1.0 + rng.uniform(-0.1, 0.1, 3).astype(np.float32))
    ribs = 0.015 * np.sin(2 * np.pi * np.arange(height, dtype=np.float32) / rng.uniform(5, 12))[:, None]
    grain = cv2.GaussianBlur(rng.standard_normal((height, width), dtype=np.float32), (0, 0), 1.2)
    belt = tone + (ribs + 0.01 * grain)[..., None]
    return belt + np.float32(2.0 / 255) * rng.standard_normal((height, width, 3), dtype=np.float32)


def _draw_seam(rng: np.random.Generator, image_f: np.ndarray, points: np.ndarray, hem_index: int) -> None:
    """A lockstitch line of short dashes parallel to the hem, a few mm inside the edge."""
    start, stop = points[hem_index], points[(hem_index + 1) % len(points)]
    direction = (stop - start) / np.linalg.norm(stop - start)
    normal = np.array([-direction[1], direction[0]])
    if np.dot(points.mean(axis=0) - start, normal) < 0:
        normal = -normal
    inset = rng.uniform(8, 18)
    length = np.linalg.norm(stop - start) - 2 * inset
    stitch, gap = rng.uniform(4, 8), rng.uniform(2, 4)
    thread = np.clip(image_f[int(start[1]) % image_f.shape[0], int(start[0]) % image_f.shape[1]]
                     + rng.choice([-0.35, 0.35]), 0.05, 0.95)
    shadow = np.zeros(image_f.shape[:2], np.float32)
    for offset in np.arange(0, max(length - stitch, 0), stitch + gap):
        a = start + normal * inset + direction * (inset + offset)
        b = a + direction * stitch
        pa, pb = tuple(int(round(c)) for c in a), tuple(int(round(c)) for c in b)
        cv2.line(shadow, pa, pb, 1.0, 3)
        cv2.line(image_f, pa, pb, tuple(float(c) for c in thread), 2, cv2.LINE_AA)
    # Thread pulls the cloth in slightly: a faint pucker shadow beside each stitch.
    image_f *= (1.0 - 0.12 * cv2.GaussianBlur(shadow, (0, 0), 1.5))[..., None]


def _paste_defect(
    rng: np.random.Generator, image: np.ndarray, interior: np.ndarray, defect: str | None = None
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Draw one defect (of type ``defect``, else a new random fabric type each try) on a crop around
    a point inside the panel; keep only its part in the panel."""
    height, width = interior.shape
    crop = min(DEFECT_CROP_PX, height, width)
    # Prefer crops that lie wholly on the cloth, so the defect is rarely cut by the panel edge.
    depth = cv2.distanceTransform(interior, cv2.DIST_L2, 3)
    candidates = np.flatnonzero(depth >= crop / 2)
    if candidates.size == 0:
        candidates = np.flatnonzero(interior)
    if candidates.size == 0:
        return None
    margin = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * BLUR_MARGIN_PX + 1,) * 2)
    for _ in range(_PLACEMENT_TRIES):
        # A new type each try: a long broken end may never fit a small panel, a knot will.
        # Seam defects belong on a seam; the panel's hem seam is drawn in the frame, not the crop.
        name = defect if defect is not None else pick(rng, FABRIC_DEFECTS)
        y, x = divmod(int(candidates[rng.integers(candidates.size)]), width)
        top = int(np.clip(y - crop // 2, 0, height - crop))
        left = int(np.clip(x - crop // 2, 0, width - crop))
        window = (slice(top, top + crop), slice(left, left + crop))
        patch, patch_mask = apply_defect(name, image[window], rng)
        drawn_px = int(np.count_nonzero(patch_mask))
        patch_mask = np.where(interior[window] > 0, patch_mask, 0).astype(np.uint8)
        if np.count_nonzero(patch_mask) < MIN_KEPT_FRACTION * drawn_px:
            continue
        # Only the kept defect and its blur margin may change; the rest of the crop stays as it was.
        keep = cv2.dilate(patch_mask, margin) > 0
        result, mask = image.copy(), np.zeros((height, width), np.uint8)
        result[window] = np.where(keep[..., None], patch, image[window])
        mask[window] = patch_mask
        return result, mask, name
    return None


def render_panel(
    rng: np.random.Generator, size_px: tuple[int, int] = (480, 640)
) -> tuple[np.ndarray, np.ndarray, str]:
    """A defect-free frame: (image RGB uint8, panel mask uint8 0/255, fabric name)."""
    height, width = (int(side) for side in size_px)
    if height < 64 or width < 64:
        raise ValueError(f"size_px must be at least 64x64, got {size_px}")
    fabric = pick(rng, FABRICS)
    outline, hem_index = PANEL_SHAPES[pick(rng, tuple(PANEL_SHAPES))](rng)
    points = _place_outline(rng, outline, (height, width))

    panel = np.zeros((height, width), np.uint8)
    cv2.fillPoly(panel, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    alpha = panel.astype(np.float32)[..., None] / 255.0

    belt = _belt(rng, (height, width))
    # The cut piece lies a little above the belt and casts a soft shadow down-right of itself.
    shadow = cv2.GaussianBlur(np.roll(alpha[..., 0], (4, 3), axis=(0, 1)), (0, 0), 4.0)
    belt *= (1.0 - 0.45 * shadow)[..., None]
    cloth = render_fabric(rng, fabric, (height, width)).astype(np.float32) / 255.0
    if rng.random() < 0.6:
        _draw_seam(rng, cloth, points, hem_index)
    frame = belt * (1.0 - alpha) + cloth * alpha

    ys = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    falloff = 1.0 - rng.uniform(0.08, 0.25) * (xs**2 + ys**2) / 2
    frame = np.clip(frame * falloff[..., None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return frame, panel, fabric


def generate_panel(
    rng: np.random.Generator,
    *,
    size_px: tuple[int, int] = (480, 640),
    defect_probability: float = 0.3,
    defect: str | None = None,
) -> SynthSample:
    """One camera frame of the line: a garment panel on the belt, with a defect at the given rate.

    ``defect`` names the fabric defect type to draw (for type-balanced sets); None: a random one.
    A type that never fits the panel leaves the frame good, as a random draw that fails does."""
    if not 0.0 <= defect_probability <= 1.0:
        raise ValueError(f"defect_probability must be within 0..1, got {defect_probability}")
    if defect is not None and defect not in FABRIC_DEFECTS:
        raise ValueError(f"unknown fabric defect {defect!r} for a panel; known: {', '.join(FABRIC_DEFECTS)}")
    frame, panel, fabric = render_panel(rng, size_px)
    mask = np.zeros(panel.shape, np.uint8)
    if rng.random() < defect_probability:
        # Keep the defect and its soft edge off the panel's anti-aliased border.
        interior = cv2.erode((panel == 255).astype(np.uint8), np.ones((7, 7), np.uint8))
        placed = _paste_defect(rng, frame, interior, defect)
        if placed is not None:
            frame, mask, defect = placed
            return SynthSample(frame, mask, fabric, defect)
    return SynthSample(frame, mask, fabric, None)
