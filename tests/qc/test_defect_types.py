"""qc/defect_types.py: the one crop function, and the type head as the station loads and runs it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from qc.card import ModelRefused, TypeHeadRecord, load_card, sha256_file, write_card
from qc.contract import TYPES_FILE, TYPES_GEOMETRY_NAME, TYPES_INPUT_NAME, TYPES_OUTPUT_NAME
from qc.decision import Defect
from qc.defect_types import GEOMETRY, NOT_A_DEFECT, crop_window, load_type_classifier, region_crops, region_geometry


def write_mean_head(
    model_dir, weights: np.ndarray, *, types: list[str], crop_px: int = 32, min_confidence: float = 0.6,
    geometry_weights: np.ndarray | None = None, card_geometry: list[str] | None = None,
):
    """A real ONNX type head: softmax(channel means @ weights [+ geometry @ geometry_weights]);
    recorded on the model's card (its geometry: ``card_geometry``, else GEOMETRY where the graph
    reads it)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("GlobalAveragePool", [TYPES_INPUT_NAME], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["means"], axis=1),
        helper.make_node("MatMul", ["means", "weights"], ["logits" if geometry_weights is None else "crop_logits"]),
        helper.make_node("Softmax", ["logits"], [TYPES_OUTPUT_NAME], axis=1),
    ]
    inputs = [helper.make_tensor_value_info(TYPES_INPUT_NAME, TensorProto.FLOAT, ["N", 4, crop_px, crop_px])]
    initializers = [numpy_helper.from_array(weights.astype(np.float32), "weights")]
    if geometry_weights is not None:
        nodes[3:3] = [
            helper.make_node("MatMul", [TYPES_GEOMETRY_NAME, "geometry_weights"], ["geometry_logits"]),
            helper.make_node("Add", ["crop_logits", "geometry_logits"], ["logits"]),
        ]
        inputs.append(helper.make_tensor_value_info(TYPES_GEOMETRY_NAME, TensorProto.FLOAT, ["N", len(GEOMETRY)]))
        initializers.append(numpy_helper.from_array(geometry_weights.astype(np.float32), "geometry_weights"))
    graph = helper.make_graph(
        nodes,
        "mean_head",
        inputs,
        [helper.make_tensor_value_info(TYPES_OUTPUT_NAME, TensorProto.FLOAT, ["N", weights.shape[1]])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(model_dir / TYPES_FILE))
    card = load_card(model_dir)
    card.type_head = TypeHeadRecord(
        types=types,
        onnx_sha256=sha256_file(model_dir / TYPES_FILE),
        crop_px=crop_px,
        geometry=card_geometry if card_geometry is not None else ([] if geometry_weights is None else list(GEOMETRY)),
        min_confidence=min_confidence,
        data="tests: hand-made weights",
        held_out_accuracy=1.0,
    )
    write_card(card, model_dir)
    return card


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir, target)
    return target


def region(box) -> Defect:
    x, y, w, h = box
    return Defect(box=box, area_px=w * h, peak_score=0.9, mean_score=0.8)


def test_a_window_inside_the_image_is_centred_on_the_box():
    assert crop_window((40, 50, 20, 10), 200, 200) == (34, 39, 32)  # never under MIN_WINDOW_PX
    x0, y0, side = crop_window((100, 100, 40, 20), 400, 400)
    assert side == 60 and (x0, y0) == (90, 80)  # centre (120, 110) stays the window's centre


