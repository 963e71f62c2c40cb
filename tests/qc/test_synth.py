"""Synthetic fabric generator: exact masks, determinism, fabric variety, dataset layout, panels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc.padding import padding_mask
from qc.synth import (
    BLUR_MARGIN_PX,
    DEFECTS,
    FABRIC_DEFECTS,
    FABRICS,
    SEAM_DEFECTS,
    SynthSample,
    apply_defect,
    draw_seam,
    generate_panel,
    generate_sample,
    render_fabric,
    render_panel,
    render_seam,
    write_gallery,
    write_mvtec_dataset,
)
from qc.synth import dataset as dataset_module
from qc.synth.seams import random_seam, to_uint8
from qc.synth.style import fabric_style, photograph_of, styled_seam
from qc.synth.web_edge import add_web_edge
from tests.conftest import AITEX_DEV

REQUIRED_FABRICS = {
    "plain_weave", "twill", "denim", "jersey_knit", "stripes", "checks", "satin", "herringbone", "rib_knit",
    "printed",
}
REQUIRED_FABRIC_DEFECTS = {
    "hole", "stain", "broken_end", "broken_pick", "slub", "knot", "crease", "foreign_fiber", "float",
    "missing_yarn", "colour_band", "needle_mark",
}
REQUIRED_SEAM_DEFECTS = {"skipped_stitch", "broken_stitch", "open_seam", "puckering", "crooked_seam"}
AITEX_GOOD = AITEX_DEV / "NoDefect_images"


def _outside_margin(mask: np.ndarray) -> np.ndarray:
    kernel = np.ones((2 * BLUR_MARGIN_PX + 1,) * 2, np.uint8)
    return cv2.dilate(mask, kernel) == 0


def test_registries_hold_the_required_names():
    assert REQUIRED_FABRICS <= set(FABRICS)
    assert set(FABRIC_DEFECTS) >= REQUIRED_FABRIC_DEFECTS and set(SEAM_DEFECTS) >= REQUIRED_SEAM_DEFECTS
    assert DEFECTS == FABRIC_DEFECTS + SEAM_DEFECTS and len(set(DEFECTS)) == len(DEFECTS)


def _assert_mask_is_exact(defect: str, before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> None:
    """Nothing changed beyond the mask's soft edge; inside it, nearly every pixel changed visibly."""
    assert after.shape == before.shape and after.dtype == np.uint8
    assert mask.shape == before.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    difference = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)
    assert np.array_equal(after[_outside_margin(mask)], before[_outside_margin(mask)]), defect
    inside = difference[mask > 0]
    assert inside.mean() >= 8, f"{defect}: mean change inside the mask {inside.mean():.1f}"
    assert (inside >= 4).mean() >= 0.6, f"{defect}: too many unchanged pixels inside the mask"


