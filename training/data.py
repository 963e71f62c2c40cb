"""Training data: the good images of ``train/good`` (never ``test/``), the calibration hold-out,
random crops with flips and quarter turns, and batches where a share of crops carry a synthetic
anomaly. Plain numpy with a seeded Generator, so a run is reproducible crop for crop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from qc.imageio import IMAGE_SUFFIXES, ImageReadError, read_image
# The contract's preprocessing has one definition, the station's: training feeds the network
# exactly what onnxruntime will be fed.
from qc.inference import to_input_tensor as to_tensor_layout
from training.anomalies import add_anomaly
from training.config import AnomalyConfig, DataConfig, TrainingError


def find_training_images(root: Path) -> list[Path]:
    """The good training images: ``ROOT/train/good/*`` (MVTec layout) or ``ROOT/*`` (a plain folder).

    ``ROOT/test`` is never listed: held-out numbers depend on training not having seen it.
    """
    root = Path(root)
    if not root.is_dir():
        raise TrainingError(f"data root {root} does not exist or is not a folder")
    folder = root / "train" / "good" if (root / "train").is_dir() else root
    if not folder.is_dir():
        raise TrainingError(f"{folder} is missing: an MVTec dataset keeps its good images there")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise TrainingError(f"no good training images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return paths


def split_train_val(
    paths: list[Path], *, val_fraction: float, min_val_images: int, seed: int
) -> tuple[list[Path], list[Path]]:
    """Hold back ``val_fraction`` of the good images (at least ``min_val_images``) for calibration."""
    n_val = max(min_val_images, int(round(val_fraction * len(paths))))
    if len(paths) - n_val < 1:
        raise TrainingError(
            f"{len(paths)} good image(s) in {paths[0].parent}: need at least {min_val_images + 1} "
            f"({min_val_images} held back for threshold calibration, 1 or more to train on)"
        )
    order = np.random.default_rng(seed).permutation(len(paths))
    val = sorted(paths[i] for i in order[:n_val])
    train = sorted(paths[i] for i in order[n_val:])
    return train, val


def load_images(paths: list[Path]) -> list[np.ndarray]:
    images = []
    for path in paths:
        try:
            images.append(read_image(path))
        except ImageReadError as exc:
            raise TrainingError(f"unreadable training image: {exc}") from exc
    return images


def dataset_fingerprint(root: Path, paths: list[Path]) -> str:
    """sha256 over each file's name relative to ``root`` and its bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mirror-pad up to (height, width) when smaller (mirroring adds no artificial edges)."""
    dy, dx = max(0, height - image.shape[0]), max(0, width - image.shape[1])
    if dy == 0 and dx == 0:
        return image
    return np.pad(image, [(0, dy), (0, dx)] + [(0, 0)] * (image.ndim - 2), mode="symmetric")


def random_crop(rng: np.random.Generator, image: np.ndarray, height: int, width: int) -> np.ndarray:
    image = pad_to(image, height, width)
    y = int(rng.integers(0, image.shape[0] - height + 1))
    x = int(rng.integers(0, image.shape[1] - width + 1))
    return image[y : y + height, x : x + width]


def crop_around(rng: np.random.Generator, image: np.ndarray, y: int, x: int, size: int) -> np.ndarray:
    """A size x size crop holding (y, x) somewhere in its middle half (clamped to the image)."""
    image = pad_to(image, size, size)
    jitter = rng.integers(-(size // 4), size // 4 + 1, size=2)
    y0 = int(np.clip(y - size // 2 + jitter[0], 0, image.shape[0] - size))
    x0 = int(np.clip(x - size // 2 + jitter[1], 0, image.shape[1] - size))
    return image[y0 : y0 + size, x0 : x0 + size]


def augment(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    """Random flips and a random quarter turn."""
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    return np.ascontiguousarray(np.rot90(crop, int(rng.integers(0, 4))))


def hot_spots(heatmap: np.ndarray, *, count: int, min_heat: float, spacing_px: int = 32) -> list[tuple[int, int]]:
    """(y, x) of the ``count`` hottest local maxima of a good image's heatmap, at least ``min_heat``."""
    peaks = (heatmap >= cv2.dilate(heatmap, np.ones((spacing_px, spacing_px), np.uint8))) & (heatmap >= min_heat)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-heatmap[ys, xs], kind="stable")[:count]
    return [(int(ys[i]), int(xs[i])) for i in order]


def train_crop(rng: np.random.Generator, image: np.ndarray, *, crop_px: int) -> np.ndarray:
    """Train preset: a random square crop, random flips and a random quarter turn."""
    crop = random_crop(rng, image, crop_px, crop_px)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    return np.ascontiguousarray(np.rot90(crop, int(rng.integers(0, 4))))


BLANK_STD = 2.0
"""Grey levels: a crop whose pixels vary less than this is blank (padding, background)."""


def is_blank(crop: np.ndarray) -> bool:
    return float(crop.std()) < BLANK_STD


@dataclass
class AnomalyBatches:
    """Endless batches of (images [B,3,H,W] float32 0..1, masks [B,1,H,W] float32 0/1)."""

    images: list[np.ndarray]
    data: DataConfig
    anomalies: AnomalyConfig
    rng: np.random.Generator
    hard_spots: list[tuple[int, int, int]] = field(default_factory=list)
    """(image index, y, x) where the network last fired on a good image: hard negatives."""

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        crop_px = self.data.crop_px
        if self.hard_spots and rng.random() < self.data.hard_negative_fraction:
            # Rare normal structure (a selvage, a padding edge, a slub) is where a detector trained on
            # random crops fires; showing it again, as good or as the ground of an anomaly, fixes that.
            i, y, x = self.hard_spots[int(rng.integers(len(self.hard_spots)))]
            crop = augment(rng, crop_around(rng, self.images[i], y, x, crop_px))
        else:
            crop = train_crop(rng, self.images[int(rng.integers(len(self.images)))], crop_px=crop_px)
        # Blank crops (padding, background) teach nothing after the first few: most are drawn again,
        # so a strip that is one third padding does not spend a third of the training time on it.
        if rng.random() < self.data.redraw_blank and is_blank(crop):
            crop = train_crop(rng, self.images[int(rng.integers(len(self.images)))], crop_px=crop_px)
        if rng.random() >= self.data.anomaly_probability:
            return crop, np.zeros(crop.shape[:2], np.uint8)
        donor = train_crop(rng, self.images[int(rng.integers(len(self.images)))], crop_px=crop_px)
        return add_anomaly(rng, crop, donor, self.anomalies)

    def next_batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample(self.rng) for _ in range(batch_size)]
        images = to_tensor_layout(np.stack([p[0] for p in pairs]))
        masks = np.stack([p[1] for p in pairs])[:, None].astype(np.float32) / np.float32(255)
        return images, masks
