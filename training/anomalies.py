"""Synthetic anomalies (DRAEM-style) painted onto good crops, so a detector learns from good images.

An anomaly is a *where* (a mask shape: thresholded smooth noise, blobs, scratches, yarn lines) and a
*what* (the fill: texture from another image, a colour change, a shifted patch of the same image,
a blur), blended with a random opacity so some are subtle and some obvious. The returned mask holds
only the pixels that visibly changed, so the network is never asked to find an invisible defect.
Everything is deterministic given the numpy Generator.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from qc.synth import BLUR_MARGIN_PX, FABRIC_DEFECTS, apply_defect
from training.config import AnomalyConfig

MaskMaker = Callable[[np.random.Generator, int, int], np.ndarray]
FillMaker = Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]

MASK_SHAPES: dict[str, MaskMaker] = {}
FILLS: dict[str, FillMaker] = {}

VISIBLE_CHANGE = 3.0
"""Grey levels (of 255) a pixel must move (3x3 mean) to count as part of the defect mask, at least;
on textured fabric the bar is ``min_contrast`` times the fabric's own detail contrast."""


def register(registry: dict, name: str):
    def add(fn):
        registry[name] = fn
        return fn

    return add


def smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Perlin-like noise: random grids of a few scales, cubic-upsampled and summed."""
    total = np.zeros((h, w), np.float32)
    for cells in rng.choice([2, 3, 4, 6, 8, 12], size=2, replace=False):
        grid = rng.standard_normal((int(cells) + 1, int(cells) + 1)).astype(np.float32)
        total += cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return total


@register(MASK_SHAPES, "noise")
def noise_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    noise = smooth_noise(rng, h, w)
    coverage = rng.uniform(0.005, 0.12)
    return (noise >= np.quantile(noise, 1.0 - coverage)).astype(np.uint8)


@register(MASK_SHAPES, "blobs")
def blob_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    side = min(h, w)
    for _ in range(rng.integers(1, 4)):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(2, max(3, side // 5))), int(rng.integers(2, max(3, side // 5))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    # Ragged edges: real holes and stains are not ellipses.
    ragged = smooth_noise(rng, h, w) > -0.6
    return mask & ragged.astype(np.uint8)


@register(MASK_SHAPES, "scratch")
def scratch_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    points = [np.array([rng.uniform(0, w), rng.uniform(0, h)])]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(rng.integers(2, 6)):
        heading += rng.normal(0, 0.5)
        step = rng.uniform(0.1, 0.4) * min(h, w)
        points.append(points[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
    poly = np.round(np.array(points)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [poly], False, 1, thickness=int(rng.integers(1, 5)))
    return mask


@register(MASK_SHAPES, "yarn")
def yarn_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A straight warp or weft line (broken or missing yarn), part of the crop or all of it."""
    mask = np.zeros((h, w), np.uint8)
    thickness = int(rng.integers(1, 4))
    horizontal = rng.random() < 0.5
    length = h if not horizontal else w
    start = int(rng.integers(0, length // 2))
    end = int(rng.integers(start + length // 4, length + 1))
    if horizontal:
        y = int(rng.integers(0, h - thickness + 1))
        mask[y : y + thickness, start:end] = 1
    else:
        x = int(rng.integers(0, w - thickness + 1))
        mask[start:end, x : x + thickness] = 1
    return mask


@register(MASK_SHAPES, "dots")
def dot_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A few small ragged spots, 2 to 12 px across: fuzzballs, neps, knots, specks of contamination."""
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 4)):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(1, 7)), int(rng.integers(1, 7)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    return mask


@register(MASK_SHAPES, "curve")
def curve_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A thin, gently wandering yarn (broken end, broken or loose yarn, weft curling): it mostly
    follows the warp or the weft, as a yarn does, and may run across the whole crop."""
    mask = np.zeros((h, w), np.uint8)
    along_x = rng.random() < 0.5
    length = (w if along_x else h) * rng.uniform(0.3, 1.3)
    n = max(8, int(length / 4))
    heading = (0.0 if along_x else np.pi / 2) + rng.normal(0, 0.15) + (np.pi if rng.random() < 0.5 else 0.0)
    # Heading drifts as a smoothed random walk: long gentle bends, occasionally a kink.
    turns = np.cumsum(rng.normal(0, rng.uniform(0.02, 0.15), size=n))
    angles = heading + turns - turns.mean()
    steps = (length / n) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = np.array([rng.uniform(0, w), rng.uniform(0, h)]) + np.cumsum(steps, axis=0)
    points -= steps.sum(axis=0) * rng.uniform(0.0, 1.0)  # the start may lie outside the crop
    poly = np.round(points).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [poly], False, 1, thickness=int(rng.choice([1, 1, 2, 2, 3, 4])))
    if not mask.any():  # the curve missed the crop: put it through the centre instead
        poly = np.round(points - points.mean(axis=0) + [w / 2, h / 2]).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(mask, [poly], False, 1, thickness=2)
    return mask


@register(FILLS, "texture")
def texture_fill(rng: np.random.Generator, image: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """Another image's texture, shifted, maybe turned (a weave in the wrong direction), recoloured."""
    fill = np.roll(donor, (int(rng.integers(0, donor.shape[0])), int(rng.integers(0, donor.shape[1]))), (0, 1))
    if fill.shape[0] == fill.shape[1] and rng.random() < 0.5:
        fill = np.rot90(fill, int(rng.integers(1, 4)))
    if rng.random() < 0.5:
        fill = np.clip(fill.astype(np.float32) * rng.uniform(0.6, 1.4, size=3), 0, 255)
    return np.asarray(fill, np.float32)


@register(FILLS, "colour")
def colour_fill(rng: np.random.Generator, image: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """A stain or a faded spot: gain and offset per channel, darker on light fabric and vice versa."""
    base = image.astype(np.float32)
    offset = darker_or_lighter(rng, base) * rng.uniform(20, 90) + rng.normal(0, 15, size=3)
    return np.clip(base * rng.uniform(0.7, 1.3, size=3) + offset, 0, 255)


def darker_or_lighter(rng: np.random.Generator, image: np.ndarray) -> float:
    """-1 or +1: defects are both darker and lighter, more often towards the side with headroom."""
    return -1.0 if rng.random() < image.mean() / 255.0 else 1.0


@register(FILLS, "smooth")
def smooth_fill(rng: np.random.Generator, image: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """A foreign yarn, a knot or a fuzzball: the local colour without the weave, lighter or darker."""
    base = image.astype(np.float32)
    local = cv2.GaussianBlur(base, (0, 0), float(rng.uniform(2.0, 5.0)))
    offset = darker_or_lighter(rng, base) * rng.uniform(10, 80)
    return np.clip(local + offset + rng.normal(0, 3, size=base.shape), 0, 255)


@register(FILLS, "warp")
def warp_fill(rng: np.random.Generator, image: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """The weave itself displaced by a few px (a crease, curling, a pulled or misplaced yarn)."""
    h, w = image.shape[:2]
    amplitude = float(rng.uniform(2.0, 8.0))
    dx = smooth_noise(rng, h, w) * amplitude
    dy = smooth_noise(rng, h, w) * amplitude
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(image, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return warped.astype(np.float32)


@register(FILLS, "shifted")
def shifted_fill(rng: np.random.Generator, image: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """The same image displaced or mirrored: the local pattern no longer lines up (knots, weave faults)."""
    fill = np.roll(image, (int(rng.integers(1, image.shape[0])), int(rng.integers(1, image.shape[1]))), (0, 1))
    if rng.random() < 0.5:
        fill = fill[::-1] if rng.random() < 0.5 else fill[:, ::-1]
    return fill.astype(np.float32)


@register(FILLS, "blur")
def blur_fill(rng: np.random.Generator, image: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """The texture washed out (felting, a smudge): a strong blur, slightly brightened or darkened."""
    sigma = float(rng.uniform(2.0, 6.0))
    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    return np.clip(blurred + rng.normal(0, 12), 0, 255)


def texture_contrast(image: np.ndarray) -> float:
    """The fabric's own fine-detail contrast in grey levels: a robust std of the image minus its blur.

    A change smaller than the weave's natural variation is not a defect anyone could see; labelling
    it as one teaches the network to fire on ordinary yarn irregularities.
    """
    grey = channel_mean(image.astype(np.float32))
    detail = grey - cv2.GaussianBlur(grey, (0, 0), 3.0)
    return float(1.4826 * np.median(np.abs(detail)))


def channel_mean(image: np.ndarray) -> np.ndarray:
    """(H, W) mean over an (H, W, 3) float32 image's channels: the same as ``mean(axis=2)``, which
    numpy runs about 15 times slower on a small last axis (the synthesis draws every training crop)."""
    return (image[:, :, 0] + image[:, :, 1] + image[:, :, 2]) * np.float32(1.0 / 3.0)


def channel_max(image: np.ndarray) -> np.ndarray:
    """(H, W) maximum over an (H, W, 3) image's channels: ``max(axis=2)``, about 30 times faster."""
    return np.maximum(np.maximum(image[:, :, 0], image[:, :, 1]), image[:, :, 2])


def drop_faint_regions(mask: np.ndarray, change: np.ndarray, visible: float) -> np.ndarray:
    """The mask (bool) without the connected regions whose mean change is below ``visible``."""
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    sums = np.bincount(labels.ravel(), weights=change.ravel(), minlength=n)
    counts = np.bincount(labels.ravel(), minlength=n)
    strong = sums / np.maximum(counts, 1) >= visible
    strong[0] = False
    return strong[labels]


def is_grey(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def blend_alpha(rng: np.random.Generator, mask: np.ndarray, config: AnomalyConfig) -> np.ndarray:
    """Opacity map: a random opacity, feathered at the edges but exactly zero outside the mask."""
    opacity = rng.uniform(config.opacity_min, config.opacity_max)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), float(rng.uniform(0.5, 2.0)))
    alpha = np.clip(soft * 2.0, 0.0, 1.0) * mask * opacity
    return alpha[:, :, None].astype(np.float32)


def add_anomaly(
    rng: np.random.Generator,
    image: np.ndarray,
    donor: np.ndarray,
    config: AnomalyConfig,
    *,
    attempts: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one synthetic anomaly on ``image`` (uint8 RGB); ``donor`` lends texture (same shape).

    Returns (image, mask) with the mask uint8 0/255 covering exactly the visibly changed pixels
    (holes from pixels that happened to keep their value are closed, within the drawn shape);
    "visibly" is measured against the fabric's own texture contrast (``config.min_contrast``).
    A ``config.generator_share`` of them come from the fabric generator's defect renderers.
    """
    # Drawn only when the share is on, so that runs without it keep their exact crops.
    if config.generator_share > 0.0 and rng.random() < config.generator_share:
        return add_generator_defect(rng, image, config, attempts=attempts)
    h, w = image.shape[:2]
    base = image.astype(np.float32)
    grey = is_grey(image)
    visible = config.min_contrast * texture_contrast(image)
    for _ in range(attempts):
        shape = MASK_SHAPES[str(rng.choice(list(MASK_SHAPES)))](rng, h, w)
        fill = FILLS[str(rng.choice(list(FILLS)))](rng, image, donor)
        if grey:  # a grey camera never sees colour: a tinted anomaly would be found by its tint alone
            fill = np.repeat(channel_mean(fill)[:, :, None], 3, axis=2)
        alpha = blend_alpha(rng, shape, config)
        out = np.clip(np.rint(base * (1.0 - alpha) + fill * alpha), 0, 255).astype(np.uint8)
        keep = keep_visible(image, out, alpha[:, :, 0] > 0, visible)
        if keep.sum() >= config.min_changed_px:
            return out, keep.astype(np.uint8) * 255
    return image.copy(), np.zeros((h, w), np.uint8)


def add_generator_defect(
    rng: np.random.Generator, image: np.ndarray, config: AnomalyConfig, *, attempts: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """One defect of the synthetic fabric generator (qc.synth: a hole, a stain, a broken end or pick,
    a slub, a knot, a crease ...) on ``image``, kept and masked by the same visibility rule as
    :func:`add_anomaly`'s. Those renderers draw real weaving faults' geometry (a yarn-wide line along
    the warp, a knot's tight blob) that random shapes and fills reach only by chance."""
    h, w = image.shape[:2]
    grey = is_grey(image)
    visible = config.min_contrast * texture_contrast(image)
    near = np.ones((2 * BLUR_MARGIN_PX + 1, 2 * BLUR_MARGIN_PX + 1), np.uint8)
    for _ in range(attempts):
        names = config.generator_defects or FABRIC_DEFECTS
        name = names[int(rng.integers(len(names)))]
        out, mask = apply_defect(name, image, rng)
        if grey:
            out = np.repeat(np.rint(channel_mean(out.astype(np.float32))).astype(np.uint8)[:, :, None], 3, axis=2)
        # The renderer softens the mask's edge within BLUR_MARGIN_PX: that rim is part of the drawing.
        drawn = cv2.dilate((mask > 0).astype(np.uint8), near) > 0
        keep = keep_visible(image, out, drawn, visible)
        if keep.sum() >= config.min_changed_px:
            return out, keep.astype(np.uint8) * 255
    return image.copy(), np.zeros((h, w), np.uint8)


def keep_visible(image: np.ndarray, out: np.ndarray, drawn: np.ndarray, visible: float) -> np.ndarray:
    """The bool mask of ``out``'s visibly changed pixels within ``drawn``; every other pixel of
    ``out`` is set back to ``image``'s (in place), so a pixel outside the mask is the original.

    Visibly: moved by VISIBLE_CHANGE (3x3 mean; holes closed), in a region whose mean change reaches
    ``visible`` (the weave's own variation would hide a fainter one).
    """
    change = cv2.blur(channel_max(np.abs(out.astype(np.float32) - image.astype(np.float32))), (3, 3))
    changed = (change >= VISIBLE_CHANGE).astype(np.uint8)
    closed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    keep = drop_faint_regions(closed & drawn.astype(np.uint8), change, visible)
    out[~keep] = image[~keep]
    return keep