def _apply_checked(defect: str, cloth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply `defect` to `cloth` and check its mask against the picture without it.

    A seam defect is drawn on a seam; the reference is then the same cloth with the good seam.
    """
    if defect in SEAM_DEFECTS:
        seam = random_seam(rng, cloth)
        good, seam_mask = draw_seam(cloth, seam)
        before = to_uint8(good)
        after, mask = apply_defect(defect, cloth, rng, seam=seam)
        # The seam itself is cloth, not defect: the mask covers the faulty stretch, not the seam.
        assert np.count_nonzero((seam_mask > 0) & (mask == 0)) > 0.25 * np.count_nonzero(seam_mask)
    else:
        before = cloth
        after, mask = apply_defect(defect, cloth, rng)
    _assert_mask_is_exact(defect, before, after, mask)
    return after, mask


@pytest.mark.parametrize("defect", DEFECTS)
@pytest.mark.parametrize("seed", range(6))
def test_defect_mask_matches_what_was_drawn(defect, seed):
    rng = np.random.default_rng(seed)
    cloth = render_fabric(rng, FABRICS[(seed + DEFECTS.index(defect)) % len(FABRICS)], (128, 160))
    _apply_checked(defect, cloth, rng)


def _real_backgrounds() -> dict[str, np.ndarray]:
    """Backgrounds the generator never drew: noise, a smooth grey ramp, and a real AITEX crop."""
    rng = np.random.default_rng(99)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    ramp = np.linspace(40, 200, 128, dtype=np.float32)[None, :] + np.linspace(0, 30, 128, dtype=np.float32)[:, None]
    backgrounds = {"noise": noise, "grey_ramp": np.repeat(ramp.astype(np.uint8)[..., None], 3, axis=2)}
    strips = sorted(AITEX_GOOD.glob("*/*.png")) if AITEX_GOOD.is_dir() else []
    if strips:
        from qc.imageio import read_image

        strip = read_image(strips[0])
        backgrounds["aitex"] = np.ascontiguousarray(strip[:256, 1000:1256])
    return backgrounds


@pytest.mark.parametrize("background", ["noise", "grey_ramp", "aitex"])
def test_every_defect_on_a_real_image_background(background):
    backgrounds = _real_backgrounds()
    if background not in backgrounds:
        pytest.skip(f"{AITEX_GOOD} is not here")
    cloth = backgrounds[background]
    if background == "aitex":  # greyscale photograph read as RGB
        assert cloth.shape == (256, 256, 3) and np.array_equal(cloth[..., 0], cloth[..., 2])
    for index, defect in enumerate(DEFECTS):
        _apply_checked(defect, cloth.copy(), np.random.default_rng([index, 1]))


def test_seam_is_drawn_but_never_in_the_mask():
    for seed, fabric in enumerate(FABRICS[:4]):
        cloth = render_fabric(np.random.default_rng(seed), fabric, (96, 128))
        sample = generate_sample(np.random.default_rng(seed), size_px=(96, 128), fabric=fabric, defect=None, seam=True)
        assert sample.seam_mask is not None and sample.seam_mask.any() and not sample.mask.any()
        # The seam changes the cloth exactly where its own mask says, and visibly somewhere.
        seam = sample.seam_mask > 0
        assert np.array_equal(sample.image[~seam], cloth[~seam])
        assert np.abs(sample.image.astype(np.int16) - cloth)[seam].max() > 40
    for defect in SEAM_DEFECTS:
        sample = generate_sample(np.random.default_rng(3), size_px=(96, 128), defect=defect, seam=None)
        assert sample.seam_mask is not None and sample.mask.any() and sample.defect_type == defect
        assert np.count_nonzero((sample.seam_mask > 0) & (sample.mask == 0)) > 0.5 * np.count_nonzero(sample.seam_mask)


def test_render_seam_straight_and_curved_lockstitch_and_chain():
    cloth = render_fabric(np.random.default_rng(0), "plain_weave", (96, 96))
    kinds, curved = set(), set()
    for seed in range(12):
        image, seam = render_seam(np.random.default_rng(seed), cloth)
        assert image.shape == cloth.shape and image.dtype == np.uint8
        assert seam.mask is not None and seam.mask.any() and not seam.mask.all()
        kinds.add(seam.kind)
        # Distance of the path from the straight line through its ends: ~0 straight, more if curved.
        ends = seam.path[[0, -1]]
        direction = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
        offsets = (seam.path - ends[0]) @ np.array([-direction[1], direction[0]])
        curved.add(bool(np.abs(offsets).max() > 3))
    assert kinds == {"lockstitch", "chain"} and curved == {True, False}


def test_seam_option_and_default_share():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="seam"):
        generate_sample(rng, defect="open_seam", seam=False)
    no_seam = [generate_sample(rng, size_px=(32, 32), seam=False) for _ in range(30)]
    assert all(s.seam_mask is None and s.defect_type in FABRIC_DEFECTS for s in no_seam)
    share = np.mean([generate_sample(rng, size_px=(32, 32), defect=None).seam_mask is not None for _ in range(80)])
    assert 0.1 < share < 0.5, share
    drawn = [generate_sample(rng, size_px=(32, 32)).defect_type for _ in range(120)]
    assert any(d in SEAM_DEFECTS for d in drawn) and any(d in FABRIC_DEFECTS for d in drawn)


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
    for seam in (True, False):
        sample = generate_sample(rng, size_px=(96, 128), defect="hole", seam=seam)
        assert (sample.seam_mask is not None) == seam and sample.mask.any()


def test_unknown_names_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown fabric"):
        generate_sample(rng, fabric="velvet")
    with pytest.raises(ValueError, match="unknown defect"):
        generate_sample(rng, defect="moth")


@pytest.mark.parametrize(
    "options", [{}, {"defect": "open_seam"}, {"defect": None, "seam": True}, {"fabric": "printed"}]
)
def test_same_seed_same_bytes_different_seed_differs(options):
    first = generate_sample(np.random.default_rng(42), **options)
    again = generate_sample(np.random.default_rng(42), **options)
    other = generate_sample(np.random.default_rng(43), **options)
    assert first.image.tobytes() == again.image.tobytes()
    assert first.mask.tobytes() == again.mask.tobytes()
    assert (first.fabric, first.defect_type) == (again.fabric, again.defect_type)
    assert first.image.tobytes() != other.image.tobytes()


def test_every_fabric_has_texture_and_fabrics_differ():
    grey = {}
    for fabric in FABRICS:
        image = generate_sample(np.random.default_rng(5), fabric=fabric, defect=None, seam=False).image
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



def test_write_mvtec_dataset_of_one_fabric(tmp_path, monkeypatch):
    """A factory onboards one fabric: every tile of every split, defects included, shows that fabric
    alone, and the split's defect types stay the same."""
    drawn = []
    real = dataset_module.generate_sample

    def recording(rng, **kwargs):
        drawn.append(kwargs["fabric"])
        return real(rng, **kwargs)

    monkeypatch.setattr(dataset_module, "generate_sample", recording)
    summary = write_mvtec_dataset(tmp_path, count=3, seed=2, size_px=32, test_count=len(DEFECTS), fabrics=["twill"], train_defects=2)
    assert summary["fabrics"] == ["twill"]
    assert set(drawn) == {"twill"} and len(drawn) == 3 + summary["test"]["good"] + len(DEFECTS) + 2
    assert set(summary["ground_truth"]) == set(DEFECTS)
    assert summary["test"]["good"] == len(DEFECTS) // 2


def test_write_mvtec_dataset_refuses_unknown_or_no_fabrics(tmp_path):
    with pytest.raises(ValueError, match=r"unknown fabric 'tweed'; known: .*twill"):
        write_mvtec_dataset(tmp_path / "a", count=1, seed=0, size_px=32, fabrics=["twill", "tweed"])
    with pytest.raises(ValueError, match="at least one fabric"):
        write_mvtec_dataset(tmp_path / "b", count=1, seed=0, size_px=32, fabrics=[])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before writing


def test_one_style_photographs_are_windows_of_one_cloth_with_one_seam_look():
    style = fabric_style(np.random.default_rng(5), "twill", (64, 64))
    assert style.cloth.shape == (3 * 64, 3 * 64, 3)
    first, second = (photograph_of(style, np.random.default_rng(seed), (64, 64)) for seed in (1, 2))
    assert not np.array_equal(first, second)  # other windows, another camera
    cloth_colour = style.cloth.reshape(-1, 3).mean(axis=0) * 255
    for photo in (first, second):  # the same colourway: near the cloth's own colour
        assert np.abs(photo.reshape(-1, 3).mean(axis=0) - cloth_colour).max() < 25
    seams = [styled_seam(style, np.random.default_rng(seed), first) for seed in (3, 4)]
    for seam in seams:
        assert (seam.kind, seam.stitch_px, seam.gap_px, seam.thread_px) == (
            style.seam.kind, style.seam.stitch_px, style.seam.gap_px, style.seam.thread_px)
        assert np.array_equal(seam.thread, style.seam.thread)
    assert not np.array_equal(seams[0].path, seams[1].path)  # each on a path of its own
    # Without a style two twill tiles draw two colourways.
    a, b = (generate_sample(np.random.default_rng(s), size_px=(64, 64), fabric="twill", defect=None, seam=False) for s in (1, 2))
    assert np.abs(a.image.reshape(-1, 3).mean(axis=0) - b.image.reshape(-1, 3).mean(axis=0)).max() > 25
    styled = generate_sample(np.random.default_rng(6), size_px=(64, 64), defect="open_seam", style=style)
    assert styled.fabric == "twill" and styled.mask.any() and styled.seam_mask is not None
    with pytest.raises(ValueError, match="differs from the style"):
        generate_sample(np.random.default_rng(6), size_px=(64, 64), fabric="denim", style=style)


def test_write_mvtec_dataset_of_one_style(tmp_path):
    summary = write_mvtec_dataset(tmp_path / "a", count=3, seed=2, size_px=32, test_count=4, fabrics=["denim"], one_style=True)
    assert summary["one_style"] is True and summary["fabrics"] == ["denim"]
    write_mvtec_dataset(tmp_path / "b", count=3, seed=2, size_px=32, test_count=4, fabrics=["denim"], one_style=True)
    write_mvtec_dataset(tmp_path / "c", count=3, seed=2, size_px=32, test_count=4, fabrics=["denim"])
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")

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


def test_gallery_is_written_with_every_fabric_and_defect(tmp_path):
    path = write_gallery(tmp_path / "gallery.png", seed=1, tile_px=64)
    sheet = cv2.imread(str(path))
    columns = len(FABRICS)
    tiles = len(FABRICS) + len(DEFECTS) + 3  # fabrics, defects, three good seams
    rows = -(-tiles // columns)
    assert sheet.shape == (rows * (64 + 4) + 4, columns * (64 + 4) + 4, 3)
    # Mask outlines are drawn in pure-ish red on the defect tiles only.
    red = (sheet[..., 2] > 230) & (sheet[..., 1] < 60) & (sheet[..., 0] < 60)
    assert not red[: 64 + 4].any() and red[64 + 4:].sum() > 50
    again = write_gallery(tmp_path / "again.png", seed=1, tile_px=64)
    assert again.read_bytes() == path.read_bytes()


def test_a_panel_draws_the_fabric_defect_type_asked_for():
    for kind in ("hole", "crease", "needle_mark"):
        sample = generate_panel(np.random.default_rng(7), size_px=(240, 320), defect_probability=1.0, defect=kind)
        assert sample.defect_type == kind and sample.mask.any()
    # Not asking keeps what a seed has always drawn (the simulated line's frames do not change).
    plain = generate_panel(np.random.default_rng(7), size_px=(240, 320), defect_probability=1.0)
    again = generate_panel(np.random.default_rng(7), size_px=(240, 320), defect_probability=1.0, defect=None)
    assert plain.image.tobytes() == again.image.tobytes() and plain.defect_type == again.defect_type
    with pytest.raises(ValueError, match="unknown fabric defect 'open_seam'"):
        generate_panel(np.random.default_rng(0), defect="open_seam")  # a seam defect needs a seam


def test_labelled_training_defects_have_masks_and_never_repeat_a_test_image(tmp_path):
    root = tmp_path / "ds"
    summary = write_mvtec_dataset(root, count=2, seed=5, size_px=64, test_count=len(DEFECTS), train_defects=len(DEFECTS))
    assert {k: v for k, v in summary["train"].items() if k != "good"} == dict.fromkeys(DEFECTS, 1)
    test_bytes = {p.read_bytes() for p in (root / "test").glob("*/*.png")}
    for defect in DEFECTS:
        (image_path,) = (root / "train" / defect).glob("*.png")
        mask_path = root / "ground_truth" / defect / f"{image_path.stem}_mask.png"
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        assert image_path.stem.startswith("train_") and mask.shape == (64, 64) and (mask == 255).any()
        assert image_path.read_bytes() not in test_bytes
    # The test split is the same bytes with or without training defects beside it.
    write_mvtec_dataset(tmp_path / "plain", count=2, seed=5, size_px=64, test_count=len(DEFECTS))
    assert _tree_digest(root / "test") == _tree_digest(tmp_path / "plain" / "test")
    with pytest.raises(ValueError, match="train_defects"):
        write_mvtec_dataset(tmp_path / "bad", count=1, seed=0, train_defects=-1)


def test_labelled_training_defects_are_half_line_panels_with_panels(tmp_path):
    summary = write_mvtec_dataset(tmp_path / "ds", count=1, seed=2, size_px=64, test_count=0, panels=1, train_defects=8)
    frames = sorted((tmp_path / "ds" / "train").glob("*/train_panel_*.png"))
    tiles = [p for p in (tmp_path / "ds" / "train").glob("*/train_*.png") if "panel" not in p.name]
    assert len(tiles) == 4 and 1 <= len(frames) <= 4  # a type that finds no room on a frame is skipped
    assert sum(v for k, v in summary["train"].items() if k != "good") == len(tiles) + len(frames)
    for frame in frames:
        assert frame.parent.name in FABRIC_DEFECTS
        assert cv2.imread(str(frame)).shape[:2] == (480, 640)
        assert (tmp_path / "ds" / "ground_truth" / frame.parent.name / f"{frame.stem}_mask.png").is_file()


@pytest.mark.parametrize("seed", range(12))
def test_a_web_edge_changes_one_side_and_leaves_the_far_cloth(seed):
    cloth = render_fabric(np.random.default_rng(seed), FABRICS[seed % len(FABRICS)], (96, 128))
    edged = add_web_edge(np.random.default_rng([seed, 1]), cloth)
    assert edged.shape == cloth.shape and edged.dtype == np.uint8
    changed_columns = np.flatnonzero((edged != cloth).any(axis=(0, 2)))
    assert changed_columns.size, "an edge was drawn"
    quarter = cloth.shape[1] // 4
    # The edge sits on one side; at least a quarter of the width on the other is the cloth untouched.
    touches_left = changed_columns[0] == 0
    far = cloth[:, -quarter:] if touches_left else cloth[:, :quarter]
    assert np.array_equal(far, edged[:, -quarter:] if touches_left else edged[:, :quarter])
    assert changed_columns[0] == 0 or changed_columns[-1] == cloth.shape[1] - 1


def test_a_web_edges_saturated_padding_reads_as_padding():
    saw_padding = False
    for seed in range(30):
        cloth = render_fabric(np.random.default_rng(seed), "twill", (64, 128))
        edged = add_web_edge(np.random.default_rng([seed, 2]), cloth)
        grey = cv2.cvtColor(edged, cv2.COLOR_RGB2GRAY)
        outer = grey[:, 0] if (edged[:, 0] != cloth[:, 0]).any() else grey[:, -1]
        if (outer == 255).all():
            saw_padding = True
            assert padding_mask(edged) is not None, "flat white beyond the cloth reads as padding"
    assert saw_padding


def test_dataset_web_edges_change_a_share_of_good_tiles_only(tmp_path):
    write_mvtec_dataset(tmp_path / "plain", count=20, seed=5, size_px=48, test_count=4)
    summary = write_mvtec_dataset(tmp_path / "edged", count=20, seed=5, size_px=48, test_count=4, web_edges=0.5)
    assert summary["web_edges"] == 0.5

    def differing(split: str) -> int:
        names = sorted(p.name for p in (tmp_path / "plain" / split).glob("*.png"))
        return sum(
            not np.array_equal(cv2.imread(str(tmp_path / "plain" / split / n)), cv2.imread(str(tmp_path / "edged" / split / n)))
            for n in names
        )

    assert 4 <= differing("train/good") <= 16  # about half of 20
    for defect in DEFECTS[:4]:
        assert differing(f"test/{defect}") == 0  # defect tiles keep their bytes
    write_mvtec_dataset(tmp_path / "again", count=20, seed=5, size_px=48, test_count=4, web_edges=0.5)
    assert _tree_digest(tmp_path / "edged") == _tree_digest(tmp_path / "again")
    with pytest.raises(ValueError, match="web_edges"):
        write_mvtec_dataset(tmp_path / "bad", count=1, seed=0, web_edges=1.5)
