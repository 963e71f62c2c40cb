"""Labelled regions: one connected component of a defect mask, with the cloth around it and its type.

Three sources, one shape: MVTec-layout roots' ``train/<type>/`` images with their
``ground_truth/<type>/<stem>_mask.png`` masks (``qc data export-feedback`` writes the same layout
from the operators' reviews; ``test/`` is never read), the synthetic generator's defect types drawn
on the fly (256-px tiles, and where asked whole line panels), and (for the benchmark) any list of
ImageRecords such as the AITEX strips. Given a station view (training/types/station_view.py), each
labelled image also gives the regions the detector finds on its defect, as the station sees them.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from qc.data import open_dataset
from qc.data.records import DatasetError, ImageRecord
from qc.decision import ONE_CLASS
from qc.defect_types import NOT_A_DEFECT
from qc.imageio import ImageReadError, read_image, read_mask
from qc.synth import DEFECTS, FABRIC_DEFECTS, generate_panel, generate_sample
from qc.synth.dataset import PANEL_SIZE_PX
from training.config import TrainingError

PATCH_MARGIN = 1.0  # cloth kept on each side of a region, times its longer side: room for box jitter
PANEL_STREAM = 1  # a synthetic panel's generator: (seed, type, index, PANEL_STREAM), apart from the tiles'


@dataclass(frozen=True)
class LabelledRegion:
    patch: np.ndarray  # (h, w, 3) uint8 RGB: the region and the cloth around it
    mask: np.ndarray  # (h, w) uint8 0/255: every defect pixel of the image within the patch
    box: tuple[int, int, int, int]  # the region's x, y, width, height inside the patch
    type: str
    group: str  # the image it came from: held-back splits never separate one image's regions
    image_size: tuple[int, int]  # (height, width) of that image: the region's extent in it is a feature


class StationView(Protocol):
    """Finds the regions a station would type on a labelled image (training/types/station_view.py)."""

    def regions(self, image: np.ndarray, mask: np.ndarray, kind: str, group: str) -> list[LabelledRegion]: ...


def cut_region(
    image: np.ndarray, hint: np.ndarray, box: tuple[int, int, int, int], kind: str, group: str
) -> LabelledRegion:
    """The region at ``box`` of ``image`` with the cloth around it; ``hint`` (0/255, the image's
    size) is where the defect is: the ground-truth mask, or the detector's heatmap at its threshold."""
    height, width = hint.shape
    x, y, w, h = box
    margin = int(np.ceil(PATCH_MARGIN * max(w, h))) + 16
    x0, y0 = max(x - margin, 0), max(y - margin, 0)
    x1, y1 = min(x + w + margin, width), min(y + h + margin, height)
    return LabelledRegion(
        patch=np.ascontiguousarray(image[y0:y1, x0:x1]),
        mask=np.ascontiguousarray(hint[y0:y1, x0:x1]),
        box=(x - x0, y - y0, w, h),
        type=kind,
        group=group,
        image_size=(height, width),
    )