def test_a_window_at_the_border_is_shifted_inside_and_crops_the_pixels_there(rng):
    image = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    heat = np.zeros((100, 120), np.float32)
    heat[95:100, 115:120] = 1.0  # a region in the bottom-right corner
    crops = region_crops(image, heat, [(115, 95, 5, 5)], 0.5, 32)
    assert crop_window((115, 95, 5, 5), 100, 120) == (88, 68, 32)
    assert crops.shape == (1, 4, 32, 32) and crops.dtype == np.float32
    np.testing.assert_allclose(crops[0, :3], image[68:100, 88:120].transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert crops[0, 3, 27:, 27:].min() == 1.0 and crops[0, 3].sum() == 25


def test_a_window_larger_than_the_image_is_padded_with_the_border_colour_and_no_hint(rng):
    image = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    heat = np.ones((20, 40), np.float32)
    crops = region_crops(image, heat, [(0, 0, 40, 20)], 0.5, 60)  # side 60 > 40 and > 20
    x0, y0, side = crop_window((0, 0, 40, 20), 20, 40)
    assert (x0, y0, side) == (-10, -20, 60)
    colour, hint = crops[0, :3], crops[0, 3]
    np.testing.assert_allclose(colour[:, 20:40, 10:50], image.transpose(2, 0, 1) / 255.0, atol=1e-6)
    np.testing.assert_allclose(colour[:, 0, 10:50], image[0].T / 255.0, atol=1e-6)  # top rows repeat row 0
    np.testing.assert_allclose(colour[:, 59, 0], image[-1, 0] / 255.0, atol=1e-6)  # corner repeats the corner
    assert hint[20:40, 10:50].min() == 1.0 and hint.sum() == 20 * 40


def test_large_windows_are_scaled_down_to_the_crop_side(rng):
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    heat = np.zeros((256, 256), np.float32)
    heat[100:140, 60:200] = 0.9
    crops = region_crops(image, heat, [(60, 100, 140, 40), (0, 0, 3, 3)], 0.8, 48)
    assert crops.shape == (2, 4, 48, 48)
    assert 0.0 <= crops.min() and crops.max() <= 1.0
    assert crops[0, 3].mean() == pytest.approx(140 * 40 / 210**2, abs=0.02)  # area kept by INTER_AREA
    assert region_crops(image, heat, [], 0.8, 48).shape == (0, 4, 48, 48)


def test_mismatched_inputs_are_refused_naming_the_problem(rng):
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="does not match the image"):
        region_crops(image, np.zeros((10, 20), np.float32), [(0, 0, 2, 2)], 0.5, 32)
    with pytest.raises(ValueError, match="uint8"):
        region_crops(image.astype(np.float32), np.zeros((20, 20), np.float32), [(0, 0, 2, 2)], 0.5, 32)


def test_a_confident_region_gets_its_type_and_probability(model_dir, rng):
    weights = np.zeros((4, 2), np.float32)
    weights[3, 0], weights[:3, 1] = 40.0, 4.0  # a crop mostly covered by the hint is a "hole", else a "slub"
    card = write_mean_head(model_dir, weights, types=["hole", "slub"])
    classifier = load_type_classifier(model_dir, card, threads=1)
    assert classifier.types == ("hole", "slub")
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    heat = np.zeros((64, 64), np.float32)
    heat[10:40, 10:40] = 1.0
    big, tiny = region((10, 10, 30, 30)), region((55, 55, 1, 1))
    labelled = classifier.classify(image, heat, [big, tiny], pixel_threshold=0.5)
    assert [d.type for d in labelled] == ["hole", "slub"]
    assert labelled[0].type_confidence > 0.99 and labelled[1].type_confidence > 0.9
    assert labelled[0].box == big.box and big.type == "defect"  # copies; the input is left alone
    assert classifier.classify(image, heat, [], pixel_threshold=0.5) == []


def test_a_low_confidence_region_stays_defect_with_its_confidence_recorded(model_dir, rng):
    card = write_mean_head(model_dir, np.zeros((4, 3), np.float32), types=["hole", "slub", "stain"], min_confidence=0.6)
    classifier = load_type_classifier(model_dir, card)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (labelled,) = classifier.classify(image, np.ones((64, 64), np.float32), [region((5, 5, 8, 8))], 0.5)
    assert labelled.type == "defect"
    assert labelled.type_confidence == pytest.approx(1 / 3, abs=1e-5)


def test_a_card_without_a_type_head_gives_none(tiny_model_dir):
    assert load_type_classifier(tiny_model_dir, load_card(tiny_model_dir)) is None


def test_a_type_head_whose_sha256_does_not_match_its_card_is_refused(model_dir):
    card = write_mean_head(model_dir, np.eye(4, 2, dtype=np.float32), types=["hole", "slub"])
    with open(model_dir / TYPES_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelRefused, match="sha256"):
        load_type_classifier(model_dir, card)
    (model_dir / TYPES_FILE).unlink()
    with pytest.raises(ModelRefused, match="missing"):
        load_type_classifier(model_dir, card)


