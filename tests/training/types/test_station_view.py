"""training/types/station_view.py and the synthetic panels: training regions made the way the station
makes them (the detector's regions on the defect, its heatmap as the hint), beside the ground truth's.

The tiny dark-spot detector (tests/conftest.py) lights up pixels darker than ~32/255, so a test
draws where the detector must find a region and where the ground truth says the defect is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qc.decision import decide
from qc.imageio import write_image_atomic
from qc.synth import FABRIC_DEFECTS
from training.config import TrainingError
from training.types.config import TypesConfig
from training.types.regions import dataset_regions, labelled_regions, synthetic_regions
from training.types.run import TYPES_RUN_FILE, run_train_types
from qc.defect_types import NOT_A_DEFECT
from training.types.station_view import DetectorView, on_defect

FAST = TypesConfig(steps=3, batch_size=4, width=4, crop_px=32)


def cloth(rng, shape=(96, 128)) -> np.ndarray:
    return rng.integers(150, 200, (*shape, 3), dtype=np.uint8)


def test_the_station_view_is_the_detectors_region_on_the_defect_with_its_heatmap_as_hint(tiny_model_dir, rng):
    image = cloth(rng)
    image[40:50, 30:52] = 5  # the defect as the detector sees it: 22 x 10 px
    image[4:14, 100:112] = 5  # a dark patch the detector also finds, off the defect
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[42:47, 34:44] = 255  # the ground truth: smaller than what the heatmap lights up
    view = DetectorView.open(tiny_model_dir, threads=1)
    regions = view.regions(image, mask, "hole", "img-1")
    (region,) = [r for r in regions if r.type == "hole"]
    (false_alarm,) = [r for r in regions if r.type != "hole"]
    assert region.group == false_alarm.group == "img-1"
    # The dark patch off the defect is what the station would type too: learnt as not a defect.
    assert false_alarm.type == NOT_A_DEFECT and false_alarm.box[2:] != region.box[2:]
    # The station's regions: decide() on the detector's result.
    result = view.detector.infer(image)
    decision = decide(result, view.detector.card)
    assert decision.verdict == "fail" and len(decision.defects) == 2
    (bx, by, bw, bh), = [d.box for d in decision.defects if d.box[1] > 20]
    x, y, w, h = region.box
    assert (w, h) == (bw, bh) and w > 15 and h > 6  # the detector's box, not the mask's (10 x 5)
    assert region.patch.shape[:2] == region.mask.shape
    assert np.array_equal(region.patch[y : y + h, x : x + w], image[by : by + bh, bx : bx + bw])
    # The hint is the heatmap at the pixel threshold, not the ground truth.
    hint = (result.heatmap >= decision.pixel_threshold)[by : by + bh, bx : bx + bw]
    assert np.array_equal(region.mask[y : y + h, x : x + w] > 0, hint) and hint.sum() > 50


def test_a_passed_image_gives_no_station_regions_and_the_ground_truth_regions_stay(tiny_model_dir, rng):
    image = cloth(rng)  # nothing dark: the detector passes it, as the station would (no types asked)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[20:30, 20:30] = 255
    view = DetectorView.open(tiny_model_dir, threads=1)
    assert view.regions(image, mask, "stain", "g") == []
    (truth,) = labelled_regions(image, mask, "stain", "g", min_area_px=6, station=view)
    assert truth.box[2:] == (10, 10) and truth.type == "stain"


def test_both_views_of_a_labelled_image_share_its_group(tiny_model_dir, rng):
    image = cloth(rng)
    image[40:50, 30:52] = 5
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[42:47, 34:44] = 255
    view = DetectorView.open(tiny_model_dir, threads=1)
    regions = labelled_regions(image, mask, "hole", "img", min_area_px=6, station=view)
    assert len(regions) == 2 and regions[0].box[2:] == (10, 5) and regions[1].box[2] > 15  # truth, detector
    assert {r.group for r in regions} == {"img"}  # held back together, never split across train/held


def test_on_defect_means_the_box_holds_a_ground_truth_pixel():
    mask = np.zeros((20, 20), np.uint8)
    mask[10, 10] = 255
    assert on_defect(mask, (8, 8, 3, 3)) and not on_defect(mask, (0, 0, 10, 10)) and on_defect(mask, (10, 10, 1, 1))


def write_labelled_dark(root, kind: str, stem: str, rng, box: tuple[int, int, int, int]) -> None:
    x, y, w, h = box
    image = cloth(rng, (64, 64))
    image[y : y + h, x : x + w] = 5
    mask = np.zeros((64, 64), np.uint8)
    mask[y : y + h, x : x + w] = 255
    write_image_atomic(root / "train" / kind / f"{stem}.png", image)
    write_image_atomic(root / "ground_truth" / kind / f"{stem}_mask.png", mask)


def test_train_types_with_a_detector_learns_both_views_and_records_it(tiny_model_dir, tmp_path, rng, capsys):
    from qc.cli import EXIT_OK, EXIT_USAGE, main

    data = tmp_path / "data"
    for i in range(3):
        write_labelled_dark(data, "hole", f"h{i}", rng, (10, 10, 8, 8))
        write_labelled_dark(data, "slub", f"s{i}", rng, (5, 30, 40, 3))
    truth_only = dataset_regions(data, min_area_px=6)
    both = dataset_regions(data, min_area_px=6, station=DetectorView.open(tiny_model_dir, threads=1))
    assert len(truth_only) == 6 and len(both) == 12
    run = tmp_path / "run"
    argv = ["train-types", "--data", str(data), "--detector", str(tiny_model_dir), "--out", str(run),
            "steps=2", "batch_size=2", "width=4", "crop_px=32"]
    assert main(argv) == EXIT_OK
    record = json.loads((run / TYPES_RUN_FILE).read_text())
    assert record["config"]["detector"] == str(tiny_model_dir)
    assert f"(12 regions)" in record["data"] and "the detector of" in record["data"]
    assert record["regions_per_type"] == {"hole": 6, "slub": 6}
    capsys.readouterr()
    missing = tmp_path / "no-model"
    assert main([*argv[:3], "--detector", str(missing), "--out", str(tmp_path / "run2")]) == EXIT_USAGE
    assert f"detector {missing}" in capsys.readouterr().err


def test_a_detector_that_is_not_a_model_is_refused_naming_it(tmp_path):
    with pytest.raises(TrainingError, match=r"detector .*nothing.*holds no model"):
        run_train_types([], 1, tmp_path / "run", FAST.model_copy(update={"detector": tmp_path / "nothing"}), "t")


def test_synthetic_panels_are_line_frames_for_fabric_types_and_leave_the_tiles_as_they_were():
    tiles = synthetic_regions(2, seed=5, size_px=96, min_area_px=6)
    mixed = synthetic_regions(2, seed=5, size_px=96, min_area_px=6, panel_share=0.5)
    panel_groups = {r.group for r in mixed if "/panel" in r.group}
    # One of the two images of each fabric type is a panel (where its type fitted); seam types stay tiles.
    assert len(panel_groups) >= len(FABRIC_DEFECTS) - 2
    assert all(g.split("/")[1] in FABRIC_DEFECTS for g in panel_groups)
    # The second image of every type is the same tile with or without panels.
    second = lambda regions: [(r.group, r.box, r.patch.tobytes()) for r in regions if r.group.endswith("/1")]  # noqa: E731
    assert second(tiles) == second(mixed) and second(tiles)
    with pytest.raises(ValueError):
        TypesConfig(synthetic_panel_share=1.5)