def regions_of_image(
    image: np.ndarray, mask: np.ndarray, kind: str, group: str, *, min_area_px: int
) -> list[LabelledRegion]:
    """Each connected component of ``mask`` (8-connected, at least ``min_area_px``) as a region."""
    binary = (mask > 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    hint = binary * 255
    regions = []
    for label in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area >= min_area_px:
            regions.append(cut_region(image, hint, (x, y, w, h), kind, group))
    return regions


def labelled_regions(
    image: np.ndarray, mask: np.ndarray, kind: str, group: str, *, min_area_px: int,
    station: StationView | None = None,
) -> list[LabelledRegion]:
    """The mask's regions and, given a station view, the detector's regions on the defect too."""
    regions = regions_of_image(image, mask, kind, group, min_area_px=min_area_px)
    if station is not None:
        regions += station.regions(image, mask, kind, group)
    return regions


def regions_of_records(
    records: list[ImageRecord], *, min_area_px: int, station: StationView | None = None
) -> list[LabelledRegion]:
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
        regions += labelled_regions(
            image, mask, record.defect_type, str(record.path), min_area_px=min_area_px, station=station
        )
    return regions


def check_type_name(name: str, where: Path) -> None:
    """The folder name is the type: it must be a valid identifier (it becomes a label and a key)."""
    if not name.isidentifier():
        raise TrainingError(
            f"{where}: defect type {name!r} is not a valid identifier (letters, digits and _, not "
            f"starting with a digit); rename the folder, e.g. to {_suggest(name)!r}"
        )
    if name == NOT_A_DEFECT:
        raise TrainingError(
            f"{where}: {NOT_A_DEFECT!r} is reserved for a detector's false alarms (train-types --detector); "
            f"rename the folder after the defect it holds"
        )


def _suggest(name: str) -> str:
    from qc.data.readers import slug

    suggestion = slug(name)
    return suggestion if suggestion.isidentifier() else f"type_{suggestion}"


def dataset_regions(root: Path, *, min_area_px: int, station: StationView | None = None) -> list[LabelledRegion]:
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
    regions = regions_of_records(records, min_area_px=min_area_px, station=station)
    if not regions:
        raise TrainingError(
            f"{root}: no labelled defect regions: train-types needs train/<type>/ images with masks in "
            f"ground_truth/<type>/<stem>_mask.png (a `qc data export-feedback` folder needs units an "
            f"operator failed and gave a defect type; unreviewed and untyped units are left out)"
        )
    return regions


def _draw_synthetic(task: tuple[int, int, str, int, int, bool]) -> tuple[np.ndarray, np.ndarray, str, str] | None:
    """One synthetic image (a process pool's task): (image, mask, type, group), or None where the
    type did not fit the panel. One generator per image (seed, type, index): an image depends on
    nothing else, so the pool's size and order change nothing, and the tiles stay what they were
    without panels."""
    seed, t, kind, index, size_px, panel = task
    if panel:
        rng = np.random.default_rng([seed, t, index, PANEL_STREAM])
        sample = generate_panel(rng, size_px=PANEL_SIZE_PX, defect_probability=1.0, defect=kind)
        if sample.defect_type is None:
            return None
        return sample.image, sample.mask, kind, f"synthetic/{kind}/panel{index}"
    sample = generate_sample(np.random.default_rng([seed, t, index]), size_px=(size_px, size_px), defect=kind)
    return sample.image, sample.mask, kind, f"synthetic/{kind}/{index}"


def synthetic_regions(
    per_type: int, *, seed: int, size_px: int, min_area_px: int, panel_share: float = 0.0,
    station: StationView | None = None, workers: int = 1,
) -> list[LabelledRegion]:
    """``per_type`` synthetic images of each of the generator's defect types, fabrics at random:
    256-px tiles, and for the fabric types (the line draws no seam defects) ``panel_share`` of them
    whole line panels (qc.synth.generate_panel at the simulated line's size), the frames the station
    sees. A panel whose type did not fit is skipped. ``workers`` processes draw the images (drawing
    is most of the time; the result does not depend on their number); the regions, and the
    station view's detector, stay in this process."""
    n_panels = int(round(panel_share * per_type))
    tasks = [
        (seed, t, kind, index, size_px, kind in FABRIC_DEFECTS and index < n_panels)
        for t, kind in enumerate(DEFECTS)
        for index in range(per_type)
    ]
    regions = []
    for drawn in _drawn(tasks, workers):
        if drawn is not None:
            image, mask, kind, group = drawn
            regions += labelled_regions(image, mask, kind, group, min_area_px=min_area_px, station=station)
    return regions


def _drawn(tasks: list[tuple], workers: int) -> Iterator[tuple[np.ndarray, np.ndarray, str, str] | None]:
    """_draw_synthetic of each task, in the tasks' order."""
    if workers <= 1:
        yield from map(_draw_synthetic, tasks)
        return
    # spawn, not fork: the parent may hold torch's and onnxruntime's thread pools, which a forked
    # child would inherit in an unknown state.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_draw_synthetic, tasks, chunksize=8)


def check_types(regions: list[LabelledRegion]) -> list[str]:
    """The sorted type names (NOT_A_DEFECT among them where a station view found false alarms);
    refuses data with fewer than two defect types."""
    types = sorted({r.type for r in regions})
    named = [t for t in types if t != NOT_A_DEFECT]  # a detector's false alarms are not a defect type
    if len(named) < 2:
        raise TrainingError(
            f"the data hold only one defect type ({', '.join(named) or 'none'}): a type classifier needs "
            f"at least two (add --synthetic N or another --data root)"
        )
    return types
