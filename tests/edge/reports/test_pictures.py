"""A unit's pictures: rendered from its stored files on first request, then served from disk."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from edge.reports.pictures import ensure_rendered
from edge.storage.files import HEATMAP_VALUES_NAME, RENDER_TMP_DIR
from qc.imageio import read_image
from qc.render import heatmap_to_rgb, overlay, rgb_to_heatmap
from tests.edge.storage.test_files import AT, unit  # noqa: F401  (fixture)


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
