from __future__ import annotations

import numpy as np
import pytest

from training.config import AnomalyConfig, DataConfig, TrainingError
from training.data import (
    AnomalyBatches,
    dataset_fingerprint,
    find_training_images,
    hot_spots,
    load_images,
    split_train_val,
    train_crop,
)

from .conftest import striped_fabric, write_png


def test_mvtec_layout_lists_train_good_only(tiny_dataset):
    paths = find_training_images(tiny_dataset)
    assert len(paths) == 8
    assert all(p.parent == tiny_dataset / "train" / "good" for p in paths)


def test_plain_folder_of_good_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_png(tmp_path / f"img{i}.png", striped_fabric(rng))
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in find_training_images(tmp_path)] == ["img0.png", "img1.png", "img2.png"]


def test_missing_or_empty_data_is_refused_naming_the_folder(tmp_path):
    with pytest.raises(TrainingError, match="nowhere"):
        find_training_images(tmp_path / "nowhere")
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(TrainingError, match="no good training images"):
        find_training_images(tmp_path)
    (tmp_path / "train" / "good").rmdir()
    with pytest.raises(TrainingError, match="good"):
        find_training_images(tmp_path)


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "train" / "good" / "broken.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(TrainingError, match="broken.png"):
        load_images(find_training_images(tmp_path))


def test_split_is_deterministic_disjoint_and_keeps_two_back(tiny_dataset):
    paths = find_training_images(tiny_dataset)
    train, val = split_train_val(paths, val_fraction=0.01, min_val_images=2, seed=1)
    assert len(val) == 2 and len(train) == 6 and not set(train) & set(val)
    assert (train, val) == split_train_val(paths, val_fraction=0.01, min_val_images=2, seed=1)
    assert val != split_train_val(paths, val_fraction=0.5, min_val_images=2, seed=1)[1]
    with pytest.raises(TrainingError, match="at least 3"):
        split_train_val(paths[:2], val_fraction=0.1, min_val_images=2, seed=1)


def test_fingerprint_changes_with_content(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "a.png", striped_fabric(rng))
    before = dataset_fingerprint(tmp_path, [tmp_path / "a.png"])
    assert before == dataset_fingerprint(tmp_path, [tmp_path / "a.png"])
    write_png(tmp_path / "a.png", striped_fabric(rng))
    assert before != dataset_fingerprint(tmp_path, [tmp_path / "a.png"])


