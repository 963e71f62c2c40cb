from __future__ import annotations

import numpy as np
import pytest

from training.anomalies import FILLS, MASK_SHAPES, add_anomaly, add_generator_defect, texture_contrast
from training.config import AnomalyConfig

from .conftest import striped_fabric


def crops(seed: int):
    rng = np.random.default_rng(seed)
    return striped_fabric(rng, 64, 64), striped_fabric(rng, 64, 64)


def test_same_rng_gives_the_same_anomaly():
    image, donor = crops(0)
    a = add_anomaly(np.random.default_rng(5), image, donor, AnomalyConfig())
    b = add_anomaly(np.random.default_rng(5), image, donor, AnomalyConfig())
    c = add_anomaly(np.random.default_rng(6), image, donor, AnomalyConfig())
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("seed", range(25))
def test_mask_covers_exactly_the_changed_pixels(seed):
    image, donor = crops(seed)
    out, mask = add_anomaly(np.random.default_rng(seed), image, donor, AnomalyConfig())
    assert out.shape == image.shape and out.dtype == np.uint8
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    inside = mask > 0
    assert inside.sum() >= AnomalyConfig().min_changed_px
    changed = np.abs(out.astype(int) - image.astype(int)).max(axis=2) > 0
    assert not changed[~inside].any(), "a pixel outside the mask was modified"
    assert changed[inside].mean() > 0.8, "most of the mask must be visibly changed"
    assert np.array_equal(image, crops(seed)[0])


@pytest.mark.parametrize("name", sorted(MASK_SHAPES))
def test_every_mask_shape_draws_something_inside_the_crop(name):
    mask = MASK_SHAPES[name](np.random.default_rng(1), 48, 64)
    assert mask.shape == (48, 64) and 0 < mask.sum() < mask.size


@pytest.mark.parametrize("name", sorted(FILLS))
def test_every_fill_differs_from_the_image(name):
    image, donor = crops(2)
    fill = FILLS[name](np.random.default_rng(1), image, donor)
    assert fill.shape == image.shape
    assert np.abs(fill - image.astype(np.float32)).mean() > 3


def test_subtle_and_obvious_opacities_are_both_drawn():
    image, donor = crops(4)
    strengths = []
    for seed in range(40):
        out, mask = add_anomaly(np.random.default_rng(seed), image, donor, AnomalyConfig())
        if mask.any():
            strengths.append(np.abs(out.astype(int) - image.astype(int))[mask > 0].mean())
    assert min(strengths) < 20 < max(strengths)


