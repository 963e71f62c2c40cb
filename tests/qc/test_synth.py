"""Synthetic fabric generator: exact masks, determinism, fabric variety, dataset layout, panels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc.synth import (
    BLUR_MARGIN_PX,
    DEFECTS,
    FABRICS,
    SynthSample,
    apply_defect,
    generate_panel,
    generate_sample,
    render_fabric,
    render_panel,
    write_mvtec_dataset,
)

REQUIRED_FABRICS = {"plain_weave", "twill", "denim", "jersey_knit", "stripes", "checks"}
REQUIRED_DEFECTS = {"hole", "stain", "broken_end", "broken_pick", "slub", "knot", "crease"}


def _outside_margin(mask: np.ndarray) -> np.ndarray:
    kernel = np.ones((2 * BLUR_MARGIN_PX + 1,) * 2, np.uint8)
    return cv2.dilate(mask, kernel) == 0


def test_registries_hold_the_required_names():
    assert REQUIRED_FABRICS <= set(FABRICS)
    assert REQUIRED_DEFECTS <= set(DEFECTS)


@pytest.mark.parametrize("defect", DEFECTS)
@pytest.mark.parametrize("seed", range(6))
def test_defect_mask_matches_what_was_drawn(defect, seed):
    rng = np.random.default_rng(seed)
    before = render_fabric(rng, FABRICS[seed % len(FABRICS)], (128, 160))
    after, mask = apply_defect(defect, before, rng)
    assert after.shape == before.shape and after.dtype == np.uint8
    assert mask.shape == before.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    difference = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)
    assert np.array_equal(after[_outside_margin(mask)], before[_outside_margin(mask)])
    inside = difference[mask > 0]
    assert inside.mean() >= 8, f"{defect}: mean change inside the mask {inside.mean():.1f}"
    assert (inside >= 4).mean() >= 0.6, f"{defect}: too many unchanged pixels inside the mask"


def test_sample_shapes_and_masks():
    rng = np.random.default_rng(0)
    good = generate_sample(rng, size_px=(96, 128), defect=None)
    assert isinstance(good, SynthSample)
    assert good.image.shape == (96, 128, 3) and good.image.dtype == np.uint8
    assert good.mask.shape == (96, 128) and good.mask.dtype == np.uint8
    assert not good.mask.any() and good.defect_type is None and good.fabric in FABRICS
    for defect in DEFECTS:
        sample = generate_sample(rng, size_px=(96, 128), defect=defect)
        assert sample.defect_type == defect and sample.mask.any()
    random_defect = generate_sample(rng)
    assert random_defect.defect_type in DEFECTS and random_defect.mask.any()


def test_unknown_names_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown fabric"):
        generate_sample(rng, fabric="velvet")
    with pytest.raises(ValueError, match="unknown defect"):
        generate_sample(rng, defect="moth")


def test_same_seed_same_bytes_different_seed_differs():
    first = generate_sample(np.random.default_rng(42))
    again = generate_sample(np.random.default_rng(42))
    other = generate_sample(np.random.default_rng(43))
    assert first.image.tobytes() == again.image.tobytes()
    assert first.mask.tobytes() == again.mask.tobytes()
    assert (first.fabric, first.defect_type) == (again.fabric, again.defect_type)
    assert first.image.tobytes() != other.image.tobytes()


def test_every_fabric_has_texture_and_fabrics_differ():
    grey = {}
    for fabric in FABRICS:
        image = generate_sample(np.random.default_rng(5), fabric=fabric, defect=None).image
        grey[fabric] = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        # Texture, not flat colour: local detail survives subtracting a blurred copy.
        detail = grey[fabric] - cv2.GaussianBlur(grey[fabric], (0, 0), 4)
        assert detail.std() > 3.0, f"{fabric} is nearly flat"
    names = list(FABRICS)
    for a, name_a in enumerate(names):
        for name_b in names[a + 1:]:
            assert np.abs(grey[name_a] - grey[name_b]).mean() > 5, (name_a, name_b)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*.png"))
    }


def test_write_mvtec_dataset_layout_and_determinism(tmp_path):
    summary = write_mvtec_dataset(tmp_path / "a", count=6, seed=3, size_px=64)
    root = tmp_path / "a"
    assert sorted(p.name for p in (root / "train" / "good").iterdir()) == [f"{i:04d}.png" for i in range(6)]
    assert summary["train"] == {"good": 6}
    assert set(summary["ground_truth"]) == set(DEFECTS)  # default test_count covers every type
    assert summary["test"]["good"] == len(list((root / "test" / "good").glob("*.png"))) >= 1
    for defect in DEFECTS:
        images = sorted((root / "test" / defect).glob("*.png"))
        assert len(images) == summary["test"][defect] >= 1
        for image_path in images:
            mask_path = root / "ground_truth" / defect / f"{image_path.stem}_mask.png"
            image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
            assert image.shape == (64, 64, 3) and mask.shape == (64, 64)
            assert set(np.unique(mask)) == {0, 255}
    for image_path in (root / "train" / "good").iterdir():
        assert cv2.imread(str(image_path)).shape == (64, 64, 3)

    write_mvtec_dataset(tmp_path / "b", count=6, seed=3, size_px=64)
    write_mvtec_dataset(tmp_path / "c", count=6, seed=4, size_px=64)
    assert _tree_digest(root) == _tree_digest(tmp_path / "b")
    assert _tree_digest(root) != _tree_digest(tmp_path / "c")


def test_write_mvtec_dataset_writes_rgb_as_bgr(tmp_path):
    write_mvtec_dataset(tmp_path, count=1, seed=9, size_px=48, test_count=0)
    expected = generate_sample(np.random.default_rng([9, 0, 0]), size_px=(48, 48), fabric=FABRICS[0], defect=None)
    on_disk = cv2.imread(str(tmp_path / "train" / "good" / "0000.png"))[..., ::-1]
    assert np.array_equal(on_disk, expected.image)


def test_write_mvtec_dataset_uses_every_fabric_and_spreads_defects(tmp_path):
    summary = write_mvtec_dataset(tmp_path, count=len(FABRICS), seed=1, size_px=32, test_count=2 * len(DEFECTS))
    assert summary["fabrics"] == list(FABRICS)
    assert all(summary["test"][d] == 2 for d in DEFECTS)


def test_write_mvtec_dataset_refusals(tmp_path):
    with pytest.raises(ValueError, match="count"):
        write_mvtec_dataset(tmp_path / "x", count=0, seed=0)
    write_mvtec_dataset(tmp_path / "y", count=1, seed=0, size_px=32, test_count=1)
    with pytest.raises(FileExistsError):
        write_mvtec_dataset(tmp_path / "y", count=1, seed=0, size_px=32)
    summary = write_mvtec_dataset(tmp_path / "y", count=2, seed=0, size_px=32, test_count=0, overwrite=True)
    assert summary["test"] == {"good": len(FABRICS)}
    assert not (tmp_path / "y" / "ground_truth").exists()


def test_panel_shape_and_defect_inside_the_panel():
    seen_defect = 0
    for seed in range(4):
        sample = generate_panel(np.random.default_rng(seed), size_px=(240, 320), defect_probability=1.0)
        assert sample.image.shape == (240, 320, 3) and sample.image.dtype == np.uint8
        assert sample.mask.shape == (240, 320) and sample.fabric in FABRICS
        if sample.defect_type is None:
            continue
        seen_defect += 1
        assert sample.defect_type in DEFECTS and sample.mask.any()
        # The same rng state renders the same defect-free frame and tells where the panel lies.
        good, panel, fabric = render_panel(np.random.default_rng(seed), (240, 320))
        assert fabric == sample.fabric and panel.any() and not panel.all()
        assert not (sample.mask.astype(bool) & (panel < 255)).any(), "defect mask leaves the panel"
        changed = np.abs(sample.image.astype(np.int16) - good.astype(np.int16)).max(axis=2) > 0
        assert changed[sample.mask > 0].mean() > 0.5
        assert not (changed & _outside_margin(sample.mask)).any()
    assert seen_defect >= 3


def test_panel_without_defects_and_determinism():
    clean = generate_panel(np.random.default_rng(11), defect_probability=0.0)
    assert clean.defect_type is None and not clean.mask.any()
    again = generate_panel(np.random.default_rng(11), defect_probability=0.0)
    assert clean.image.tobytes() == again.image.tobytes()
    with pytest.raises(ValueError):
        generate_panel(np.random.default_rng(0), defect_probability=1.5)


def test_dataset_with_line_panels(tmp_path):
    from qc.synth import write_mvtec_dataset

    summary = write_mvtec_dataset(tmp_path / "ds", count=2, seed=5, panels=3)
    assert summary["panels"]["train_good"] == 3
    train = sorted(p.name for p in (tmp_path / "ds" / "train" / "good").iterdir())
    assert train == ["0000.png", "0001.png", "panel_0000.png", "panel_0001.png", "panel_0002.png"]
    test_panels = sorted((tmp_path / "ds" / "test").glob("*/panel_*.png"))
    assert len(test_panels) == 3
    for path in test_panels:
        if path.parent.name != "good":
            mask = tmp_path / "ds" / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"
            assert mask.exists()
