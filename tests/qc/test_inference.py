import json
import shutil
import tracemalloc

import cv2
import numpy as np
import pytest

from qc.card import ModelRefused, load_card, write_card
from qc.inference import Inferencer, resolve_model_dir, to_input_tensor
from qc.postprocess import postprocess, smooth_heatmap
from qc.tiling import TileGrid


def _fabric_with_dark_spot(height, width, spot):
    image = np.full((height, width, 3), 200, np.uint8)
    y, x, r = spot
    image[y - r : y + r, x - r : x + r] = 0
    return image


@pytest.mark.parametrize("shape", [(64, 64), (256, 4096 // 8), (37, 91), (300, 301)])
def test_heatmap_has_the_image_resolution_and_finds_the_spot(tiny_model_dir, shape):
    inferencer = Inferencer(tiny_model_dir, threads=1)
    height, width = shape
    spot = (height // 2, width // 3, 5)
    result = inferencer.infer(_fabric_with_dark_spot(height, width, spot))
    assert result.heatmap.shape == shape and result.heatmap.dtype == np.float32
    # The shown heatmap is smoothed (qc.postprocess): the spot is its hottest place, not a 1.0 disc.
    hottest = np.unravel_index(result.heatmap.argmax(), shape)
    assert abs(hottest[0] - spot[0]) <= 2 and abs(hottest[1] - spot[1]) <= 2
    assert result.heatmap[spot[0], spot[1]] > 0.5
    assert result.heatmap[2, width - 3] == pytest.approx(0.0)
    assert result.score == pytest.approx(1.0)
    assert result.infer_ms > 0


def test_streamed_inference_equals_blending_the_whole_image_at_once(tiny_model_dir, rng):
    """The station blends tiles batch by batch; training.station_scoring cuts the whole image and blends
    all its tiles at once. Thresholds are calibrated on the latter, so both must give one heatmap."""
    inferencer = Inferencer(tiny_model_dir, threads=1, batch_size=3)
    image = rng.integers(0, 256, (150, 410, 3), dtype=np.uint8)
    image[:, :60] = 255  # flat white padding at one end: the post-processing clears it
    image[60:90, 200:240] = 10  # a dark spot across tile seams
    grid = TileGrid.for_image(150, 410, 64, 16)
    heats, scores = inferencer.infer_tiles(grid.cut(image))
    expected, expected_score = postprocess(image, np.clip(grid.blend(heats), 0, 1), float(scores.max()))
    result = inferencer.infer(image)
    assert expected.max() > 0.5  # the comparison sees real heat, not two blank maps
    np.testing.assert_allclose(result.heatmap, expected, atol=1e-6)
    assert result.score == pytest.approx(expected_score, abs=1e-6)


def test_the_scored_map_is_the_shown_map_before_smoothing(tiny_model_dir, rng):
    """Benches that compare image-score rules (bench/bench_image_score.py) read the map the station
    scores: the shown heatmap is that map smoothed, and the score is its hottest 5x5 average."""
    inferencer = Inferencer(tiny_model_dir, threads=1, batch_size=3)
    image = rng.integers(0, 256, (150, 410, 3), dtype=np.uint8)
    image[:, :60] = 255  # padding: cleared in the scored map as in the shown one
    image[60:90, 200:240] = 10
    raw, raw_score = inferencer.scored_map(image)
    result = inferencer.infer(image)
    assert raw.shape == result.heatmap.shape and raw[:, :50].max() == 0.0
    np.testing.assert_allclose(np.clip(smooth_heatmap(raw), 0, 1), result.heatmap, atol=1e-6)
    assert raw_score == pytest.approx(result.score, abs=1e-6)
    assert raw_score == pytest.approx(float(cv2.blur(raw, (5, 5), borderType=cv2.BORDER_REPLICATE).max()), abs=1e-6)
    assert raw.max() > result.heatmap.max()  # smoothing lowers the peaks: the two maps differ


@pytest.mark.parametrize("fill_padding", [False, True])
def test_the_card_says_whether_the_network_sees_the_padding(tiny_model_dir, tmp_path, rng, fill_padding):
    """A card with ``tiling.fill_padding`` has its tiles cut from the image with the padding mirrored
    over by cloth (qc.padding.fill_padding); either way the heatmap over the padding is cleared."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    card = load_card(model_dir)
    write_card(card.model_copy(update={"tiling": card.tiling.model_copy(update={"fill_padding": fill_padding})}), model_dir)
    inferencer = Inferencer(model_dir, threads=1, batch_size=3)
    seen = []
    run_batch = inferencer._infer_batch
    inferencer._infer_batch = lambda tiles: (seen.append(tiles.copy()), run_batch(tiles))[1]
    image = rng.integers(20, 160, (150, 410, 3), dtype=np.uint8)
    image[:, :200] = 255
    image[70:80, 300:310] = 0  # a dark spot in the cloth: the stand-in network's defect
    result = inferencer.infer(image)
    saw_padding = max(int(tiles.max()) for tiles in seen) == 255
    assert saw_padding is not fill_padding
    assert result.heatmap[:, :150].max() == 0.0 and result.heatmap[75, 305] > 0.5


@pytest.mark.parametrize("grey_level", [0, 128])  # 0: all padding, the costliest post-processing
def test_inference_memory_is_a_few_bytes_per_pixel(tiny_model_dir, grey_level):
    """A large upload once cost ~40 bytes per pixel (every tile, every tile map and several
    full-image float copies at once). The heatmap itself is 4 bytes a pixel."""
    inferencer = Inferencer(tiny_model_dir, threads=1)
    image = np.full((1200, 1500, 3), grey_level, np.uint8)
    tracemalloc.start()
    try:
        result = inferencer.infer(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.heatmap.shape == image.shape[:2]
    assert peak / image.shape[0] / image.shape[1] < 12  # bytes per pixel, image not counted


def test_good_image_scores_zero(tiny_model_dir):
    result = Inferencer(tiny_model_dir).infer(np.full((100, 200, 3), 220, np.uint8))
    assert result.score == 0.0 and result.heatmap.max() == 0.0


def test_greyscale_input_is_accepted(tiny_model_dir):
    grey = np.full((80, 80), 20, np.uint8)
    inferencer = Inferencer(tiny_model_dir)
    score = inferencer.infer(grey).score
    assert score > 0.5 and score == inferencer.infer(np.dstack([grey] * 3)).score


def test_preprocessing_is_the_contract():
    tiles = np.zeros((2, 4, 5, 3), np.uint8)
    tiles[1, :, :, 2] = 255
    tensor = to_input_tensor(tiles)
    assert tensor.shape == (2, 3, 4, 5) and tensor.dtype == np.float32
    assert tensor[1, 2].min() == 1.0 and tensor[1, :2].max() == 0.0


def test_a_tampered_model_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "m" / "1"
    shutil.copytree(tiny_model_dir, copy)
    with open(copy / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelRefused, match="sha256"):
        Inferencer(copy)


def test_a_card_with_the_wrong_tile_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "m" / "1"
    shutil.copytree(tiny_model_dir, copy)
    card = json.loads((copy / "model.json").read_text())
    card["input"]["tile_px"] = -3
    (copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelRefused, match="invalid"):
        Inferencer(copy)


def test_missing_model_is_refused(tmp_path):
    with pytest.raises(ModelRefused, match="holds no model"):
        Inferencer(tmp_path)


def test_model_folder_resolves_to_current_or_highest_version(tiny_model_dir, tmp_path):
    root = tmp_path / "fabric"
    for version in ("0.9.0", "0.10.0", "v2-draft"):
        shutil.copytree(tiny_model_dir, root / version)
    assert resolve_model_dir(root).name == "v2-draft"  # text after numbers
    shutil.rmtree(root / "v2-draft")
    assert resolve_model_dir(root).name == "0.10.0"
    (root / "CURRENT").write_text("0.9.0\n")
    assert resolve_model_dir(root).name == "0.9.0"


def test_provider_choice_falls_back_to_cpu_with_a_warning(caplog):
    from qc.inference import choose_providers

    available = ["CPUExecutionProvider"]
    assert choose_providers("auto", available) == ["CPUExecutionProvider"]
    assert choose_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"
    ]
    with caplog.at_level("WARNING"):
        assert choose_providers("tensorrt", available) == ["CPUExecutionProvider"]
    assert "not installed" in caplog.text
    with pytest.raises(ValueError, match="unknown provider"):
        choose_providers("tpu", available)


def test_inferencer_says_which_provider_runs(tiny_model_dir):
    assert Inferencer(tiny_model_dir, provider="auto").provider == "CPUExecutionProvider"


def test_the_card_says_whether_the_shown_map_is_also_smoothed_broadly(tiny_model_dir, tmp_path, rng):
    """A card with ``heatmap.broad_sigma_px`` shows the larger of the fine and the broad smoothing
    (its pixel threshold was calibrated on that map); a card without one, the fine smoothing alone."""
    from qc.card import HeatmapRecord
    from qc.postprocess import shown_heatmap

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    image = _fabric_with_dark_spot(120, 300, (60, 150, 4))
    raw, _ = Inferencer(model_dir, threads=1).scored_map(image)
    fine = Inferencer(model_dir, threads=1).infer(image).heatmap
    assert load_card(model_dir).heatmap is None
    np.testing.assert_allclose(fine, shown_heatmap(raw.copy()), atol=1e-6)
    write_card(load_card(model_dir).model_copy(update={"heatmap": HeatmapRecord(broad_sigma_px=16)}), model_dir)
    broad = Inferencer(model_dir, threads=1).infer(image).heatmap
    np.testing.assert_allclose(broad, shown_heatmap(raw.copy(), 16.0), atol=1e-6)
    assert np.all(broad >= fine - 1e-6) and (broad > fine + 1e-4).any()


def test_a_card_with_a_broad_sigma_of_zero_is_refused(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    data = json.loads((model_dir / "model.json").read_text())
    data["heatmap"] = {"broad_sigma_px": 0}
    (model_dir / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelRefused, match="broad_sigma_px"):
        Inferencer(model_dir, threads=1)


def test_a_card_with_the_self_similarity_cue_fails_a_skipped_stitch_the_network_misses(tiny_model_dir, tmp_path):
    """The dark-spot network sees nothing in a mid-grey stitch line; the card's unrepeated-structure
    cue (qc.self_similarity) finds the skipped stitch, shows it on the heatmap and fails the unit."""
    from qc.card import SelfSimilarityRecord
    from tests.qc.test_self_similarity import GAP_Y, SEAM_X, stitched_cloth

    skipped, unbroken = stitched_cloth(gap=True), stitched_cloth(seed=1)
    alone = Inferencer(tiny_model_dir, threads=1)
    assert alone.infer(skipped).score < 0.1

    model_dir = tmp_path / "with_cue" / "1.0.0"
    shutil.copytree(tiny_model_dir, model_dir)
    card = load_card(model_dir)
    cue = SelfSimilarityRecord(threshold=10.0, method="fixed for the test", data="none")
    write_card(card.model_copy(update={"self_similarity": cue}), model_dir)
    joined = Inferencer(model_dir, threads=1)
    result = joined.infer(skipped)
    assert result.score >= card.thresholds.image
    ys, xs = np.nonzero(result.heatmap >= card.thresholds.image)  # the region a station would report
    assert result.heatmap[GAP_Y, SEAM_X] >= card.thresholds.image
    assert abs(ys.mean() - GAP_Y) <= 6 and abs(xs.mean() - SEAM_X) <= 4 and np.ptp(ys) < 40
    assert joined.infer(unbroken).score < card.thresholds.image
