import numpy as np
import pytest

from qc.metrics import auroc, average_precision, pixel_metrics, rates_at_threshold


def _auroc_by_pairs(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auroc_matches_the_pairwise_definition_with_ties(rng):
    for _ in range(5):
        scores = rng.integers(0, 6, 60).astype(float)  # many ties
        labels = rng.integers(0, 2, 60)
        assert auroc(scores, labels) == pytest.approx(_auroc_by_pairs(scores, labels))


def test_perfect_and_inverted_detectors():
    labels = np.array([0, 0, 1, 1])
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert average_precision(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    with pytest.raises(ValueError):
        auroc(np.array([0.1, 0.2]), np.array([1, 1]))


def test_rates_at_threshold():
    rates = rates_at_threshold(np.array([0.1, 0.6, 0.7, 0.2]), np.array([0, 0, 1, 1]), 0.5)
    assert rates["recall"] == 0.5 and rates["false_reject_rate"] == 0.5


def test_pro_weighs_small_regions_like_large_ones():
    mask = np.zeros((50, 50), np.uint8)
    mask[0:20, 0:20] = 255  # large region: 400 px
    mask[40:42, 40:42] = 255  # small region: 4 px
    heat = np.zeros((50, 50), np.float32)
    heat[0:20, 0:20] = 1.0  # only the large region is found
    m = pixel_metrics([heat], [mask])
    assert m["defect_regions"] == 2
    # pixel AUROC is flattered by the big region, PRO is not: half the regions are missed
    assert m["pixel_auroc"] > 0.98
    # PRO is 0.5 until the threshold drops to 0, where the small region ties with every normal
    # pixel; the curve runs straight from (0, 0.5) to (1, 1): mean over [0, 0.3] = 0.575
    assert m["aupro"] == pytest.approx(0.575, abs=1e-6)
    perfect = pixel_metrics([mask.astype(np.float32)], [mask])
    assert perfect["pixel_auroc"] == 1.0 and perfect["aupro"] == pytest.approx(1.0)


def test_pixel_metrics_refuse_masks_without_defects():
    with pytest.raises(ValueError):
        pixel_metrics([np.zeros((4, 4))], [np.zeros((4, 4))])


def test_tiles_are_labelled_by_their_mask_pixels_and_scored_by_their_hottest_pixel():
    from qc.metrics import tile_labels_and_scores

    heat = np.zeros((256, 600), np.float32)
    mask = np.zeros((256, 600), np.uint8)
    mask[10:14, 300:304] = 255  # 16 px in the second tile: defective
    mask[0:3, 520:525] = 255  # 15 px in the third (partial) tile: not enough
    heat[200, 100], heat[5, 301], heat[1, 599] = 0.3, 0.9, 0.6
    labels, scores = tile_labels_and_scores(heat, mask)
    assert labels.tolist() == [False, True, False]
    np.testing.assert_allclose(scores, [0.3, 0.9, 0.6])
