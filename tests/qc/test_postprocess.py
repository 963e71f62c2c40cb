import numpy as np

import pytest

from qc.postprocess import broad_smoothing, postprocess, shown_heatmap, smooth_heatmap


def test_smoothing_fills_a_speckled_defect_and_keeps_the_raw_score():
    image = np.full((64, 96, 3), 120, np.uint8)  # no padding: only the smoothing acts
    heat = np.zeros((64, 96), np.float32)
    heat[30:34, 20:70:2] = 1.0  # a thin defect the network marked every other pixel
    shown, score = postprocess(image, heat, 0.8)
    assert score == 0.8  # the verdict's score is the raw one
    assert shown[31, 41] > 0.1 and shown[31, 41] > heat[31, 41]  # the holes are filled
    assert shown.max() < 1.0 and shown[5, 5] < 1e-3  # spread, but only near the defect
    assert shown.dtype == np.float32 and shown.shape == heat.shape
    assert 0.0 <= shown.min() and shown.max() <= 1.0


def test_smoothing_can_be_turned_off():
    heat = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    assert smooth_heatmap(heat, 0) is heat


def _dot_map() -> np.ndarray:
    heat = np.zeros((96, 160), np.float32)
    heat[46:50, 78:82] = 1.0  # a defect found at one point, as a cut selvage's end dot
    return heat


def test_broad_smoothing_spreads_a_dot_without_lowering_any_pixel():
    heat = _dot_map()
    fine = shown_heatmap(heat.copy())
    both = shown_heatmap(heat.copy(), broad_sigma_px=16)
    assert np.all(both >= fine)  # the larger of the two at every pixel
    assert both.max() == pytest.approx(fine.max())  # the peak (a small defect's region) is kept
    # 30 px along the defect's line the fine map has nothing left; the broad one still ranks it
    # above cloth far from any heat.
    assert fine[48, 110] < 1e-6 < both[48, 110]
    assert both[48, 110] > both[5, 5]


def test_no_broad_smoothing_is_the_fine_map_alone():
    heat = _dot_map()
    np.testing.assert_array_equal(shown_heatmap(heat.copy(), 0.0), np.clip(smooth_heatmap(heat), 0, 1))
    image = np.full((96, 160, 3), 120, np.uint8)
    assert np.array_equal(postprocess(image, heat.copy(), 0.9)[0], postprocess(image, heat.copy(), 0.9, None, 0.0)[0])
    broad, score = postprocess(image, heat.copy(), 0.9, None, 16.0)
    assert score == 0.9 and np.array_equal(broad, shown_heatmap(heat.copy(), 16.0))


@pytest.mark.parametrize("shape", [(64, 64), (37, 91), (256, 1024)])
def test_the_broad_smoothing_on_a_coarse_grid_stays_within_reach_of_the_exact_blur(shape):
    heat = np.random.default_rng(1).random(shape).astype(np.float32) * 0.2
    heat[shape[0] // 2, shape[1] // 3] = 1.0
    broad = broad_smoothing(heat, 16)
    assert broad.shape == shape and broad.dtype == np.float32
    np.testing.assert_allclose(broad, smooth_heatmap(heat, 16), atol=1e-3)
    assert np.array_equal(broad_smoothing(heat, 3), smooth_heatmap(heat, 3))  # fine sigmas are exact
