from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from qc.self_similarity import image_score
from training.calibrate import calibrate, image_threshold, self_similarity_record, with_odds_margin
from training.config import CalibrationConfig, ExportConfig, NetConfig
from training.net import DefectUNet

from .conftest import striped_fabric


def test_few_images_use_the_max_with_a_margin():
    scores = np.array([0.01, 0.05, 0.2])
    threshold, method = image_threshold(scores, CalibrationConfig(target_false_reject_rate=0.01))
    assert method.startswith("good-max")
    assert threshold > 0.2 and abs(threshold - with_odds_margin(0.2, CalibrationConfig().image_odds_margin)) < 1e-12


def test_many_images_use_the_quantile():
    scores = np.linspace(0.0, 0.5, 1000)
    threshold, method = image_threshold(scores, CalibrationConfig(target_false_reject_rate=0.01))
    assert method.startswith("good-quantile")
    margin = CalibrationConfig().image_odds_margin
    assert with_odds_margin(0.49, margin) < threshold < with_odds_margin(0.5, margin)


def test_the_image_threshold_takes_its_own_margin_and_the_pixel_threshold_keeps_odds_margin():
    scores = np.array([0.01, 0.05, 0.2])
    narrow, wide = CalibrationConfig(image_odds_margin=2.0), CalibrationConfig(image_odds_margin=4.0)
    threshold, method = image_threshold(scores, wide)
    assert abs(threshold - with_odds_margin(0.2, 4.0)) < 1e-12 and "x4 odds" in method
    rng = np.random.default_rng(0)
    images = [striped_fabric(rng, 100, 150), striped_fabric(rng, 40, 50)]
    net = DefectUNet(NetConfig(base_channels=4, channel_multipliers=[1, 2])).eval()
    export = ExportConfig(tile_px=64, overlap_px=16)
    shared, _ = calibrate(net, images, narrow, export, data_description="two images")
    own, _ = calibrate(net, images, wide, export, data_description="two images")
    assert own.pixel == shared.pixel and own.image > shared.image  # odds_margin 2 sets both pixel thresholds
    assert "image: good-max x4 odds" in own.calibration.method and "pixels x2 odds" in own.calibration.method


def test_an_image_margin_below_one_is_refused():
    with pytest.raises(ValidationError, match="image_odds_margin"):
        CalibrationConfig(image_odds_margin=0.5)


def test_odds_margin_never_crosses_one():
    assert 0.99 < with_odds_margin(0.99, 2.0) < 1.0
    assert with_odds_margin(0.3, 1.0) == 0.3 or abs(with_odds_margin(0.3, 1.0) - 0.3) < 1e-12


def test_calibrate_on_images_larger_and_smaller_than_a_tile():
    rng = np.random.default_rng(0)
    images = [striped_fabric(rng, 100, 150), striped_fabric(rng, 40, 50)]
    net = DefectUNet(NetConfig(base_channels=4, channel_multipliers=[1, 2])).eval()
    thresholds, summary = calibrate(
        net, images, CalibrationConfig(), ExportConfig(tile_px=64, overlap_px=16), data_description="two images"
    )
    assert thresholds.pixel >= 0.5
    assert thresholds.image > summary["good_scores"]["max"]
    assert thresholds.calibration.n_images == 2 and thresholds.calibration.target_false_reject_rate == 0.01
    assert summary["held_back_rejected"] == 0.0


def calibrate_a_net_that_scores_everywhere(logit: float):
    """Calibration of a network whose heat is sigmoid(``logit``) on every pixel of two good images."""
    import torch

    rng = np.random.default_rng(1)
    images = [striped_fabric(rng, 80, 90), striped_fabric(rng, 70, 64)]
    net = DefectUNet(NetConfig(base_channels=4, channel_multipliers=[1, 2])).eval()
    with torch.no_grad():
        net.head.bias.fill_(logit)
        net.head.weight.zero_()
    return calibrate(
        net, images, CalibrationConfig(), ExportConfig(tile_px=64, overlap_px=16), data_description="two images"
    )


def test_good_scores_near_one_still_get_a_threshold_above_them():
    """Saturated heat (good strips at 0.993) is calibrated above the good scores, not capped under them."""
    thresholds, summary = calibrate_a_net_that_scores_everywhere(5.0)  # sigmoid ~ 0.9933
    assert 0.9933 < thresholds.image < CalibrationConfig().max_threshold
    assert summary["held_back_rejected"] == 0.0


def test_a_model_that_fires_on_every_good_image_is_reported_not_hidden():
    """Good scores above max_threshold: the capped threshold fails the held-back images themselves,
    which the summary (and so `qc train`'s log) must say."""
    thresholds, summary = calibrate_a_net_that_scores_everywhere(9.0)  # sigmoid ~ 0.9999
    assert thresholds.image == CalibrationConfig().max_threshold
    assert summary["held_back_rejected"] == 1.0


def test_the_self_similarity_cue_is_fitted_with_its_own_margin_or_left_out(rng):
    images = [striped_fabric(rng) for _ in range(5)]
    fitted = self_similarity_record(images, CalibrationConfig(self_similarity_margin=2.0), data_description="5 good")
    wider = self_similarity_record(images, CalibrationConfig(self_similarity_margin=3.0), data_description="5 good")
    assert wider.threshold == pytest.approx(1.5 * fitted.threshold)
    assert fitted.method == "good-max x2 over 5 good images" and fitted.data == "5 good"
    assert self_similarity_record(images, CalibrationConfig(self_similarity=False), data_description="5 good") is None
    with pytest.raises(ValidationError, match="self_similarity_margin"):
        CalibrationConfig(self_similarity_margin=0.9)


def test_the_cue_geometry_follows_the_camera_zoom(rng):
    images = [striped_fabric(rng) for _ in range(4)]
    plain = self_similarity_record(images, CalibrationConfig(), data_description="4 good")
    zoomed = self_similarity_record(images, CalibrationConfig(self_similarity_zoom=2), data_description="4 good")
    assert (plain.scale, plain.patch_px, plain.min_shift_px, plain.max_shift_px, plain.sigma_px) == (2, 13, 4, 20, 2.0)
    assert (zoomed.scale, zoomed.patch_px, zoomed.min_shift_px, zoomed.max_shift_px, zoomed.sigma_px) == (4, 26, 8, 40, 4.0)
    # The threshold is fitted with the geometry the card keeps.
    assert zoomed.threshold == pytest.approx(1.5 * max(image_score(image, zoomed) for image in images))
    with pytest.raises(ValidationError, match="self_similarity_zoom"):
        CalibrationConfig(self_similarity_zoom=5)
