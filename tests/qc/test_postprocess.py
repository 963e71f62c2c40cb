import numpy as np

from qc.postprocess import postprocess, smooth_heatmap


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
