"""Albumentations presets for training crops (``data.augment``) and the evaluation preset.

The train presets act on *good* crops, before a synthetic anomaly is pasted, so the network learns
that a slightly brighter, blurrier or noisier fabric is still good, while the pasted anomaly stays
sharp against it and keeps an exact mask.

- ``none``: no albumentations at all (today's behaviour: train_crop's flips and quarter turns only).
- ``light``: flips, quarter turns when ``data.rotate`` allows, mild brightness/contrast.
- ``default``: ``light`` plus a mild blur or mild sensor noise.
The evaluation preset is the identity: images are scored exactly as the station receives them.

"Mild" means within what one camera sees of one fabric over a shift (±8 % brightness/contrast,
sigma <= 0.8 px blur, noise <= 2 % of full scale): stronger changes look like defects (a stain is
a local brightness change) and teach the network to ignore them.

Randomness comes from the batch Generator: each call reseeds the pipeline from it, so a run is
reproducible crop for crop and a resumed run continues the same sequence.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PRESETS = ("none", "light", "default")

Augmenter = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _pipeline(preset: str, *, rotate: bool):
    import os

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    steps = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    if rotate:
        steps.append(A.RandomRotate90(p=1.0))
    steps.append(A.RandomBrightnessContrast(brightness_limit=0.08, contrast_limit=0.08, p=0.5))
    if preset == "default":
        steps.append(
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.3, 0.8), p=1.0),
                    A.GaussNoise(std_range=(0.005, 0.02), p=1.0),
                ],
                p=0.3,
            )
        )
    return A.Compose(steps, seed=0)


def train_augmenter(preset: str, *, rotate: bool = True) -> Augmenter | None:
    """A function (rng, uint8 RGB crop) -> crop, or None for ``none`` (nothing is drawn from rng)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; known: {', '.join(PRESETS)}")
    if preset == "none":
        return None
    pipeline = _pipeline(preset, rotate=rotate)

    def apply(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
        pipeline.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        return np.ascontiguousarray(pipeline(image=np.ascontiguousarray(crop))["image"])

    return apply


def eval_augmenter() -> Augmenter:
    """The identity: evaluation and calibration see images as the station does."""
    return lambda rng, image: image
