"""Position-aware normalisation (qc/position.py): columns hot on every good image are quieted, a
defect elsewhere keeps its heat, another camera's width is left alone, and the card checks it."""

import numpy as np
import pytest
from pydantic import ValidationError

from qc.card import PositionRecord
from qc.position import ColumnFactors, apply_position_scale, fit_position_scale, fixed_camera


def good_map(rng, width=400):
    heat = rng.uniform(0.0, 0.05, (40, width)).astype(np.float32)
    heat[:, 100:110] = 0.8  # a machine bed's edge the network fires on in every strip
    return heat


def test_a_column_hot_on_every_good_image_is_quieted_and_a_defect_elsewhere_keeps_its_heat(rng):
    factors = ColumnFactors(np.asarray(fit_position_scale([good_map(rng) for _ in range(5)]), np.float32))
    assert factors.scale.shape == (400,) and factors.scale.max() == 1.0
    assert factors.scale[100:110].max() < 0.15  # about 1.5 x typical / 0.8
    assert (factors.scale[250:] == 1.0).all()  # far from the hot columns nothing changes
    unit = good_map(rng)
    unit[20:25, 300:305] = 0.9  # a defect
    scaled, score = apply_position_scale(unit.copy(), 0.9, factors)
    assert scaled[:, 100:110].max() < 0.12 and scaled[22, 302] == np.float32(0.9)
    assert score == pytest.approx(0.9, abs=0.01)  # now the defect, not the bed, scores the unit


def test_another_width_is_left_as_it_is(rng):
    factors = ColumnFactors(np.asarray(fit_position_scale([good_map(rng)]), np.float32))
    other = good_map(rng, width=300)
    same, score = apply_position_scale(other, 0.8, factors)
    assert same is other and score == 0.8
    assert apply_position_scale(other, 0.8, None)[1] == 0.8


def test_images_of_several_widths_have_no_profile(rng):
    with pytest.raises(ValueError, match="one width"):
        fit_position_scale([good_map(rng), good_map(rng, width=300)])


def test_only_a_fixed_camera_gets_a_profile():
    strips, tiles = [(256, 4096)] * 3, [(256, 256)] * 3
    assert fixed_camera(strips, "auto") and not fixed_camera(tiles, "auto")
    assert fixed_camera(tiles, "always") and not fixed_camera(strips, "never")
    assert not fixed_camera([(256, 4096), (256, 4000)], "always")  # two cameras, or a cropped strip
    assert fixed_camera([(256, 4096), (512, 4096)], "auto")  # strips of another length, the same camera
    assert not fixed_camera([(256, 4096), (2048, 4096)], "auto")  # not a strip: a whole frame
    assert not fixed_camera([], "auto")


def test_the_card_refuses_factors_that_do_not_fit_their_width_or_heat_a_column():
    PositionRecord(width=3, scale=[1.0, 0.5, 0.2], data="3 good strips")
    with pytest.raises(ValidationError, match="2 factors for width 3"):
        PositionRecord(width=3, scale=[1.0, 0.5], data="x")
    with pytest.raises(ValidationError, match="never made hotter"):
        PositionRecord(width=2, scale=[1.0, 1.5], data="x")
    with pytest.raises(ValidationError, match="never made hotter"):
        PositionRecord(width=2, scale=[1.0, 0.0], data="x")


def test_odds_factors_quiet_a_hot_column_alike_and_leave_a_strong_defect_in_a_mildly_hot_one_strong(rng):
    goods = [good_map(rng) for _ in range(5)]
    for g in goods:
        g[:, 300:305] = 0.12  # mild heat where good strips are a little livelier
    heat = ColumnFactors(np.asarray(fit_position_scale(goods), np.float32), "heat")
    odds = ColumnFactors(np.asarray(fit_position_scale(goods, "odds"), np.float32), "odds")
    unit = good_map(rng)
    unit[:, 300:305] = 0.12
    unit[20:25, 300:305] = 0.99  # a defect in the mildly hot column
    by_heat, _ = apply_position_scale(unit.copy(), 0.99, heat)
    by_odds, score = apply_position_scale(unit.copy(), 0.99, odds)
    # The machine bed's column, hot on every good image, is quieted either way.
    assert by_heat[:, 100:110].max() < 0.12 and by_odds[:, 100:110].max() < 0.12
    # The mild column's good heat is quieted alike; the defect in it is halved by heat factors only.
    assert by_odds[0, 302] == pytest.approx(by_heat[0, 302], rel=0.15) and by_odds[0, 302] < 0.1
    assert by_heat[22, 302] < 0.6 and by_odds[22, 302] > 0.95 and score > 0.95
    # Heat 0 and 1 are fixed points of the odds scaling.
    edge = np.zeros((2, 400), np.float32)
    edge[1] = 1.0
    assert apply_position_scale(edge, 1.0, odds)[0].tolist() == [[0.0] * 400, [1.0] * 400]


def test_a_card_from_before_the_choice_scales_the_heat():
    record = PositionRecord(width=2, scale=[1.0, 0.5], data="2 good strips")
    assert record.applies_to == "heat" and ColumnFactors.from_record(record).applies_to == "heat"
    assert ColumnFactors.from_record({"width": 2, "scale": [1.0, 0.5], "data": "x"}).applies_to == "heat"
    assert ColumnFactors.from_record(None) is None
    with pytest.raises(ValidationError, match="applies_to"):
        PositionRecord(width=2, scale=[1.0, 0.5], data="x", applies_to="logits")


def test_a_profile_share_leaves_one_good_images_speck_alone_and_still_quiets_what_most_share(rng):
    goods = [good_map(rng) for _ in range(10)]
    goods[3][10:15, 300:305] = 0.9  # a speck on one good image only
    hottest = np.asarray(fit_position_scale(goods, "odds"), np.float32)
    shared = np.asarray(fit_position_scale(goods, "odds", profile_share=0.5), np.float32)
    assert hottest[300:305].max() < 0.1  # the hottest image alone quiets the speck's column...
    assert (shared[250:] == 1.0).all()  # ...half of them leave it as it is
    assert hottest[100:110].max() < 0.1 and shared[100:110].max() < 0.1  # the bed is hot on all: quieted either way
    # 0 is the hottest image's profile; 1 the coolest image's, still hot where every image is; a share
    # never asks fewer than one image.
    assert fit_position_scale(goods, "odds", profile_share=0.0) == fit_position_scale(goods, "odds")
    assert np.asarray(fit_position_scale(goods, "odds", profile_share=1.0))[100:110].max() < 0.1
    assert fit_position_scale(goods[:1], "odds", profile_share=0.5) == fit_position_scale(goods[:1], "odds")
