import numpy as np
import pytest

from qc.decision import decide, find_defects
from qc.inference import InferenceResult
from qc.render import heatmap_to_rgb, overlay


def _heatmap_with_blobs():
    heat = np.zeros((100, 200), np.float32)
    heat[10:20, 30:60] = 0.9  # 10 x 30 region
    heat[70:72, 150:152] = 0.6  # 4 px speck
    return heat


def test_regions_have_boxes_areas_and_sizes_in_mm():
    defects = find_defects(_heatmap_with_blobs(), 0.5, px_per_mm=2.0)
    assert [d.box for d in defects] == [(30, 10, 30, 10), (150, 70, 2, 2)]
    big = defects[0]
    assert big.area_px == 300 and big.area_mm2 == pytest.approx(75.0)
    assert big.length_mm == pytest.approx(30 / 2.0, rel=0.05)
    assert big.peak_score == pytest.approx(0.9)


def test_min_area_drops_specks():
    assert len(find_defects(_heatmap_with_blobs(), 0.5, min_area_px=5)) == 1


def test_verdict_follows_the_card_threshold(tiny_model_dir):
    from qc.card import load_card

    card = load_card(tiny_model_dir)
    heat = _heatmap_with_blobs()
    failing = decide(InferenceResult(heat, 0.9, 1.0), card, min_area_px=5)
    assert failing.verdict == "fail" and len(failing.defects) == 1  # speck below min area
    card.thresholds.image = 0.95  # recalibrating the card changes the verdict, no re-export
    passing = decide(InferenceResult(heat, 0.9, 1.0), card)
    assert passing.verdict == "pass" and passing.defects == []  # no regions listed on a PASS


def test_a_failed_unit_always_shows_where(tiny_model_dir):
    from qc.card import load_card

    card = load_card(tiny_model_dir)
    heat = np.zeros((50, 50), np.float32)
    heat[20:23, 30:33] = 0.45  # below the pixel threshold 0.5, but the image score fails it
    decision = decide(InferenceResult(heat, 0.6, 1.0), card)
    assert decision.verdict == "fail" and [d.box for d in decision.defects] == [(30, 20, 3, 3)]


def test_overlay_colours_only_suspicious_pixels(rng):
    image = np.full((100, 200, 3), 128, np.uint8)
    heat = _heatmap_with_blobs()
    out = overlay(image, heat, threshold=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[50, 100], image[50, 100])
    assert not np.array_equal(out[15, 45], image[15, 45])
    assert heatmap_to_rgb(heat)[15, 45, 0] > 100  # red end of the colour map
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, heat[:50])


def test_ignored_margin_and_zones_cannot_fail_a_unit(tiny_model_dir):
    from qc.card import load_card
    from qc.decision import VerdictRules

    card = load_card(tiny_model_dir)
    heat = np.zeros((100, 200), np.float32)
    heat[0:6, 50:70] = 1.0  # on the selvage band
    heat[40:50, 100:110] = 1.0  # under a label zone
    result = InferenceResult(heat, 1.0, 1.0)
    assert decide(result, card).verdict == "fail"
    rules = VerdictRules(ignore_margin_px=8, ignore_zones=[(95, 35, 20, 20)])
    decision = decide(result, card, rules=rules)
    assert decision.verdict == "pass" and decision.score == 0.0
    heat[70:80, 150:160] = 1.0  # a real defect elsewhere still fails it
    decision = decide(InferenceResult(heat, 1.0, 1.0), card, rules=rules)
    assert decision.verdict == "fail" and [d.box for d in decision.defects] == [(150, 70, 10, 10)]


def test_stored_colour_heatmap_inverts_to_its_values(rng):
    from qc.render import rgb_to_heatmap

    heat = rng.random((30, 40)).astype(np.float32)
    back = rgb_to_heatmap(heatmap_to_rgb(heat))
    np.testing.assert_allclose(back, np.round(heat * 255) / 255, atol=1 / 255 + 1e-6)


def test_class_thresholds_decide_which_regions_fail_a_unit(tiny_model_dir):
    from qc.card import load_card
    from qc.decision import VerdictRules

    card = load_card(tiny_model_dir)
    heat = np.zeros((60, 60), np.float32)
    heat[10:20, 10:20] = 0.7
    result = InferenceResult(heat, 0.7, 1.0)
    assert decide(result, card).verdict == "fail"
    lenient = VerdictRules(class_thresholds={"defect": 0.8})
    assert decide(result, card, rules=lenient).verdict == "pass"
    strict = VerdictRules(class_thresholds={"defect": 0.6})
    decision = decide(result, card, rules=strict)
    assert decision.verdict == "fail" and len(decision.defects) == 1
