"""Unit files: what a unit writes at line speed, and the pictures rendered from it on request."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.storage.files import (
    HEATMAP_VALUES_NAME,
    RENDER_TMP_DIR,
    ensure_rendered,
    sweep_unit_folders,
    write_unit_files,
)
from qc.imageio import read_image
from qc.render import heatmap_to_rgb, overlay, rgb_to_heatmap

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


def test_colour_heatmap_rendered_on_request_equals_the_eager_one(unit):
    data_dir, files, _, heat = unit
    path = ensure_rendered(data_dir, data_dir / files.heatmap, pixel_threshold=0.5)
    assert path == data_dir / files.heatmap and path.is_file()
    assert np.array_equal(read_image(path), heatmap_to_rgb(heat))  # bit for bit
    # Feedback export inverts the colour picture: it gets the stored values back exactly.
    grey = cv2.imread(str(path.parent / HEATMAP_VALUES_NAME), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(np.round(rgb_to_heatmap(read_image(path)) * 255), grey)
    mtime = path.stat().st_mtime_ns
    assert ensure_rendered(data_dir, path, pixel_threshold=0.5) == path
    assert path.stat().st_mtime_ns == mtime  # rendered once, then served from disk


def test_overlay_rendered_on_request_outlines_the_threshold(unit):
    data_dir, files, image, heat = unit
    path = ensure_rendered(data_dir, data_dir / files.overlay, pixel_threshold=0.5)
    got = read_image(path)
    expected = overlay(image, heat, threshold=0.5)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).mean() < 3  # the JPEG original underneath
    outline = (got[..., 0] > 200) & (got[..., 1] < 60) & (got[..., 2] < 60)
    assert outline[18:38, 28:52].sum() > 20 and not outline[:15].any()  # red box round the defect


def test_concurrent_first_requests_both_get_a_whole_file(unit):
    data_dir, files, _, _ = unit
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(
            ensure_rendered(data_dir, data_dir / files.overlay, pixel_threshold=0.5)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == data_dir / files.overlay for r in results)
    assert read_image(data_dir / files.overlay).shape == (60, 80, 3)
    assert not list((data_dir / RENDER_TMP_DIR).iterdir())


def test_nothing_to_render_from_is_none(unit):
    data_dir, files, _, _ = unit
    folder = data_dir / files.original.rsplit("/", 1)[0]
    (folder / "image.jpg").unlink()
    assert ensure_rendered(data_dir, data_dir / files.overlay, pixel_threshold=0.5) is None
    assert ensure_rendered(data_dir, data_dir / files.original, pixel_threshold=0.5) is None
    (folder / HEATMAP_VALUES_NAME).unlink()
    assert ensure_rendered(data_dir, data_dir / files.heatmap, pixel_threshold=0.5) is None
    assert sorted(p.name for p in folder.iterdir()) == []


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


def test_api_serves_the_rendered_pictures(store, new_unit, api):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    heat = rng.random((48, 64)).astype(np.float32)
    record = store.add(new_unit(AT), original_rgb=image, heatmap=heat)
    res = api.get(f"/api/v1/units/{record.id}/heatmap.png")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    got = cv2.cvtColor(cv2.imdecode(np.frombuffer(res.content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(got, heatmap_to_rgb(heat))
    res = api.get(f"/api/v1/units/{record.id}/overlay.png")
    assert res.status_code == 200 and res.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(store.data_dir / record.overlay_path).is_file()  # kept for the next request