def test_a_type_head_with_fewer_outputs_than_its_card_has_types_is_refused(model_dir):
    card = write_mean_head(model_dir, np.eye(4, 2, dtype=np.float32), types=["hole", "slub"])
    card.type_head.types = ["hole", "slub", "stain"]
    with pytest.raises(ModelRefused, match="3 types"):
        load_type_classifier(model_dir, card)


def test_region_geometry_gives_the_region_extent_in_the_whole_image_aspect_and_fill():
    heat = np.zeros((200, 100), np.float32)
    heat[:, 40:42] = 1.0  # a yarn missing over the whole height
    heat[50:70, 60:80] = np.eye(20, dtype=np.float32)  # a thin diagonal: its box is mostly empty
    full, diagonal = region_geometry(heat, [(40, 0, 2, 200), (60, 50, 20, 20)], 0.5)
    values = dict(zip(GEOMETRY, full))
    assert values["width_share"] == pytest.approx(0.02) and values["height_share"] == pytest.approx(1.0)
    assert values["log_aspect"] == pytest.approx(np.log(2 / 200)) and values["fill"] == 1.0
    assert values["log_area_share"] == pytest.approx(np.log(400 / 20000) / 10)
    assert dict(zip(GEOMETRY, diagonal))["fill"] == pytest.approx(20 / 400)
    assert dict(zip(GEOMETRY, diagonal))["log_aspect"] == 0.0
    assert region_geometry(heat, [], 0.5).shape == (0, len(GEOMETRY))


def test_a_head_that_reads_geometry_tells_a_yarn_missing_across_the_image_from_a_short_one(model_dir, rng):
    """The crops of a full-height line and a short one look alike (each scaled to its region); the
    height share the card names as geometry tells them apart."""
    geometry_weights = np.zeros((len(GEOMETRY), 2), np.float32)
    geometry_weights[GEOMETRY.index("height_share"), 0] = 40.0  # missing_yarn when it spans the image
    bias = np.zeros((4, 2), np.float32)
    bias[:, 1] = 20.0 / 4  # else broken_end (channel means of about 1 add about 20 / 4 * sum)
    card = write_mean_head(model_dir, bias, types=["missing_yarn", "broken_end"], geometry_weights=geometry_weights)
    classifier = load_type_classifier(model_dir, card, threads=1)
    assert classifier.geometry == GEOMETRY
    image = np.full((200, 100, 3), 255, np.uint8)
    heat = np.zeros((200, 100), np.float32)
    heat[:, 40:42] = heat[20:60, 70:72] = 1.0
    labelled = classifier.classify(image, heat, [region((40, 0, 2, 200)), region((70, 20, 2, 40))], 0.5)
    assert [d.type for d in labelled] == ["missing_yarn", "broken_end"]


def test_a_card_whose_geometry_does_not_match_its_graph_is_refused(model_dir):
    card = write_mean_head(model_dir, np.eye(4, 2, dtype=np.float32), types=["hole", "slub"], card_geometry=list(GEOMETRY))
    with pytest.raises(ModelRefused, match="geometry"):
        load_type_classifier(model_dir, card)  # the card names geometry, the graph takes crops alone
    card = write_mean_head(model_dir, np.eye(4, 2, dtype=np.float32), types=["hole", "slub"],
                           geometry_weights=np.zeros((len(GEOMETRY), 2), np.float32), card_geometry=[])
    with pytest.raises(ModelRefused, match="geometry"):
        load_type_classifier(model_dir, card)  # the graph takes geometry its card does not name
    card = write_mean_head(model_dir, np.eye(4, 2, dtype=np.float32), types=["hole", "slub"],
                           geometry_weights=np.zeros((len(GEOMETRY), 2), np.float32), card_geometry=["curvature"])
    with pytest.raises(ModelRefused, match="curvature"):
        load_type_classifier(model_dir, card)


def test_a_region_the_head_calls_not_a_defect_stays_defect_however_confident(model_dir, rng):
    weights = np.zeros((4, 2), np.float32)
    weights[3, 0] = 40.0  # a crop covered by the hint: the detector's false alarm, learnt as such
    card = write_mean_head(model_dir, weights, types=[NOT_A_DEFECT, "slub"], min_confidence=0.6)
    classifier = load_type_classifier(model_dir, card, threads=1)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (labelled,) = classifier.classify(image, np.ones((64, 64), np.float32), [region((5, 5, 8, 8))], 0.5)
    assert labelled.type == "defect" and labelled.type_confidence > 0.99
