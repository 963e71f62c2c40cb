"""``qc data export-feedback``: the operators' reviews as a dataset to retrain on (MVTec layout).

Units an operator passed become ``train/good``; units an operator confirmed as failed become
``train/<defect_type>`` with a mask from the unit's own heatmap at the pixel threshold the model
used, in ``ground_truth/<defect_type>/``. Training reads both (docs/architecture.md: labelled defects in
train/ with their masks). Unreviewed units are left out: the model's own verdict is no label.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge.storage.engine import open_engine
from edge.storage.files import heatmap_values
from edge.storage.store import UnitReader
from edge.units import defect_types
from qc.imageio import ImageReadError, read_image, write_image_atomic


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_") or "defect"


def export_feedback(database_url: str, data_dir: Path, out: Path) -> dict:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: output folder exists and is not empty")
    # Read-only: its own engine and the queries, never the station's store (which would migrate
    # the database and could start replaying the spool), and the stored heatmap values, never a
    # render written into the unit folders.
    engine = open_engine(database_url)
    units = UnitReader(engine, Path(data_dir))
    summary: dict = {"good": 0, "defects": {}, "skipped": []}
    try:
        for unit in units.iter_units():
            if unit.review_verdict not in ("pass", "fail"):
                continue
            original = _stored_path(units, unit.id, "image")
            try:
                if original is None or not original.is_file():
                    raise ImageReadError(f"unit {unit.id}: original image is missing")
                image = read_image(original)
                if unit.review_verdict == "pass":
                    write_image_atomic(out / "train" / "good" / f"{unit.id}.png", image)
                    summary["good"] += 1
                    continue
                heatmap_file = _stored_path(units, unit.id, "heatmap")
                heat = None if heatmap_file is None else heatmap_values(heatmap_file)
                if heat is None:
                    raise ImageReadError(f"unit {unit.id}: heatmap is missing")
                mask = np.where(heat >= float(unit.thresholds.get("pixel", 0.5)), 255, 0).astype(np.uint8)
                if not mask.any():  # a confirmed defect the heatmap barely saw: mark its peak
                    mask[heat >= heat.max() * 0.9] = 255
                kind = _slug(defect_types(unit.review_verdict, unit.defects, unit.review_defect_type)[0])
                write_image_atomic(out / "train" / kind / f"{unit.id}.png", image)
                write_image_atomic(out / "ground_truth" / kind / f"{unit.id}_mask.png", mask)
                summary["defects"][kind] = summary["defects"].get(kind, 0) + 1
            except ImageReadError as exc:
                summary["skipped"].append(str(exc))
    finally:
        engine.dispose()
    return summary


def _stored_path(units: UnitReader, unit_id: str, kind: str) -> Path | None:
    found = units.stored_file(unit_id, kind)
    return None if found is None else found[0]
