"""Shared drawing helpers for defect renderers: the soft-edged paste that keeps masks exact.

Contract, relied on by training and tests: `_blend` leaves pixels farther than BLUR_MARGIN_PX from
the mask bit-identical to the input; only the mask's own edge is softened (a Gaussian with a 5x5
support), so the margin is exactly 2 px.
"""

from __future__ import annotations

import cv2
import numpy as np

BLUR_MARGIN_PX = 2


def _blend(image: np.ndarray, shape: np.ndarray, changed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paste `changed` (float 0..1) where `shape` is set, with a 2 px soft edge outside it."""
    mask = (shape > 0).astype(np.uint8) * 255
    result = image.copy()
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0:
        return result, mask
    # Work only on the defect's box plus its blur margin: most of a tile never changes.
    top, left = max(y - BLUR_MARGIN_PX, 0), max(x - BLUR_MARGIN_PX, 0)
    window = (slice(top, y + h + BLUR_MARGIN_PX), slice(left, x + w + BLUR_MARGIN_PX))
    hard = (shape[window] > 0).astype(np.float32)
    alpha = np.maximum(cv2.GaussianBlur(hard, (5, 5), 1.0, borderType=cv2.BORDER_CONSTANT), hard)
    original = image[window].astype(np.float32) / 255.0
    mixed = original + alpha[..., None] * (changed[window] - original)
    blended = np.clip(mixed * 255.0 + 0.5, 0, 255).astype(np.uint8)
    # Float round trips must not touch pixels the defect never reached.
    result[window] = np.where((alpha > 0)[..., None], blended, image[window])
    return result, mask


def _toward_contrast(
    image_f: np.ndarray, shape: np.ndarray, strength: np.ndarray | float, rng: np.random.Generator,
    *, prefer: int = 0,
) -> np.ndarray:
    """Move pixels toward white or black, whichever the local fabric leaves room for.

    prefer: +1 lighten, -1 darken, 0 either, used only where the fabric allows both.
    """
    mean = float(image_f[shape > 0].mean()) if shape.any() else 0.5
    if mean < 0.3:
        sign = 1
    elif mean > 0.7:
        sign = -1
    else:
        sign = prefer if prefer else (1 if rng.integers(2) else -1)
    target = 1.0 if sign > 0 else 0.0
    strength = np.asarray(strength, dtype=np.float32)
    if strength.ndim == 2:
        strength = strength[..., None]
    return image_f + strength * (target - image_f)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _irregular_blob(
    rng: np.random.Generator, size_px: tuple[int, int], centre: tuple[float, float], radius: float,
    roughness: float,
) -> np.ndarray:
    """A filled, irregular, roughly elliptical outline (uint8 0/1)."""
    count = 32
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    # Smooth radial jitter: a few low harmonics with random phases.
    jitter = sum(
        rng.uniform(0, roughness) / k * np.cos(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    aspect = rng.uniform(0.6, 1.0)
    tilt = rng.uniform(0, np.pi)
    rx, ry = radius * (1 + jitter) * np.cos(angles), radius * aspect * (1 + jitter) * np.sin(angles)
    xs = centre[0] + rx * np.cos(tilt) - ry * np.sin(tilt)
    ys = centre[1] + rx * np.sin(tilt) + ry * np.cos(tilt)
    shape = np.zeros(size_px, np.uint8)
    points = np.round(np.stack([xs, ys], axis=1)).astype(np.int32)
    cv2.fillPoly(shape, [points], 1)
    if not shape.any():  # a sub-pixel blob still marks its centre pixel
        shape[int(np.clip(centre[1], 0, size_px[0] - 1)), int(np.clip(centre[0], 0, size_px[1] - 1))] = 1
    return shape


def _random_centre(rng: np.random.Generator, size_px: tuple[int, int], margin: float) -> tuple[float, float]:
    height, width = size_px
    margin_x, margin_y = min(margin, width / 2 - 1), min(margin, height / 2 - 1)
    return rng.uniform(margin_x, width - margin_x), rng.uniform(margin_y, height - margin_y)