def test_crops_of_small_and_strip_shaped_images():
    rng = np.random.default_rng(0)
    strip = striped_fabric(rng, 16, 400)  # thinner than a crop: mirror-padded
    crop = train_crop(rng, strip, crop_px=32)
    assert crop.shape == (32, 32, 3) and crop.flags.c_contiguous


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_batches_follow_the_anomaly_probability(probability):
    rng = np.random.default_rng(0)
    images = [striped_fabric(rng) for _ in range(3)]
    batches = AnomalyBatches(
        images, DataConfig(crop_px=32, anomaly_probability=probability), AnomalyConfig(), np.random.default_rng(0)
    )
    x, y = batches.next_batch(8)
    assert x.shape == (8, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (8, 1, 32, 32) and set(np.unique(y)) <= {0.0, 1.0}
    with_defect = (y.reshape(8, -1).max(axis=1) > 0).sum()
    assert with_defect == (0 if probability == 0 else 8)


def test_blank_padding_is_mostly_drawn_again():
    rng = np.random.default_rng(0)
    half_blank = np.concatenate([np.full((64, 256, 3), 255, np.uint8), striped_fabric(rng, 64, 256)], axis=0)
    half_blank = np.ascontiguousarray(half_blank.transpose(1, 0, 2))  # padding on one side, like a strip end

    def blank_share(redraw: float) -> float:
        data = DataConfig(crop_px=32, anomaly_probability=0.0, redraw_blank=redraw)
        batches = AnomalyBatches([half_blank], data, AnomalyConfig(), np.random.default_rng(1))
        images, _ = batches.next_batch(400)
        return float((images.std(axis=(1, 2, 3)) * 255 < 2).mean())

    assert blank_share(0.0) > 0.3
    assert blank_share(1.0) < blank_share(0.0) / 2



@pytest.mark.parametrize("fill_padding", [False, True])
def test_crops_show_padding_only_without_export_fill_padding(fill_padding):
    """With ``export.fill_padding`` the station's network sees a strip's white end mirrored over by
    cloth (qc.padding), so training's crops are cut from the same; mining's images stay as they are."""
    rng = np.random.default_rng(0)
    strip = striped_fabric(rng, 64, 512)
    strip[:, :200] = 255  # the flat white end of a line-scan strip
    data = DataConfig(crop_px=32, anomaly_probability=0.0, redraw_blank=0.0)
    batches = AnomalyBatches([strip], data, AnomalyConfig(), np.random.default_rng(1), fill_padding=fill_padding)
    images, _ = batches.next_batch(400)
    blank_share = float((images.std(axis=(1, 2, 3)) * 255 < 2).mean())
    assert (blank_share == 0.0) if fill_padding else (blank_share > 0.2)
    assert batches.images[0] is strip and (strip[:, :200] == 255).all()


@pytest.mark.parametrize("crops_per, strip_share", [("image", 1 / 5), ("area", 4 / 5)])
def test_crops_per_image_or_per_pixel(crops_per, strip_share):
    """One 64x1024 strip beside four 64x64 tiles: a fifth of the crops, or four fifths (its pixels).
    The strip is dark and the tiles light, so each crop tells where it came from."""
    rng = np.random.default_rng(0)
    strip = np.full((64, 1024, 3), 40, np.uint8)
    tiles = [np.full((64, 64, 3), 200, np.uint8) for _ in range(4)]
    data = DataConfig(crop_px=32, anomaly_probability=0.0, redraw_blank=0.0, crops_per=crops_per)
    batches = AnomalyBatches([strip, *tiles], data, AnomalyConfig(), np.random.default_rng(2))
    images, _ = batches.next_batch(2000)
    from_strip = float((images.mean(axis=(1, 2, 3)) < 0.5).mean())
    assert abs(from_strip - strip_share) < 0.04

@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_a_share_of_batches_has_large_crops_at_the_same_pixels(share):
    """data.large_crop_share: that share of batches holds large_crop_px crops, a quarter as many at
    twice the side, masks beside them; none without it."""
    rng = np.random.default_rng(0)
    images = [striped_fabric(rng, 100, 300) for _ in range(3)]  # 100 px high: mirror-padded to 128
    data = DataConfig(crop_px=64, large_crop_px=128, large_crop_share=share, anomaly_probability=0.5)
    batches = AnomalyBatches(images, data, AnomalyConfig(), np.random.default_rng(3))
    shapes = []
    for _ in range(200):
        x, y, weak = batches.next_batch_with_weak(16)
        assert y.shape == (x.shape[0], 1, *x.shape[2:]) and weak.shape == (x.shape[0],)
        shapes.append(x.shape)
    assert set(shapes) <= {(16, 3, 64, 64), (4, 3, 128, 128)}
    large = sum(shape[2] == 128 for shape in shapes) / len(shapes)
    assert abs(large - share) < 0.1


def test_large_crops_keep_at_least_one_crop_a_batch():
    data = DataConfig(crop_px=32, large_crop_px=256, large_crop_share=1.0)
    images = [striped_fabric(np.random.default_rng(0), 256, 256)]
    batches = AnomalyBatches(images, data, AnomalyConfig(), np.random.default_rng(0))
    assert batches.batch_shape(4) == (1, 256)


def test_hot_spots_are_the_hottest_separate_peaks():
    heat = np.zeros((64, 256), np.float32)
    heat[10, 20] = 0.9
    heat[11, 21] = 0.8  # same peak: within the spacing
    heat[40, 200] = 0.5
    heat[50, 100] = 0.01  # too faint
    assert hot_spots(heat, count=5, min_heat=0.05) == [(10, 20), (40, 200)]
    assert hot_spots(heat, count=1, min_heat=0.05) == [(10, 20)]


def test_hard_negative_crops_hold_the_spot():
    image = np.zeros((64, 512, 3), np.uint8)
    image[30:34, 400:404] = 255  # the one thing the "network" fired on
    data = DataConfig(crop_px=32, anomaly_probability=0.0, hard_negative_fraction=1.0)
    batches = AnomalyBatches([image], data, AnomalyConfig(), np.random.default_rng(0), hard_spots=[(0, 32, 402)])
    images, masks = batches.next_batch(20)
    assert (images.max(axis=(1, 2, 3)) == 1.0).all() and not masks.any()
    batches.hard_spots = []
    assert (batches.next_batch(20)[0].max(axis=(1, 2, 3)) == 1.0).mean() < 0.5
