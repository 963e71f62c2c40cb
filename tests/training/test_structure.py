from __future__ import annotations

import numpy as np
import pytest

from training.config import DataConfig
from training.structure import StructureSampler, structure_weights

from .conftest import fine_weave, stitched_fabric


def test_a_plain_weave_has_no_structure_and_a_seam_has():
    assert all(structure_weights(fine_weave(seed)) is None for seed in range(5))
    weights = structure_weights(stitched_fabric(0))
    assert weights is not None and weights.shape == (128, 128)
    assert abs(weights.sum() - 1.0) < 1e-4
    assert weights[42:86].sum() > 0.97, "the structure is the stitch line and its rim, not the weave"


def test_a_few_stray_pixels_are_not_structure():
    """A speck on a plain weave is a pixel or two of detail: drawing every structure crop there would
    show the network one spot over and over."""
    image = fine_weave(1, 512, 512)
    image[300:302, 200:202] = 0
    assert structure_weights(image) is None and StructureSampler.of(image) is None


def test_the_sampler_draws_points_on_the_seam_of_a_large_image():
    image = stitched_fabric(2, 300, 1000, row=201)
    sampler = StructureSampler.of(image)
    assert sampler is not None
    rng = np.random.default_rng(0)
    points = np.array([sampler.point(rng) for _ in range(500)])
    assert (np.abs(points[:, 0] - 202) <= 20).mean() > 0.97
    assert points[:, 1].min() < 100 and points[:, 1].max() > 900, "along the whole seam"
    assert (points >= 0).all() and (points[:, 0] < 300).all() and (points[:, 1] < 1000).all()


def test_a_structure_crop_share_outside_zero_to_one_is_refused_by_name():
    with pytest.raises(ValueError, match="structure_crop_share"):
        DataConfig(structure_crop_share=1.5)