def test_grey_images_get_grey_anomalies():
    image, donor = crops(7)
    grey, grey_donor = (np.repeat(x[:, :, :1], 3, axis=2) for x in (image, donor))
    for seed in range(20):
        out, mask = add_anomaly(np.random.default_rng(seed), grey, grey_donor, AnomalyConfig())
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_changes_the_weave_would_hide_are_not_labelled():
    """On a strongly textured crop, a faint stain is no defect; on a flat one the same stain is."""
    weave = np.where((np.indices((64, 64)).sum(axis=0) // 2) % 2 == 0, 70, 190).astype(np.uint8)
    textured = np.repeat(weave[:, :, None], 3, axis=2)
    flat = np.full_like(textured, 128)
    faint = AnomalyConfig(opacity_min=0.15, opacity_max=0.15, min_contrast=0.5)
    kept_textured = kept_flat = 0
    for seed in range(30):
        kept_textured += add_anomaly(np.random.default_rng(seed), textured, textured, faint)[1].any()
        kept_flat += add_anomaly(np.random.default_rng(seed), flat, flat, faint)[1].any()
    assert texture_contrast(textured) > 30 and texture_contrast(flat) == 0
    assert kept_flat >= 15 and kept_textured < kept_flat / 2
    unfiltered = AnomalyConfig(opacity_min=0.15, opacity_max=0.15, min_contrast=0.0)
    kept_unfiltered = sum(add_anomaly(np.random.default_rng(s), textured, textured, unfiltered)[1].any() for s in range(30))
    assert kept_unfiltered > kept_textured


def test_new_shapes_draw_thin_lines_and_small_spots():
    rng = np.random.default_rng(3)
    dots = [MASK_SHAPES["dots"](rng, 128, 128).sum() for _ in range(20)]
    assert max(dots) < 600  # spots, not stains
    curves = [MASK_SHAPES["curve"](rng, 128, 128) for _ in range(20)]
    # a yarn is long and thin: its area is a small multiple of its extent
    for mask in curves:
        ys, xs = np.nonzero(mask)
        extent = max(np.ptp(ys), np.ptp(xs)) + 1
        assert mask.sum() <= 6 * extent


GENERATOR_ONLY = AnomalyConfig(generator_share=1.0, generator_defects=[])  # every type of the generator's


@pytest.mark.parametrize("seed", range(12))
def test_generator_defects_keep_the_same_mask_contract(seed):
    image = striped_fabric(np.random.default_rng(seed), 96, 96)
    out, mask = add_anomaly(np.random.default_rng(seed), image, image, GENERATOR_ONLY)
    assert out.shape == image.shape and out.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    inside = mask > 0
    changed = np.abs(out.astype(int) - image.astype(int)).max(axis=2) > 0
    assert not changed[~inside].any(), "a pixel outside the mask was modified"
    if inside.any():
        # A 3x3 mean of the change decides, with holes closed: a stain's or a crease's shading
        # leaves some unchanged pixels among changed ones inside its mask.
        assert inside.sum() >= GENERATOR_ONLY.min_changed_px and changed[inside].mean() > 0.5


def test_the_generator_share_draws_the_generators_defect_types():
    """share 1: what add_generator_defect draws from the same generator after the share's one draw;
    share 0.5: about half of 40 seeds' anomalies are the generator's."""
    image = striped_fabric(np.random.default_rng(3), 96, 96)
    rng = np.random.default_rng(11)
    rng.random()
    expected = add_generator_defect(rng, image, GENERATOR_ONLY)
    out, mask = add_anomaly(np.random.default_rng(11), image, image, GENERATOR_ONLY)
    assert np.array_equal(out, expected[0]) and np.array_equal(mask, expected[1])
    ordinary = add_anomaly(np.random.default_rng(11), image, image, AnomalyConfig(generator_share=0.0))
    assert not np.array_equal(ordinary[1], mask)
    mixed = AnomalyConfig(generator_share=0.5)
    from_generator = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        rng.random()
        generator_defect = add_generator_defect(rng, image, mixed)[1]
        from_generator += np.array_equal(add_anomaly(np.random.default_rng(seed), image, image, mixed)[1], generator_defect)
    assert 10 < from_generator < 30  # a coin per anomaly, not all or nothing


def test_generator_defects_on_grey_images_stay_grey():
    image = np.repeat(striped_fabric(np.random.default_rng(7), 96, 96)[:, :, :1], 3, axis=2)
    drawn = 0
    for seed in range(20):
        out, mask = add_anomaly(np.random.default_rng(seed), image, image, GENERATOR_ONLY)
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
        drawn += mask.any()
    assert drawn >= 15


def test_generator_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="generator_share"):
        AnomalyConfig(generator_share=1.5)


def test_generator_defects_limit_the_types_drawn(monkeypatch):
    import training.anomalies as anomalies

    drawn_names = []
    real_apply = anomalies.apply_defect

    def recording_apply(name, image, rng):
        drawn_names.append(name)
        return real_apply(name, image, rng)

    monkeypatch.setattr(anomalies, "apply_defect", recording_apply)
    image = striped_fabric(np.random.default_rng(5), 96, 96)
    chosen = AnomalyConfig(generator_share=1.0, generator_defects=["broken_end", "knot"])
    for seed in range(20):
        add_anomaly(np.random.default_rng(seed), image, image, chosen)
    assert set(drawn_names) == {"broken_end", "knot"}
    drawn_names.clear()
    for seed in range(40):
        add_anomaly(np.random.default_rng(seed), image, image, GENERATOR_ONLY)
    assert len(set(drawn_names)) >= 8  # empty: every type of the generator's


def test_an_unknown_generator_defect_type_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown type\(s\) brokn_end; .*broken_end"):
        AnomalyConfig(generator_defects=["broken_end", "brokn_end"])
