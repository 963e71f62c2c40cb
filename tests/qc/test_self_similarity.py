import numpy as np
import pytest
from pydantic import ValidationError

from qc.card import SelfSimilarityRecord
from qc.self_similarity import add_unrepeated, as_heat, fitted_threshold, image_score, unrepeated_map

SKIPPED_TOP, SEAM_X = 120, 100
GAP_Y = 124  # the cloth left bare: from the stitch before (108-115) to the one after (132-139)


def stitched_cloth(*, gap: bool = False, seed: int = 0, size: int = 256, contrast: float = 1.0) -> np.ndarray:
    """A fine weave with a vertical stitch line (8-px stitches every 12 px); ``gap``: one stitch skipped."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    cloth = 25 * np.sin(2 * np.pi * x / 6) * np.sin(2 * np.pi * y / 6) + rng.normal(0, 3, (size, size))
    for top in range(0, size, 12):
        if not (gap and top == SKIPPED_TOP):
            cloth[top : top + 8, SEAM_X - 2 : SEAM_X + 2] = -60
    grey = np.clip(150 + contrast * cloth, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def record(threshold: float = 1.0, **fields) -> SelfSimilarityRecord:
    return SelfSimilarityRecord(threshold=threshold, method="test", data="test", **fields)


@pytest.mark.parametrize("scale", [1, 2])
def test_a_skipped_stitch_scores_far_above_the_unbroken_seam(scale):
    good = [image_score(stitched_cloth(seed=s), record(scale=scale)) for s in range(3)]
    skipped = [image_score(stitched_cloth(gap=True, seed=s), record(scale=scale)) for s in range(3)]
    # The seam and the weave repeat, so good cloth sits near the image's typical spot (1).
    assert max(good) < 5
    assert min(skipped) > 10 * max(good)


def test_the_map_peaks_at_the_gap():
    rec = record()
    reduced = unrepeated_map(stitched_cloth(gap=True), rec)
    assert reduced.shape == (128, 128)  # half size
    inner = reduced[10:-10, 10:-10]  # the border of the longest shift (20 px, 10 reduced)
    y, x = np.unravel_index(inner.argmax(), inner.shape)
    assert abs((y + 10) * 2 - GAP_Y) <= 6 and abs((x + 10) * 2 - SEAM_X) <= 4


def test_the_score_does_not_depend_on_the_fabric_contrast():
    """Divided by its own median: a low-contrast fabric's skipped stitch counts as much as a bold one's."""
    bold = image_score(stitched_cloth(gap=True), record())
    faint = image_score(stitched_cloth(gap=True, contrast=0.5), record())
    assert faint == pytest.approx(bold, rel=0.25)


def beside_a_belt(cloth: np.ndarray, belt_px: int, noise: float) -> np.ndarray:
    """The cloth with a plain dark belt (``belt_px`` wide, sensor ``noise`` in grey levels) to its right."""
    rng = np.random.default_rng(1)
    belt = np.clip(40 + rng.normal(0, noise, (cloth.shape[0], belt_px)), 0, 255).astype(np.uint8)
    return np.concatenate([cloth, np.repeat(belt[..., None], 3, axis=2)], axis=1)


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_a_plain_belt_filling_most_of_the_frame_changes_nothing(noise):
    """The median is the cloth's: a frame three-quarters belt scores as the cloth alone does (over all
    spots the median was the belt's, near zero, and good cloth scored in the thousands)."""
    for gap in (False, True):
        alone = image_score(stitched_cloth(gap=gap), record())
        framed = image_score(beside_a_belt(stitched_cloth(gap=gap), 768, noise), record())
        assert framed == pytest.approx(alone, rel=0.3)
    good = image_score(beside_a_belt(stitched_cloth(), 768, noise), record())
    skipped = image_score(beside_a_belt(stitched_cloth(gap=True), 768, noise), record())
    assert skipped > 10 * good


@pytest.mark.parametrize("shape", [(5, 7), (30, 30), (256, 4096 // 8)])
def test_any_image_size_gets_a_finite_score(shape):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert np.isfinite(image_score(image, record()))


def test_a_blank_image_scores_zero():
    assert image_score(np.full((64, 64, 3), 128, np.uint8), record()) == 0.0


def test_heat_lands_on_the_image_threshold_at_the_cue_threshold():
    t = 0.97
    assert as_heat(1.0, t) == pytest.approx(t)
    assert as_heat(0.5, t) == pytest.approx(t * 0.5**4)
    assert as_heat(2.0, t) == pytest.approx(1.0) and as_heat(50.0, t) == pytest.approx(1.0)
    ratios = np.linspace(0, 3, 61)
    assert np.all(np.diff(as_heat(ratios, t)) >= 0)


def test_joined_map_fails_a_unit_exactly_when_the_cue_reaches_its_threshold():
    image = stitched_cloth(gap=True)
    score = image_score(image, record())
    image_threshold = 0.9
    for cue_threshold, fails in ((score * 0.99, True), (score * 1.01, False)):
        heatmap = np.zeros(image.shape[:2], np.float32)
        joined, joined_score = add_unrepeated(image, heatmap, 0.1, record(cue_threshold), image_threshold)
        assert (joined_score >= image_threshold) is fails
        assert joined is heatmap and joined.shape == image.shape[:2]
        y, x = np.unravel_index(joined.argmax(), joined.shape)
        assert abs(y - GAP_Y) <= 8 and abs(x - SEAM_X) <= 6
    # The network's own heat and score are never lowered.
    hot = np.full(image.shape[:2], 0.95, np.float32)
    assert add_unrepeated(image, hot, 0.95, record(score * 10), image_threshold)[1] == pytest.approx(0.95)
    assert hot.min() == pytest.approx(0.95)


def test_threshold_is_the_largest_good_score_times_the_margin_or_a_quantile_of_many():
    assert fitted_threshold([2.0, 3.0, 2.5], 1.5, 0.01) == (4.5, "good-max x1.5 over 3 good images")
    many = list(np.linspace(1.0, 2.0, 200)) + [50.0]  # one outlier among 201 does not set it
    threshold, method = fitted_threshold(many, 1.5, 0.01)
    assert threshold < 4.0 and method.startswith("good-quantile")
    with pytest.raises(ValueError, match="at least one good image.s score"):
        fitted_threshold([], 1.5, 0.01)


def test_record_refuses_shifts_out_of_order_and_a_non_positive_threshold():
    with pytest.raises(ValidationError, match="min_shift_px 20 must be below max_shift_px 20"):
        record(min_shift_px=20, max_shift_px=20)
    with pytest.raises(ValidationError, match="threshold"):
        record(threshold=0.0)
