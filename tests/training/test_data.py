from __future__ import annotations

import numpy as np
import pytest

from training.config import AnomalyConfig, DataConfig, TrainingError
from training.data import (
    AnomalyBatches,
    dataset_fingerprint,
    find_training_images,
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
