"""Labelled regions: one connected component of a defect mask, with the cloth around it and its type.

Three sources, one shape: MVTec-layout roots' ``train/<type>/`` images with their
``ground_truth/<type>/<stem>_mask.png`` masks (``qc data export-feedback`` writes the same layout
from the operators' reviews; ``test/`` is never read), the synthetic generator's defect types drawn
on the fly, and (for the benchmark) any list of ImageRecords such as the AITEX strips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from qc.data import open_dataset
from qc.data.records import DatasetError, ImageRecord
from qc.decision import ONE_CLASS
from qc.imageio import ImageReadError, read_image, read_mask
from qc.synth import DEFECTS, generate_sample
from training.config import TrainingError

PATCH_MARGIN = 1.0  # cloth kept on each side of a region, times its longer side: room for box jitter


@dataclass(frozen=True)
class LabelledRegion:
    patch: np.ndarray  # (h, w, 3) uint8 RGB: the region and the cloth around it
    mask: np.ndarray  # (h, w) uint8 0/255: every defect pixel of the image within the patch
    box: tuple[int, int, int, int]  # the region's x, y, width, height inside the patch
    type: str
    group: str  # the image it came from: held-back splits never separate one image's regions


def regions_of_image(
    image: np.ndarray, mask: np.ndarray, kind: str, group: str, *, min_area_px: int
) -> list[LabelledRegion]:
    """Each connected component of ``mask`` (8-connected, at least ``min_area_px``) as a region."""
    binary = (mask > 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    height, width = binary.shape
    regions = []
    for label in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area_px:
            continue
        margin = int(np.ceil(PATCH_MARGIN * max(w, h))) + 16
        x0, y0 = max(x - margin, 0), max(y - margin, 0)
        x1, y1 = min(x + w + margin, width), min(y + h + margin, height)
        regions.append(
            LabelledRegion(
                patch=np.ascontiguousarray(image[y0:y1, x0:x1]),
                mask=np.ascontiguousarray(binary[y0:y1, x0:x1] * 255),
                box=(x - x0, y - y0, w, h),
                type=kind,
                group=group,
            )
        )
    return regions


def regions_of_records(records: list[ImageRecord], *, min_area_px: int) -> list[LabelledRegion]:
    """Regions of labelled defect images with masks (several masks of one image are united)."""
    regions = []
    for record in records:
        if not record.masks:
            continue  # a labelled image without a mask says what, not where
        try:
            image = read_image(record.path)
            mask = np.zeros(image.shape[:2], np.uint8)
            for path in record.masks:
                part = read_mask(path)
                if part.shape != mask.shape:
                    raise TrainingError(f"{path}: mask {part.shape} does not match its image {mask.shape}")
                mask |= part
        except ImageReadError as exc:
            raise TrainingError(str(exc)) from exc
        regions += regions_of_image(image, mask, record.defect_type, str(record.path), min_area_px=min_area_px)
    return regions


def check_type_name(name: str, where: Path) -> None:
    """The folder name is the type: it must be a valid identifier (it becomes a label and a key)."""
    if not name.isidentifier():
        raise TrainingError(
            f"{where}: defect type {name!r} is not a valid identifier (letters, digits and _, not "
            f"starting with a digit); rename the folder, e.g. to {_suggest(name)!r}"
        )


def _suggest(name: str) -> str:
    from qc.data.readers import slug

    suggestion = slug(name)
    return suggestion if suggestion.isidentifier() else f"type_{suggestion}"


def dataset_regions(root: Path, *, min_area_px: int) -> list[LabelledRegion]:
    """Regions of ``root``'s ``train/<type>/`` images (an MVTec-layout root or an export-feedback
    folder). Images filed as "defect" (a failed unit no operator gave a type) carry no type and are
    left out; a root with no typed region at all is refused."""
    try:
        dataset = open_dataset(root)
    except DatasetError as exc:
        raise TrainingError(str(exc)) from exc
    if dataset.layout != "mvtec":
        raise TrainingError(f"{root}: train-types reads the MVTec layout (train/<type>/, ground_truth/<type>/), not {dataset.layout}")
    records = [r for r in dataset.select(split="train", label="defect") if r.defect_type != ONE_CLASS]
    for kind in sorted({r.defect_type for r in records}):
        check_type_name(kind, root / "train" / kind)
    regions = regions_of_records(records, min_area_px=min_area_px)
    if not regions:
        raise TrainingError(
            f"{root}: no labelled defect regions: train-types needs train/<type>/ images with masks in "
            f"ground_truth/<type>/<stem>_mask.png (a `qc data export-feedback` folder needs units an "
            f"operator failed and gave a defect type; unreviewed and untyped units are left out)"
        )
    return regions


def synthetic_regions(per_type: int, *, seed: int, size_px: int, min_area_px: int) -> list[LabelledRegion]:
    """``per_type`` synthetic tiles of each of the generator's defect types, fabrics at random."""
    regions = []
    for t, kind in enumerate(DEFECTS):
        for index in range(per_type):
            # One generator per tile (seed, type, index): a tile does not depend on the others.
            sample = generate_sample(np.random.default_rng([seed, t, index]), size_px=(size_px, size_px), defect=kind)
            regions += regions_of_image(
                sample.image, sample.mask, kind, f"synthetic/{kind}/{index}", min_area_px=min_area_px
            )
    return regions


def check_types(regions: list[LabelledRegion]) -> list[str]:
    """The sorted type names; refuses data with fewer than two types."""
    types = sorted({r.type for r in regions})
    if len(types) < 2:
        raise TrainingError(
            f"the data hold only one defect type ({', '.join(types) or 'none'}): a type classifier needs "
            f"at least two (add --synthetic N or another --data root)"
        )
    return types
