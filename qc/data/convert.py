"""``qc data convert --from aitex``: the performance protocol's split, written in MVTec layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from qc.data.readers import open_dataset
from qc.data.records import DatasetError
from qc.data.validate import check_record
from qc.imageio import read_mask, write_image_atomic


def convert_aitex(
    src: str | Path, out: str | Path, *, fabric: str, train_good: int = 12, skip_bad: bool = False
) -> dict:
    """First ``train_good`` good strips of ``fabric`` (sorted by file name) -> train/good; its other
    good strips -> test/good; its defect strips -> test/<defect>; masks (united where a strip has
    several) -> ground_truth/<defect>/<stem>_mask.png. Strips are copied byte for byte."""
    src, out = Path(src), Path(out)
    dataset = open_dataset(src, "aitex")
    # Every strip of the fabric is opened before anything is written: a broken file is named, or
    # with skip_bad left out and reported, never copied into a dataset that then fails to train.
    problems, bad = [], set()
    for record in (r for r in dataset.records if r.fabric == fabric):
        _, found = check_record(record)
        if found:
            problems.extend(str(p) for p in found)
            bad.add(record.path)
    if problems and not skip_bad:
        raise DatasetError("cannot convert, bad files (use --skip-bad to leave them out):\n  " + "\n  ".join(problems))
    good = sorted(
        (r for r in dataset.records if r.fabric == fabric and r.label == "good" and r.path not in bad),
        key=lambda r: r.path.name,
    )
    defects = [r for r in dataset.records if r.fabric == fabric and r.label == "defect" and r.path not in bad]
    if len(good) <= train_good:
        raise DatasetError(
            f"{src}: fabric {fabric} has {len(good)} good strips; the split needs more than {train_good}"
        )
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: output folder exists and is not empty")
    summary = {"train/good": 0, "test/good": 0, "defects": {}, "masks": 0, "without_mask": [], "skipped_bad": problems}
    for i, record in enumerate(good):
        split = "train" if i < train_good else "test"
        target = out / split / "good" / record.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record.path, target)
        summary[f"{split}/good"] += 1
    for record in defects:
        kind = record.defect_type or "defect"
        target = out / "test" / kind / record.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record.path, target)
        summary["defects"][kind] = summary["defects"].get(kind, 0) + 1
        if not record.masks:
            summary["without_mask"].append(record.path.name)
            continue
        union = np.maximum.reduce([read_mask(m) for m in record.masks])
        write_image_atomic(out / "ground_truth" / kind / f"{record.path.stem}_mask.png", union)
        summary["masks"] += 1
    return summary
