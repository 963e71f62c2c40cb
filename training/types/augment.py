"""Training crops of labelled regions: the station's crop (qc.defect_types.region_crops) of a
jittered box and hint, flipped and brightened, so the network does not rely on a box or a hint as
exact as the ground truth (the station's regions come from a blurry heatmap)."""

from __future__ import annotations

import cv2
import numpy as np

from qc.defect_types import GEOMETRY, region_crops, region_geometry
from training.types.regions import LabelledRegion

HINT_THRESHOLD = 0.5  # the mask (0/1) plays the heatmap


def jitter_box(rng: np.random.Generator, box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    scale = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    shift = 0.15 * max(w, h)
    cx, cy = x + w / 2 + rng.uniform(-shift, shift), y + h / 2 + rng.uniform(-shift, shift)
    w2, h2 = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    x2 = int(np.clip(round(cx - w2 / 2), 0, max(shape[1] - w2, 0)))
    y2 = int(np.clip(round(cy - h2 / 2), 0, max(shape[0] - h2, 0)))
    return x2, y2, w2, h2


def jitter_hint(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Grow the mask (a heatmap region is blobbier than the truth) or, now and then, shrink it."""
    draw = rng.random()
    if draw < 0.5:
        size = int(rng.choice([3, 5, 7, 9]))
        return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    if draw < 0.65:
        eroded = cv2.erode(mask, np.ones((3, 3), np.uint8))
        return eroded if eroded.any() else mask
    return mask


def geometry_of(region: LabelledRegion, hint: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The region's qc.defect_types.GEOMETRY row, ``box`` being in its patch, ``hint`` 0/1 there."""
    return region_geometry(hint, [box], HINT_THRESHOLD, image_size=region.image_size)[0]


def training_crop(rng: np.random.Generator, region: LabelledRegion, crop_px: int) -> tuple[np.ndarray, np.ndarray]:
    """One augmented view of ``region``: its (4, crop_px, crop_px) float32 crop and geometry row."""
    hint = (jitter_hint(rng, region.mask) > 0).astype(np.float32)
    box = jitter_box(rng, region.box, hint.shape)
    # The geometry is measured on the region's own box: a station's box is the region's bounding
    # box too, and the crop's jitter (up to a quarter of the side) would make a broken yarn as long
    # as a missing one.
    geometry = geometry_of(region, hint, region.box)
    crop = region_crops(region.patch, hint, [box], HINT_THRESHOLD, crop_px)[0]
    if rng.random() < 0.5:
        crop = crop[:, :, ::-1]
    if rng.random() < 0.5:
        crop = crop[:, ::-1, :]
    crop = np.ascontiguousarray(crop)
    crop[:3] = np.clip(crop[:3] * rng.uniform(0.75, 1.25) + rng.uniform(-0.08, 0.08), 0.0, 1.0)
    return crop, geometry


def training_batch(rng: np.random.Generator, regions: list[LabelledRegion], crop_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, crop_px, crop_px) crops and (N, len(GEOMETRY)) rows: one augmented view of each region."""
    views = [training_crop(rng, r, crop_px) for r in regions]
    return np.stack([c for c, _ in views]), np.stack([g for _, g in views])


def plain_crops(regions: list[LabelledRegion], crop_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, crop_px, crop_px) crops and (N, len(GEOMETRY)) rows: the regions as the station would
    see them, no augmentation."""
    if not regions:
        return np.zeros((0, 4, crop_px, crop_px), np.float32), np.zeros((0, len(GEOMETRY)), np.float32)
    hints = [(r.mask > 0).astype(np.float32) for r in regions]
    crops = np.concatenate(
        [region_crops(r.patch, hint, [r.box], HINT_THRESHOLD, crop_px) for r, hint in zip(regions, hints)]
    )
    return crops, np.stack([geometry_of(r, hint, r.box) for r, hint in zip(regions, hints)])
