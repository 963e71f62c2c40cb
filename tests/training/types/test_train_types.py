"""training/types: labelled regions from the three sources, bad input refused by name, and the
run -> export -> station loader round trip."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from qc.card import load_card, sha256_file
from qc.contract import MODEL_FILE, TYPES_FILE
from qc.decision import Defect
from qc.defect_types import GEOMETRY, NOT_A_DEFECT, load_type_classifier
from qc.imageio import write_image_atomic
from training.config import TrainingError
from training.types.config import TypesConfig
from training.types.export import export_types
from training.types.regions import check_types, dataset_regions, synthetic_regions
from training.types.run import TYPES_RUN_FILE, run_train_types
from training.types.train import choose_min_confidence

FAST = TypesConfig(steps=3, batch_size=4, width=4, crop_px=32)


def write_labelled(root, kind: str, stem: str, rng, *, blobs=((10, 10, 8, 8),), mask: bool = True):
    image = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    write_image_atomic(root / "train" / kind / f"{stem}.png", image)
    if mask:
        m = np.zeros((64, 64), np.uint8)
        for x, y, w, h in blobs:
            m[y : y + h, x : x + w] = 255
        write_image_atomic(root / "ground_truth" / kind / f"{stem}_mask.png", m)


def write_holes_and_slubs(root, rng, count: int):
    """``count`` images of square holes and of long thin slubs under root/train/."""
    for i in range(count):
        write_labelled(root, "hole", f"h{i}", rng)
        write_labelled(root, "slub", f"s{i}", rng, blobs=((5, 30, 40, 3),))
    return root


def test_regions_are_the_mask_components_of_train_images_only(tmp_path, rng):
    root = tmp_path / "data"
    write_labelled(root, "hole", "a", rng, blobs=((5, 5, 6, 6), (40, 40, 10, 4)))
    write_labelled(root, "hole", "b", rng, blobs=((1, 1, 2, 2),))  # 4 px: below min_area_px
    write_labelled(root, "slub", "c", rng)
    write_labelled(root, "defect", "d", rng)  # a failed unit nobody typed: no label to learn
    write_image_atomic(root / "train" / "good" / "g.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    test_image = root / "test" / "stain" / "t.png"  # evaluation only: never read
    write_image_atomic(test_image, rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    write_image_atomic(root / "ground_truth" / "stain" / "t_mask.png", np.full((64, 64), 255, np.uint8))
    regions = dataset_regions(root, min_area_px=6)
    assert sorted((r.type, r.box[2:]) for r in regions) == [("hole", (6, 6)), ("hole", (10, 4)), ("slub", (8, 8))]
    hole = next(r for r in regions if r.box[2:] == (10, 4))
    x, y, w, h = hole.box
    assert hole.mask[y : y + h, x : x + w].min() == 255 and hole.patch.shape[:2] == hole.mask.shape


def test_a_type_name_that_is_not_an_identifier_is_refused_naming_it(tmp_path, rng):
    write_labelled(tmp_path, "broken end", "a", rng)
    with pytest.raises(TrainingError, match=r"'broken end' is not a valid identifier.*broken_end"):
        dataset_regions(tmp_path, min_area_px=1)


def test_the_false_alarm_type_is_reserved_and_is_not_a_defect_type(tmp_path, rng):
    write_labelled(tmp_path, NOT_A_DEFECT, "a", rng)
    with pytest.raises(TrainingError, match=f"'{NOT_A_DEFECT}' is reserved"):
        dataset_regions(tmp_path, min_area_px=1)
    shutil.rmtree(tmp_path / "train")
    write_labelled(tmp_path, "hole", "a", rng)
    regions = dataset_regions(tmp_path, min_area_px=1)
    false_alarm = replace(regions[0], type=NOT_A_DEFECT)
    with pytest.raises(TrainingError, match=r"only one defect type \(hole\)"):
        check_types(regions + [false_alarm])


def test_a_run_made_before_geometry_features_still_exports_a_head_that_reads_crops_alone(tiny_model_dir, tmp_path, rng):
    data = write_holes_and_slubs(tmp_path / "data", rng, 2)
    run = tmp_path / "run"
    run_train_types([data], 0, run, FAST.model_copy(update={"geometry": False}), "qc train-types geometry=false")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    head = export_types(run, model, command="qc export")
    assert head.geometry == []
    classifier = load_type_classifier(model, load_card(model))
    assert [i.name for i in classifier._session.get_inputs()] == ["crops"]
    heat = np.zeros((64, 64), np.float32)
    heat[10:18, 10:18] = 1
    image = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    (labelled,) = classifier.classify(image, heat, [Defect(box=(10, 10, 8, 8), area_px=64, peak_score=1, mean_score=1)], 0.5)
    assert 0.0 < labelled.type_confidence <= 1.0


def test_data_with_one_type_only_is_refused(tmp_path, rng):
    write_labelled(tmp_path, "hole", "a", rng)
    with pytest.raises(TrainingError, match=r"only one defect type \(hole\)"):
        check_types(dataset_regions(tmp_path, min_area_px=1))
    with pytest.raises(TrainingError, match="only one defect type"):
        run_train_types([tmp_path], 0, tmp_path / "run", FAST, "test")


def test_a_feedback_export_with_no_reviewed_types_is_refused(tmp_path, rng):
    # What `qc data export-feedback` writes when operators passed units and failed some without a type.
    write_image_atomic(tmp_path / "train" / "good" / "u1.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    write_labelled(tmp_path, "defect", "u2", rng)
    with pytest.raises(TrainingError, match="no labelled defect regions.*export-feedback"):
        dataset_regions(tmp_path, min_area_px=1)


def test_synthetic_regions_cover_the_generator_types_and_are_reproducible():
    regions = synthetic_regions(1, seed=3, size_px=128, min_area_px=6)
    again = synthetic_regions(1, seed=3, size_px=128, min_area_px=6)
    assert len({r.type for r in regions}) >= 15  # a tiny tile may hide one type's only region
    assert all(np.array_equal(a.patch, b.patch) and a.box == b.box for a, b in zip(regions, again))


def test_synthetic_images_drawn_by_two_processes_are_those_drawn_by_one():
    one = synthetic_regions(1, seed=4, size_px=96, min_area_px=6, panel_share=1.0)
    two = synthetic_regions(1, seed=4, size_px=96, min_area_px=6, panel_share=1.0, workers=2)
    assert len(one) == len(two) and {r.image_size for r in one} >= {(96, 96)}
    assert all(np.array_equal(a.patch, b.patch) and a.box == b.box and a.type == b.type and a.image_size == b.image_size
               for a, b in zip(one, two))


def test_min_confidence_is_the_lowest_threshold_that_keeps_labels_precise():
    confidence = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.55])
    correct = np.array([True, True, True, False, True, False])
    assert choose_min_confidence(confidence, correct, target=1.0, floor=0.5) == pytest.approx(0.71)
    assert choose_min_confidence(confidence, correct, target=0.6, floor=0.5) == 0.5
    assert choose_min_confidence(np.array([0.6]), np.array([False]), target=0.9, floor=0.5) > 0.6  # nothing labelled


def test_a_types_run_exports_into_a_model_folder_beside_the_untouched_detector(tiny_model_dir, tmp_path, rng):
    data = write_holes_and_slubs(tmp_path / "data", rng, 3)
    run = tmp_path / "run"
    result = run_train_types([data], 0, run, FAST, "qc train-types --data data --out run")
    record = json.loads((run / TYPES_RUN_FILE).read_text())
    assert record["types"] == ["hole", "slub"] == result.types and 0.5 <= record["min_confidence"] <= 1.0
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    detector_sha = sha256_file(model / MODEL_FILE)
    head = export_types(run, model, command="qc export run --out model")
    card = load_card(model)
    assert card.type_head == head and card.onnx_sha256 == detector_sha == sha256_file(model / MODEL_FILE)
    assert head.onnx_sha256 == sha256_file(model / TYPES_FILE) and head.max_abs_diff_parity <= 1e-3
    assert head.geometry == list(GEOMETRY) == record["geometry"]  # the graph reads the regions' geometry
    classifier = load_type_classifier(model, card)
    image = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    heat = np.zeros((64, 64), np.float32)
    heat[10:18, 10:18] = 1
    (labelled,) = classifier.classify(image, heat, [Defect(box=(10, 10, 8, 8), area_px=64, peak_score=1, mean_score=1)], 0.5)
    assert labelled.type in ("hole", "slub", "defect") and 0.0 < labelled.type_confidence <= 1.0
    with pytest.raises(TrainingError, match="exists and is not empty"):
        run_train_types([data], 0, run, FAST, "again")


def test_a_types_run_is_not_exported_into_a_folder_without_a_model(tmp_path, rng):
    data = tmp_path / "data"
    for kind in ("hole", "slub"):
        write_labelled(data, kind, "a", rng)
    run_train_types([data], 0, tmp_path / "run", FAST, "test")
    with pytest.raises(TrainingError, match="no model card"):
        export_types(tmp_path / "run", tmp_path / "empty", command="test")


def test_qc_train_types_and_export_from_the_command_line(tiny_model_dir, tmp_path, rng, capsys):
    from qc.cli import EXIT_OK, EXIT_USAGE, main

    assert main(["train-types", "--out", str(tmp_path / "none")]) == EXIT_USAGE
    assert "needs --data ROOT" in capsys.readouterr().err
    data = tmp_path / "data"
    write_labelled(data, "broken-end", "a", rng)
    assert main(["train-types", "--data", str(data), "--out", str(tmp_path / "bad")]) == EXIT_USAGE
    assert "'broken-end' is not a valid identifier" in capsys.readouterr().err
    shutil.rmtree(data)
    for kind in ("hole", "slub"):
        write_labelled(data, kind, "a", rng)
    run, model = tmp_path / "run", tmp_path / "model"
    assert main(["train-types", "--data", str(data), "--out", str(run), "steps=2", "batch_size=2", "width=4"]) == EXIT_OK
    shutil.copytree(tiny_model_dir, model)
    assert main(["export", str(run), "--out", str(model)]) == EXIT_OK
    assert "exported type head (hole, slub)" in capsys.readouterr().out
    assert load_card(model).type_head.training_command.startswith("qc train-types --data")
