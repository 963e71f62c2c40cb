"""Checking a dataset before anything trains on it: every problem named with its file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from qc.data.records import Dataset, DatasetError, ImageRecord
from qc.imageio import IMAGE_SUFFIXES, ImageReadError, read_image, read_mask


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class CheckedImage:
    record: ImageRecord
    height: int
    width: int
    channels: int  # as stored on disk (1 grey, 3 colour, 4 with alpha)
    mask_fraction: float | None  # share of defect pixels; None without a mask


def _stored_channels(path: Path) -> int:
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return 1 if image is None or image.ndim == 2 else int(image.shape[2])


def check_record(record: ImageRecord) -> tuple[CheckedImage | None, list[Problem]]:
    try:
        image = read_image(record.path)
    except ImageReadError as exc:
        return None, [Problem(record.path, str(exc).removeprefix(f"{record.path}: "))]
    problems: list[Problem] = []
    height, width = image.shape[:2]
    union = None
    for mask_path in record.masks:
        try:
            mask = read_mask(mask_path)
        except ImageReadError as exc:
            problems.append(Problem(mask_path, str(exc).removeprefix(f"{mask_path}: ")))
            continue
        if mask.shape != (height, width):
            problems.append(
                Problem(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]}, its image {width}x{height}")
            )
            continue
        union = mask if union is None else np.maximum(union, mask)
    fraction = None if union is None else float((union > 0).mean())
    return CheckedImage(record, height, width, _stored_channels(record.path), fraction), problems


def orphan_masks(dataset: Dataset) -> list[Problem]:
    """Mask files that belong to no image (MVTec ground_truth, AITEX Mask_images)."""
    used = {m.resolve() for r in dataset.records for m in r.masks}
    if dataset.layout == "mvtec":
        candidates = (dataset.root / "ground_truth").rglob("*")
    elif dataset.layout == "aitex":
        candidates = (dataset.root / "Mask_images").glob("*")
    else:
        return []
    return [
        Problem(p, "mask without an image")
        for p in sorted(candidates)
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in used
    ]


def structural_problems(dataset: Dataset) -> list[Problem]:
    problems = orphan_masks(dataset)
    names = Counter((r.split, r.defect_type or "good", r.path.name) for r in dataset.records)
    for (split, kind, name), n in sorted(names.items()):
        if n > 1:
            problems.append(Problem(dataset.root / split / kind / name, f"duplicate name ({n} files)"))
    if dataset.layout == "mvtec":
        for split in ("train", "val", "test"):
            if (dataset.root / split).is_dir() and not dataset.select(split=split):
                problems.append(Problem(dataset.root / split, "split is empty"))
        if (dataset.root / "train").is_dir() and not dataset.select(split="train", label="good"):
            problems.append(Problem(dataset.root / "train" / "good", "no good training images"))
    return problems


def check_dataset(
    dataset: Dataset, *, skip_bad: bool = False
) -> tuple[Dataset, list[CheckedImage], list[Problem]]:
    """Open every image and mask. Without ``skip_bad`` any problem raises DatasetError naming files;
    with it, bad images are left out and the problems returned for the report."""
    problems = structural_problems(dataset)
    checked: list[CheckedImage] = []
    bad_paths: set[Path] = set()
    for record in dataset.records:
        item, found = check_record(record)
        problems.extend(found)
        if item is None or found:
            bad_paths.add(record.path)
        else:
            checked.append(item)
    if problems and not skip_bad:
        listing = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DatasetError(
            f"{dataset.root}: {len(problems)} problem(s) (use --skip-bad to leave them out):\n{listing}{more}"
        )
    kept = replace(dataset, records=[r for r in dataset.records if r.path not in bad_paths])
    return kept, checked, problems
