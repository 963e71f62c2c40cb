"""Operator reviews exported as a dataset to retrain on."""

from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

from edge.reports.feedback import export_feedback
from edge.units import Review
from qc.data import open_dataset
from qc.render import heatmap_to_rgb

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def _add(store, new_unit, at, heat):
    image = np.full(heat.shape + (3,), 128, np.uint8)
    return store.add(
        new_unit(at, verdict="fail", score=float(heat.max())),
        original_rgb=image, heatmap_rgb=heatmap_to_rgb(heat), overlay_rgb=image,
    )


def test_reviews_become_good_images_and_masked_defects(store, new_unit, tmp_path):
    heat = np.zeros((48, 64), np.float32)
    heat[10:20, 30:40] = 0.9
    confirmed = _add(store, new_unit, T0, heat)
    overridden = _add(store, new_unit, T0 + timedelta(seconds=1), heat)
    _add(store, new_unit, T0 + timedelta(seconds=2), heat)  # never reviewed: no label
    store.review(confirmed.id, Review(by="op", verdict="fail", defect_type="Oil stain"))
    store.review(overridden.id, Review(by="op", verdict="pass"))

    out = tmp_path / "feedback"
    summary = export_feedback(f"sqlite:///{store.data_dir / 'qc.db'}", store.data_dir, out)
    assert summary == {"good": 1, "defects": {"oil_stain": 1}, "skipped": []}
    mask = cv2.imread(str(out / "ground_truth" / "oil_stain" / f"{confirmed.id}_mask.png"), 0)
    assert mask[15, 35] == 255 and mask[30, 10] == 0 and (mask > 0).sum() == 100
    dataset = open_dataset(out)
    assert dataset.counts() == {"train": {"good": 1, "oil_stain": 1}}
    with pytest.raises(FileExistsError):
        export_feedback(f"sqlite:///{store.data_dir / 'qc.db'}", store.data_dir, out)


def test_the_export_only_reads_the_station(store, new_unit, tmp_path):
    """A read-only export: no render written into the unit folders (the stored heatmap values are
    the mask's source), nothing else added to the data folder, the database left as it was."""
    heat = np.zeros((48, 64), np.float32)
    heat[10:20, 30:40] = 0.9
    image = np.full(heat.shape + (3,), 128, np.uint8)
    unit = store.add(new_unit(T0, verdict="fail", score=0.9), original_rgb=image, heatmap=heat)
    store.review(unit.id, Review(by="op", verdict="fail", defect_type="hole"))
    database = store.data_dir / "qc.db"
    before = sorted(p.relative_to(store.data_dir) for p in store.data_dir.rglob("*")
                    if p.is_file() and not p.name.startswith("qc.db"))

    out = tmp_path / "feedback"
    assert export_feedback(f"sqlite:///{database}", store.data_dir, out)["defects"] == {"hole": 1}
    mask = cv2.imread(str(out / "ground_truth" / "hole" / f"{unit.id}_mask.png"), 0)
    assert mask[15, 35] == 255 and (mask > 0).sum() == 100
    after = sorted(p.relative_to(store.data_dir) for p in store.data_dir.rglob("*")
                   if p.is_file() and not p.name.startswith("qc.db"))
    assert after == before
