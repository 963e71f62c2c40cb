"""Unit files: what a unit writes at line speed, and where the pictures rendered from it are kept."""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from edge.storage.files import (
    HEATMAP_VALUES_NAME,
    RENDER_TMP_DIR,
    sweep_unit_folders,
    write_unit_files,
)
from qc.imageio import read_image

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
UNIT = "0" * 31 + "1"


@pytest.fixture
def unit(tmp_path):
    rng = np.random.default_rng(3)
    # Fabric-like: smooth enough for JPEG to keep (random pixel noise it would not).
    image = cv2.GaussianBlur(rng.integers(60, 200, (60, 80, 3), dtype=np.uint8), (7, 7), 2)
    heat = np.clip(rng.random((60, 80)) * 0.2, 0, 1).astype(np.float32)
    heat[20:35, 30:50] = np.linspace(0.55, 1.0, 20, dtype=np.float32)  # a defect, graded
    files = write_unit_files(tmp_path, UNIT, AT, original_rgb=image, heatmap=heat)
    return tmp_path, files, image, heat


def test_a_unit_writes_its_image_and_grey_heatmap_values_only(unit):
    data_dir, files, image, heat = unit
    folder = data_dir / files.original.rsplit("/", 1)[0]
    assert sorted(p.name for p in folder.iterdir()) == ["heatmap-values.png", "image.jpg"]
    grey = cv2.imread(str(folder / HEATMAP_VALUES_NAME), cv2.IMREAD_UNCHANGED)
    assert grey.dtype == np.uint8 and grey.ndim == 2  # 8-bit grey, one channel
    assert np.array_equal(grey, np.clip(heat * 255 + 0.5, 0, 255).astype(np.uint8))
    assert np.abs(grey / 255.0 - heat).max() <= 0.5 / 255 + 1e-6  # the full 0..1 range, 8 bits
    assert np.abs(read_image(data_dir / files.original).astype(int) - image).mean() < 3  # JPEG


def test_eager_renders_are_still_accepted_and_a_unit_needs_a_heatmap(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    files = write_unit_files(tmp_path, UNIT, AT, original_rgb=image, heatmap_rgb=image, overlay_rgb=image)
    assert all((tmp_path / rel).is_file() for rel in files.all())
    with pytest.raises(ValueError, match="heatmap"):
        write_unit_files(tmp_path, "2" * 32, AT, original_rgb=image, heatmap_rgb=image)
    with pytest.raises(ValueError, match="does not match"):
        write_unit_files(tmp_path, "3" * 32, AT, original_rgb=image, heatmap=np.zeros((4, 4)))
    assert not (tmp_path / "units" / f"{AT:%Y-%m-%d}" / ("3" * 32)).exists()


def test_startup_sweep_clears_render_temp_files(unit):
    data_dir, files, _, _ = unit
    tmp_dir = data_dir / RENDER_TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / ".overlay.png.k1ll3d.tmp").write_bytes(b"half")
    report = sweep_unit_folders(data_dir, lambda ids: set(ids))
    assert report.temp_files == 1 and report.orphan_units == 0
    assert not list(tmp_dir.iterdir())
    assert (data_dir / files.original).is_file()
