"""Training data: the good images of ``train/good`` (never ``test/``), the calibration hold-out,
random crops with flips and quarter turns, and batches where a share of crops carry a synthetic
anomaly. Plain numpy with a seeded Generator, so a run is reproducible crop for crop.

Labelled defects a user has in ``train/<defect_type>/`` (masks in
``ground_truth/<defect_type>/<stem>_mask.png``, or none) are loaded too: crops around a masked
defect are trained with the mask as target; image-label-only defects are weak positives (see
``AnomalyBatches``). With none of them, batches are drawn exactly as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from qc import padding
from qc.imageio import IMAGE_SUFFIXES, ImageReadError, read_image, read_mask
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
    check_layout(root)
    folder = root / "train" / "good" if (root / "train").is_dir() else root
    if not folder.is_dir():
        raise TrainingError(f"{folder} is missing: an MVTec dataset keeps its good images there")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise TrainingError(f"no good training images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return paths


def check_layout(root: Path) -> None:
    """Refuse folders that are datasets of another layout, rather than training on the wrong files."""
    if (root / "Defect_images").is_dir() or (root / "NoDefect_images").is_dir():
        raise TrainingError(
            f"{root} is in the AITEX layout (Defect_images/, NoDefect_images/): convert it first with "
            f"`qc data convert --from aitex {root} --out DIR` and train on DIR"
        )
    if not (root / "train").is_dir() and any((root / d).is_dir() for d in ("test", "ground_truth")):
        raise TrainingError(
            f"{root} has test/ or ground_truth/ but no train/: an MVTec dataset keeps its training "
            f"images in train/good/ (training never reads test/)"
        )
    if (root / "train").is_dir() and not (root / "train" / "good").is_dir():
        found = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        raise TrainingError(
            f"{root / 'train' / 'good'} is missing: an MVTec dataset keeps its good images there "
            f"(train/ holds {', '.join(found) or 'no folders'})"
        )


@dataclass(frozen=True)
class LabelledDefect:
    """A defect image a user put in ``train/<defect_type>/``; ``mask_path`` None: image label only."""

    path: Path
    defect_type: str
    mask_path: Path | None


def find_labelled_defects(root: Path, split: str = "train") -> list[LabelledDefect]:
    """``ROOT/<split>/<type>/*`` for every type but good, with ``ground_truth/<type>/<stem>_mask.png``."""
    folder_of_split = Path(root) / split
    if not folder_of_split.is_dir():
        return []
    found = []
    for folder in sorted(p for p in folder_of_split.iterdir() if p.is_dir() and p.name != "good"):
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            mask = Path(root) / "ground_truth" / folder.name / f"{path.stem}_mask.png"
            found.append(LabelledDefect(path, folder.name, mask if mask.is_file() else None))
    return found


def find_validation_good(root: Path) -> list[Path]:
    """``ROOT/val/good/*``: a user's own calibration split (the dataset contract); empty when there is none."""
    folder = Path(root) / "val" / "good"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class DefectSample:
    """A loaded labelled defect: uint8 RGB image, mask bool (H, W) or None (weak positive)."""

    image: np.ndarray
    mask: np.ndarray | None
    defect_type: str
    where: np.ndarray | None = None  # (k, 2) defect pixel coordinates to centre crops on


def load_defects(defects: list[LabelledDefect]) -> list[DefectSample]:
    samples = []
    for defect in defects:
        try:
            image = read_image(defect.path)
            mask = read_mask(defect.mask_path) > 0 if defect.mask_path is not None else None
        except ImageReadError as exc:
            raise TrainingError(f"unreadable labelled defect: {exc}") from exc
        where = None
        if mask is not None:
            if mask.shape != image.shape[:2]:
                raise TrainingError(
                    f"mask {defect.mask_path} is {mask.shape[1]}x{mask.shape[0]} px but its image "
                    f"{defect.path} is {image.shape[1]}x{image.shape[0]} px"
                )
            ys, xs = np.nonzero(mask)
            if len(ys) == 0:
                raise TrainingError(f"mask {defect.mask_path} marks no defect pixel (255 = defect)")
            step = max(1, len(ys) // 4096)
            where = np.stack([ys[::step], xs[::step]], axis=1)
        samples.append(DefectSample(image, mask, defect.defect_type, where))
    return samples


def split_defects(
    defects: list[LabelledDefect], *, val_fraction: float, seed: int
) -> tuple[list[LabelledDefect], list[LabelledDefect]]:
    """Hold back ``val_fraction`` of the labelled defects (at least one) for recall calibration."""
    if not defects:
        return [], []
    n_val = max(1, int(round(val_fraction * len(defects))))
    if n_val >= len(defects):
        return [], list(defects)
    order = np.random.default_rng([seed, 0xDEFEC7]).permutation(len(defects))
    return [defects[i] for i in sorted(order[n_val:])], [defects[i] for i in sorted(order[:n_val])]


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


def augment(rng: np.random.Generator, crop: np.ndarray, *, rotate: bool = True) -> np.ndarray:
    """Random flips and, when ``rotate``, a random quarter turn (no draw for it otherwise)."""
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    return np.ascontiguousarray(np.rot90(crop, int(rng.integers(0, 4))) if rotate else crop)


def hot_spots(heatmap: np.ndarray, *, count: int, min_heat: float, spacing_px: int = 32) -> list[tuple[int, int]]:
    """(y, x) of the ``count`` hottest local maxima of a good image's heatmap, at least ``min_heat``."""
    peaks = (heatmap >= cv2.dilate(heatmap, np.ones((spacing_px, spacing_px), np.uint8))) & (heatmap >= min_heat)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-heatmap[ys, xs], kind="stable")[:count]
    return [(int(ys[i]), int(xs[i])) for i in order]


def train_crop(rng: np.random.Generator, image: np.ndarray, *, crop_px: int, rotate: bool = True) -> np.ndarray:
    """Train preset: a random square crop, random flips and (``rotate``) a random quarter turn.

    A fabric with a direction (a twill, a printed stripe, a line-scan strip whose rows are the
    weft) sets ``data.rotate`` false: a turned crop would be a fabric the camera never sees.
    """
    return augment(rng, random_crop(rng, image, crop_px, crop_px), rotate=rotate)


BLANK_STD = 2.0
"""Grey levels: a crop whose pixels vary less than this is blank (padding, background)."""


def is_blank(crop: np.ndarray) -> bool:
    return float(crop.std()) < BLANK_STD


def joint_flips(
    rng: np.random.Generator, crop: np.ndarray, mask: np.ndarray, *, rotate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The same random flips and quarter turn (when ``rotate``) on an image crop and its mask."""
    if rng.random() < 0.5:
        crop, mask = crop[:, ::-1], mask[:, ::-1]
    if rng.random() < 0.5:
        crop, mask = crop[::-1], mask[::-1]
    turns = int(rng.integers(0, 4)) if rotate else 0
    return np.ascontiguousarray(np.rot90(crop, turns)), np.ascontiguousarray(np.rot90(mask, turns))


def window_around(rng: np.random.Generator, shape: tuple[int, ...], y: int, x: int, size: int) -> tuple[int, int]:
    """Top-left corner of a size x size window holding (y, x) in its middle half (clamped)."""
    jitter = rng.integers(-(size // 4), size // 4 + 1, size=2)
    y0 = int(np.clip(y - size // 2 + jitter[0], 0, shape[0] - size))
    x0 = int(np.clip(x - size // 2 + jitter[1], 0, shape[1] - size))
    return y0, x0


@dataclass
class AnomalyBatches:
    """Endless batches of (images [B,3,H,W] float32 0..1, masks [B,1,H,W] float32 0/1).

    With labelled ``defects``, a share ``data.real_defect_fraction`` of crops comes from them:
    - a defect with a mask: a crop around one of its defect pixels, the mask as target;
    - a defect with an image label only (weak positive): we know the image holds a defect but not
      where, so no pixel can be called good or defect. Its crop is centred on the network's current
      hottest spot on that image (``weak_spots``, refreshed with the hard negatives; a random crop
      before the first search) and ``next_batch_with_weak`` flags it: training leaves it out of the
      pixel loss and only pushes its image score up (multiple-instance learning: the image is
      positive if its most suspicious region is).
    """

    images: list[np.ndarray]
    data: DataConfig
    anomalies: AnomalyConfig
    rng: np.random.Generator
    hard_spots: list[tuple[int, int, int]] = field(default_factory=list)
    """(image index, y, x) where the network last fired on a good image: hard negatives."""
    hard_search_from: int = 0
    """the image the next search for hard negatives starts from (training/hard_negatives.py)"""
    augment: Callable[[np.random.Generator, np.ndarray], np.ndarray] | None = None
    """train preset applied to good crops before anomaly pasting (training/augment.py); None: off."""
    defects: list[DefectSample] = field(default_factory=list)
    weak_spots: dict[int, tuple[int, int]] = field(default_factory=dict)
    """defect index -> (y, x) of the network's hottest spot on an image-label-only defect."""
    _area_share: np.ndarray = field(init=False, repr=False)
    """cumulative share of the pixels up to each image, for data.crops_per: area"""
    fill_padding: bool = False
    """``export.fill_padding``: crops are cut from the images with their padding mirrored over by
    cloth, as the station's network then sees them (qc.padding.fill_padding)."""
    crop_sources: list[np.ndarray] = field(init=False, repr=False)
    """What training crops are cut from: ``images``, or with ``fill_padding`` their filled copies.
    Mining scores ``images`` themselves, through the station's own path."""

    def __post_init__(self) -> None:
        self.crop_sources = [padding.fill_padding(image) for image in self.images] if self.fill_padding else self.images
        areas = np.array([image.shape[0] * image.shape[1] for image in self.images], np.float64)
        self._area_share = np.cumsum(areas / areas.sum()) if len(areas) else areas

    def sample_defect(self, rng: np.random.Generator, crop_px: int) -> tuple[np.ndarray, np.ndarray, bool]:
        index = int(rng.integers(len(self.defects)))
        defect = self.defects[index]
        image = pad_to(defect.image, crop_px, crop_px)
        if defect.mask is not None:
            y, x = defect.where[int(rng.integers(len(defect.where)))]
            mask = pad_to(defect.mask.astype(np.uint8) * 255, crop_px, crop_px)
        else:
            y, x = self.weak_spots.get(index, (int(rng.integers(image.shape[0])), int(rng.integers(image.shape[1]))))
            mask = np.zeros(image.shape[:2], np.uint8)
        y0, x0 = window_around(rng, image.shape, int(y), int(x), crop_px)
        crop, mask = joint_flips(
            rng,
            image[y0 : y0 + crop_px, x0 : x0 + crop_px],
            mask[y0 : y0 + crop_px, x0 : x0 + crop_px],
            rotate=self.data.rotate,
        )
        return crop, mask, defect.mask is None

    def sample_with_weak(self, rng: np.random.Generator, crop_px: int) -> tuple[np.ndarray, np.ndarray, bool]:
        if self.defects and rng.random() < self.data.real_defect_fraction:
            return self.sample_defect(rng, crop_px)
        return (*self.sample(rng, crop_px), False)

    def batch_shape(self, batch_size: int) -> tuple[int, int]:
        """(crops, side) of the next batch: ``data.crop_px`` crops, or with ``data.large_crop_share``
        now and then ``data.large_crop_px`` crops at as many pixels per batch (at least one crop).

        The per-image norms make what the network sees depend on the whole input's statistics, so a
        network trained on 128-px crops alone met the station's 256-px tiles as something new: a
        synthetic line that scored 0.62 as a 128-px crop scored 0.002 as a tile.
        """
        data = self.data
        if data.large_crop_share <= 0 or self.rng.random() >= data.large_crop_share:
            return batch_size, data.crop_px
        crops = max(1, round(batch_size * data.crop_px**2 / data.large_crop_px**2))
        return crops, data.large_crop_px

    def next_batch_with_weak(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like next_batch, plus a bool [B] flag of weak positives (image label only); its size and
        side come from batch_shape."""
        crops, crop_px = self.batch_shape(batch_size)
        triples = [self.sample_with_weak(self.rng, crop_px) for _ in range(crops)]
        images = to_tensor_layout(np.stack([t[0] for t in triples]))
        masks = np.stack([t[1] for t in triples])[:, None].astype(np.float32) / np.float32(255)
        return images, masks, np.array([t[2] for t in triples], bool)

    def random_train_crop(self, rng: np.random.Generator, crop_px: int) -> np.ndarray:
        image = self.crop_sources[self.pick_image(rng)]
        return train_crop(rng, image, crop_px=crop_px, rotate=self.data.rotate)

    def pick_image(self, rng: np.random.Generator) -> int:
        if self.data.crops_per == "image":
            return int(rng.integers(len(self.images)))
        return min(int(np.searchsorted(self._area_share, rng.random(), side="right")), len(self.images) - 1)

    def sample(self, rng: np.random.Generator, crop_px: int) -> tuple[np.ndarray, np.ndarray]:
        if self.hard_spots and rng.random() < self.data.hard_negative_fraction:
            # Rare normal structure (a selvage, a padding edge, a slub) is where a detector trained on
            # random crops fires; showing it again, as good or as the ground of an anomaly, fixes that.
            i, y, x = self.hard_spots[int(rng.integers(len(self.hard_spots)))]
            crop = augment(rng, crop_around(rng, self.crop_sources[i], y, x, crop_px), rotate=self.data.rotate)
        else:
            crop = self.random_train_crop(rng, crop_px)
        # Blank crops (padding, background) teach nothing after the first few: most are drawn again,
        # so a strip that is one third padding does not spend a third of the training time on it.
        if rng.random() < self.data.redraw_blank and is_blank(crop):
            crop = self.random_train_crop(rng, crop_px)
        if self.augment is not None:
            crop = self.augment(rng, crop)
        if rng.random() >= self.data.anomaly_probability:
            return crop, np.zeros(crop.shape[:2], np.uint8)
        donor = self.random_train_crop(rng, crop_px)
        return add_anomaly(rng, crop, donor, self.anomalies)

    def next_batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample(self.rng, self.data.crop_px) for _ in range(batch_size)]
        images = to_tensor_layout(np.stack([p[0] for p in pairs]))
        masks = np.stack([p[1] for p in pairs])[:, None].astype(np.float32) / np.float32(255)
        return images, masks
