"""Pictures of a verdict: the colour heatmap and the overlay shown to operators and in reports."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

BAND_ROWS = 256  # rows of a picture made at a time


def heatmap_to_grey(heatmap: np.ndarray) -> np.ndarray:
    """float heatmap 0..1 (H, W) -> uint8 (H, W), value = round(probability * 255).

    This is the stored form of a heatmap: 256 levels, the same ones the colour map uses, so the
    colour picture rendered from it later is identical to one rendered from the floats. A uint8
    array is taken as already quantised.
    """
    if heatmap.dtype == np.uint8:
        return heatmap
    scaled = np.multiply(heatmap, 255.0)  # the one float copy; the rest is worked in place
    scaled += 0.5
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def grey_to_heatmap(grey: np.ndarray) -> np.ndarray:
    """Invert :func:`heatmap_to_grey`: uint8 (H, W) -> float32 0..1."""
    return grey.astype(np.float32) * np.float32(1.0 / 255.0)


def heatmap_to_rgb(heatmap: np.ndarray) -> np.ndarray:
    """float heatmap 0..1 (or its uint8 grey form) (H, W) -> uint8 RGB with the 'jet' colour map
    (blue = good, red = defect)."""
    out = np.empty((*heatmap.shape, 3), np.uint8)
    for rows in _row_bands(heatmap.shape[0]):
        grey = heatmap_to_grey(heatmap[rows])
        out[rows] = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return out


def overlay(
    image_rgb: np.ndarray,
    heatmap: np.ndarray,
    *,
    threshold: float | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """Blend the colour heatmap over the image; outline regions at or above ``threshold``.

    Blending is weighted by the heatmap itself, so good fabric stays readable and only suspicious
    areas take colour.
    """
    if image_rgb.shape[:2] != heatmap.shape:
        raise ValueError(f"heatmap {heatmap.shape} does not match image {image_rgb.shape[:2]}")
    out = np.empty_like(image_rgb)
    for rows in _row_bands(heatmap.shape[0]):
        out[rows] = _blend(image_rgb[rows], heatmap[rows], alpha)
    if threshold is not None:
        binary = (heatmap >= threshold).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        thickness = max(1, round(min(out.shape[:2]) / 200))
        cv2.drawContours(out, contours, -1, (255, 0, 0), thickness)
    return out


def _row_bands(height: int) -> Iterator[slice]:
    """Pictures are made per pixel, so a band of rows at a time: the float weights and colours
    of a whole 50 MP picture would take about a gigabyte."""
    return (slice(top, top + BAND_ROWS) for top in range(0, height, BAND_ROWS))


def _blend(image_rgb: np.ndarray, heatmap: np.ndarray, alpha: float) -> np.ndarray:
    weight = np.clip(heatmap, 0.0, 1.0).astype(np.float32) * np.float32(alpha)
    # One pass in OpenCV (image * (1 - w) + colour * w per pixel), not four float copies of the
    # image: half the time, the same picture to within 1 grey level of rounding.
    return cv2.blendLinear(np.ascontiguousarray(image_rgb), heatmap_to_rgb(heatmap), 1.0 - weight, weight)


def rgb_to_heatmap(rgb: np.ndarray) -> np.ndarray:
    """Invert :func:`heatmap_to_rgb` on a losslessly stored colour heatmap (PNG) to values 0..1.

    Every colour the map produces is one of 256 known entries, so the inversion is exact to the
    1/255 step the PNG kept; colours not in the map (a resized or JPEG copy) take the nearest entry.
    """
    lut = heatmap_to_rgb(np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :])[0].astype(np.int32)
    packed_lut = (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]
    flat = rgb.reshape(-1, 3).astype(np.int32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    order = np.argsort(packed_lut)
    pos = np.clip(np.searchsorted(packed_lut[order], packed), 0, 255)
    index = order[pos]
    miss = packed_lut[index] != packed
    if miss.any():  # nearest colour for anything that is not an exact entry
        dist = ((flat[miss, None, :] - lut[None, :, :]) ** 2).sum(axis=2)
        index[miss] = dist.argmin(axis=1)
    return (index.astype(np.float32) / 255.0).reshape(rgb.shape[:2])
