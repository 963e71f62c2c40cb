"""The good images trained on widen the image threshold's sample (training/good_evidence.py): each is
scored as the station would score an unseen strip, with the column factors fitted without it."""

from __future__ import annotations

import json

import numpy as np

import pytest

from qc.position import ColumnFactors, apply_position_scale
from training.calibrate import calibrate, with_odds_margin
from training.config import CalibrationConfig, ExportConfig
from training.good_evidence import fit_position, good_evidence, trained_on_scores
from training.station_scoring import station_map

from .conftest import fires_on_bright

EXPORT = ExportConfig(tile_px=64, overlap_px=16)


def strips(n: int, *, lone_band_in: int | None = None) -> list[np.ndarray]:
    """Dim line-scan strips (32 x 800) with a bright band at columns 20-26 in every one (the
    station's), and optionally a bright band at columns 600-606 in one strip only (that strip's)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        strip = rng.integers(40, 60, size=(32, 800, 3)).astype(np.uint8)
        strip[:, 20:26] = 200
        if i == lone_band_in:
            strip[:, 600:606] = 220
        out.append(strip)
    return out


@pytest.mark.parametrize("column_factors", ["heat", "odds"])
def test_a_strip_is_scored_with_factors_fitted_without_it(column_factors):
    net = fires_on_bright().eval()
    trained_on = strips(5, lone_band_in=2)
    config = CalibrationConfig(column_factors=column_factors)
    fit = fit_position(net, trained_on, strips(2), config, EXPORT, source="test strips")
    assert fit is not None and fit.picked == [0, 1, 2, 3, 4] and fit.record["applies_to"] == column_factors
    full_scale = ColumnFactors.from_record(fit.record)
    assert full_scale.applies_to == column_factors and fit.scale_without(2).applies_to == column_factors
    # both bands quieted for the station
    assert full_scale.scale[20:26].max() < 1.0 and full_scale.scale[600:606].max() < 1.0

    scores = trained_on_scores(net, trained_on, EXPORT, fit)
    heat, score = station_map(net, trained_on[2], EXPORT)
    with_full_factors = apply_position_scale(heat, score, full_scale)[1]
    # Its own band, unseen by the factors fitted without it, keeps its heat; the shared band stays quieter
    # than it is without factors.
    unquieted = station_map(net, trained_on[0], EXPORT)[1]
    assert scores[2] > 0.8 > with_full_factors
    assert max(np.delete(scores, 2)) < unquieted - 0.15


def test_a_profile_share_quiets_the_stations_band_and_leaves_one_strips_own_band_to_the_threshold():
    net = fires_on_bright().eval()
    trained_on = strips(5, lone_band_in=2)
    config = CalibrationConfig(column_profile_share=0.5)
    fit = fit_position(net, trained_on, strips(2), config, EXPORT, source="test strips")
    scale = ColumnFactors.from_record(fit.record).scale
    assert scale[20:26].max() < 1.0 and (scale[600:606] == 1.0).all()
    assert (fit.scale_without(0).scale[600:606] == 1.0).all()  # cross-fitting keeps the share
    scores = trained_on_scores(net, trained_on, EXPORT, fit)
    assert scores[2] > 0.8 and max(np.delete(scores, 2)) < 0.8  # the lone band now weighs on the threshold


def test_calibration_sets_the_image_threshold_from_both_samples():
    net = fires_on_bright().eval()
    trained_on, held_back = strips(5, lone_band_in=2), strips(2)
    config = CalibrationConfig()
    fit, scores = good_evidence(net, trained_on, held_back, config, EXPORT, source="test strips")
    assert fit is not None and scores is not None and len(scores) == 5
    scale = ColumnFactors.from_record(fit.record)
    thresholds, summary = calibrate(
        net, held_back, config, EXPORT, data_description="2 strips", position_scale=scale, trained_on_scores=scores
    )
    assert summary["good_scores"]["max"] < 0.5 < summary["trained_on_scores"]["max"]
    assert thresholds.image == min(config.max_threshold, with_odds_margin(float(scores.max()), config.image_odds_margin))
    assert thresholds.calibration.n_images == 7 and "5 trained-on" in thresholds.calibration.method

    held_only = config.model_copy(update={"image_scores_from": "held_back"})
    fit, none = good_evidence(net, trained_on, held_back, held_only, EXPORT, source="test strips")
    assert fit is not None and none is None
    alone, _ = calibrate(net, held_back, held_only, EXPORT, data_description="2 strips", position_scale=scale)
    assert alone.image < thresholds.image and alone.calibration.n_images == 2


def test_images_of_no_fixed_camera_are_scored_without_factors():
    net = fires_on_bright().eval()
    rng = np.random.default_rng(1)
    tiles = [rng.integers(40, 60, size=(64, 64 + 8 * i, 3)).astype(np.uint8) for i in range(3)]
    fit, scores = good_evidence(net, tiles, tiles[:1], CalibrationConfig(), EXPORT, source="tiles")
    assert fit is None
    assert np.allclose(scores, [station_map(net, tile, EXPORT)[1] for tile in tiles])


def test_training_records_the_trained_on_scores(tiny_run):
    record = json.loads((tiny_run / "run.json").read_text())
    calibration = record["calibration"]
    trained = calibration["trained_on_scores"]
    assert trained["n"] >= 1 and 0.0 <= trained["min"] <= trained["max"] <= 1.0
    assert calibration["thresholds"]["calibration"]["n_images"] == trained["n"] + 2  # + the 2 held back
    assert calibration["thresholds"]["image"] >= min(0.99, with_odds_margin(trained["max"], 2.0)) - 1e-9


def test_an_unknown_source_of_image_scores_is_refused_with_the_choices(tmp_path):
    import pytest

    from qc.overrides import ConfigError
    from training.config import load_config

    config = tmp_path / "c.yaml"
    config.write_text("seed: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"calibration.image_scores_from: Input should be 'all_good' or 'held_back'"):
        load_config(config, ["calibration.image_scores_from=everything"])
    assert load_config(config, []).calibration.image_scores_from == "all_good"


class CountingScorer:
    """fires_on_bright as a TileScorer that counts the tiles it is asked to score."""

    def __init__(self) -> None:
        from training.station_scoring import torch_tile_scorer

        self.inner = torch_tile_scorer(fires_on_bright().eval())
        self.tiles = 0

    def __call__(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.tiles += len(tiles)
        return self.inner(tiles)


def tiles_per_strip() -> int:
    from qc.tiling import TileGrid

    return len(TileGrid.for_image(32, 800, EXPORT.tile_px, EXPORT.overlap_px).cut(strips(1)[0]))


def test_each_trained_on_strip_is_inferred_once_for_the_fit_and_the_scores():
    scorer = CountingScorer()
    fit, scores = good_evidence(scorer, strips(5, lone_band_in=2), strips(2), CalibrationConfig(), EXPORT, source="s")
    assert fit is not None and len(scores) == 5
    assert scorer.tiles == 5 * tiles_per_strip()


def test_maps_too_large_to_keep_are_inferred_again_with_the_same_scores(monkeypatch):
    from training import good_evidence as evidence

    kept = CountingScorer()
    _, kept_scores = good_evidence(kept, strips(5, lone_band_in=2), strips(2), CalibrationConfig(), EXPORT, source="s")
    monkeypatch.setattr(evidence, "MAX_KEPT_MAP_BYTES", 32 * 800 * 4)  # one strip's map, not five
    again = CountingScorer()
    _, scores = good_evidence(again, strips(5, lone_band_in=2), strips(2), CalibrationConfig(), EXPORT, source="s")
    assert again.tiles == 2 * kept.tiles
    np.testing.assert_array_equal(scores, kept_scores)


def test_calibration_looks_at_a_bounded_number_of_tiles_evenly_spread():
    from training.good_evidence import MAX_FIT_IMAGES, MAX_FIT_TILES, picked_trained_on

    assert picked_trained_on([19] * 10) == list(range(10))  # ten AITEX strips: every one, as before
    strips = picked_trained_on([19] * 64)
    assert 19 * len(strips) <= MAX_FIT_TILES < 19 * (len(strips) + 1) and strips[0] == 0 and strips[-1] == 63
    photos = picked_trained_on([81] * 27)  # 2048x2048 photographs
    assert 81 * len(photos) <= MAX_FIT_TILES < 81 * (len(photos) + 1) and (photos[0], photos[-1]) == (0, 26)
    assert len(picked_trained_on([1] * 500)) == MAX_FIT_IMAGES
    assert picked_trained_on([5000, 5000]) == [0]  # one image larger than the budget is still looked at
    assert picked_trained_on([]) == []
