import time
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from edge.api.app import ModelInfo, Services, create_app
from edge.config import EdgeConfig
from edge.line.sources import SimulatedSource
from edge.line.sources.config import SimulatedSourceConfig
from edge.reports.pictures import unit_picture
from edge.storage.store import units_table
from qc.inference import Inferencer
from tests.edge.pipeline_helpers import make_pipeline

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.fixture
def client(store):
    services = Services(config=EdgeConfig(), store=store, pipeline=None, model=None)
    with TestClient(create_app(services)) as c:
        yield c


@pytest.fixture
def units(add_unit):
    return [add_unit(T0 + timedelta(seconds=i), seed=i, verdict="fail" if i % 2 else "pass")
            for i in range(5)]


def test_list_newest_first_and_paginate(client, units):
    res = client.get("/api/v1/units", params={"limit": 2})
    assert res.status_code == 200
    body = res.json()
    assert [u["id"] for u in body["items"]] == [units[4].id, units[3].id]
    assert body["next"]
    ids = [u["id"] for u in body["items"]]
    cursor = body["next"]
    while cursor:
        body = client.get("/api/v1/units", params={"limit": 2, "cursor": cursor}).json()
        ids += [u["id"] for u in body["items"]]
        cursor = body["next"]
    assert ids == [u.id for u in reversed(units)]


def test_detail_has_the_unit_record(client, units):
    unit = client.get(f"/api/v1/units/{units[1].id}").json()
    assert unit["id"] == units[1].id and unit["verdict"] == "fail"
    assert unit["station"] == "station-1" and unit["model_version"] == "1.0.0"
    assert datetime.fromisoformat(unit["captured_at"]) == T0 + timedelta(seconds=1)
    assert unit["thresholds"] == {"image": 0.5, "pixel": 0.5}
    assert unit["review"] is None and unit["defects"] == []
    assert unit["links"]["overlay"] == f"/api/v1/units/{units[1].id}/overlay.png"
    assert "original_path" not in unit  # file system paths stay inside the station


def test_unknown_unit_is_404_json(client, units):
    res = client.get("/api/v1/units/nope")
    assert res.status_code == 404
    assert res.json() == {"detail": "unit nope not found"}
    assert client.get("/api/v1/units/nope/overlay.png").status_code == 404


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=ten", "cursor=%%%"])
def test_bad_query_is_422(client, units, query):
    res = client.get(f"/api/v1/units?{query}")
    assert res.status_code == 422
    assert res.json()["detail"]


def test_images_are_served_and_decode(client, units):
    base = f"/api/v1/units/{units[0].id}"
    for name, media in [("overlay.png", "image/png"), ("heatmap.png", "image/png"),
                        ("image.jpg", "image/jpeg")]:
        res = client.get(f"{base}/{name}")
        assert res.status_code == 200 and res.headers["content-type"] == media
        img = cv2.imdecode(np.frombuffer(res.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (48, 64, 3)


def test_missing_or_escaping_files_are_not_served(client, store, units):
    unit_picture(store, units[0].id, "heatmap").unlink()
    res = client.get(f"/api/v1/units/{units[0].id}/heatmap.png")
    assert res.status_code == 404 and "no heatmap file" in res.json()["detail"]
    with store.engine.begin() as conn:
        conn.execute(update(units_table).where(units_table.c.id == units[1].id)
                     .values(overlay_path="../../../../etc/passwd"))
    res = client.get(f"/api/v1/units/{units[1].id}/overlay.png")
    assert res.status_code == 403 and "outside the data directory" in res.json()["detail"]


def test_healthz_without_pipeline_says_what_is_wrong(client, units):
    h = client.get("/healthz").json()
    assert h["status"] == "degraded"
    assert "no model loaded" in h["problems"]
    assert any("no pipeline" in p for p in h["problems"])
    assert h["units"] == 5 and h["frames_dropped"] == 0


def test_healthz_ok_with_a_running_line(store, tiny_model_dir):
    inferencer = Inferencer(tiny_model_dir, threads=1)
    src = SimulatedSource(SimulatedSourceConfig(fps=50, size_px=(96, 128)))
    pipe = make_pipeline(src, inferencer, store, "station.id=s", "station.line=l")
    model = ModelInfo(inferencer.name, inferencer.version, str(tiny_model_dir), {"image": 0.5})
    app = create_app(Services(config=EdgeConfig(), store=store, pipeline=pipe, model=model))
    pipe.start()
    try:
        with TestClient(app) as c:
            deadline = datetime.now() + timedelta(seconds=20)
            while c.get("/healthz").json()["units"] < 2 and datetime.now() < deadline:
                time.sleep(0.05)
            h = c.get("/healthz").json()
    finally:
        pipe.stop()
    assert h["status"] == "ok" and h["problems"] == []
    assert h["model"]["version"] == "1.0.0" and h["source"]["type"] == "simulated"
    assert h["units"] >= 2 and h["source"]["frames_read"] >= 2
    with TestClient(app) as c:
        stopped = c.get("/healthz").json()
    assert stopped["status"] == "degraded"
    assert any("not running" in p for p in stopped["problems"])


def test_live_page_is_served(client):
    res = client.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    assert "/api/v1/units" in res.text and "fetch(" in res.text


def _scrape(c, camera: str | None = "cam-1") -> dict[str, float]:
    """/metrics as {'name{labels}': value}, parsed by the Prometheus text parser.

    ``camera``: only that camera's series of the line (and the station-wide ones), its label
    left out of the keys; None: every series as it is."""
    from prometheus_client.parser import text_string_to_metric_families

    res = c.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(res.text):
        for s in family.samples:
            labels = dict(s.labels)
            if camera is not None and labels.pop("camera", camera) != camera:
                continue
            text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            values[f"{s.name}{{{text}}}" if text else s.name] = s.value
    return values


def _line_app(store, tiny_model_dir, source):
    inferencer = Inferencer(tiny_model_dir, threads=1)
    pipe = make_pipeline(source, inferencer, store, "station.id=s", "station.line=l",
                         "source.expect_size_px=[96, 128]")
    model = ModelInfo(inferencer.name, inferencer.version, str(tiny_model_dir), {"image": 0.5})
    return pipe, create_app(Services(config=EdgeConfig(), store=store, pipeline=pipe, model=model))


def test_metrics_move_while_the_line_runs(store, tiny_model_dir, tmp_path):
    from edge.line.sources import FolderSource
    from edge.line.sources.config import FolderSourceConfig

    folder = tmp_path / "line"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "4.png"), np.zeros((50, 50, 3), np.uint8))  # wrong size
    (folder / "5.png").write_bytes(b"corrupt")
    src = FolderSource(FolderSourceConfig(type="folder", path=folder, fps=50, loop=True,
                                          reconnect_initial_s=0.02, reconnect_max_s=0.05))
    pipe, app = _line_app(store, tiny_model_dir, src)
    with TestClient(app) as c:
        before = _scrape(c)
        assert before["qc_frames_read_total"] == 0 and before["qc_source_up"] == 0
        assert before["qc_units_total{verdict=fail}"] == 0
        assert before["qc_frames_invalid_total{reason=stale}"] == 0
        pipe.start()
        try:
            deadline = time.monotonic() + 20
            while store.count() < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            m = _scrape(c)
            assert m["qc_source_up"] == 1 and m["qc_queue_depth"] >= 0
            assert m["qc_frames_read_total"] >= 8
            units = sum(v for k, v in m.items() if k.startswith("qc_units_total{"))
            assert units >= 8 and set(k for k in m if k.startswith("qc_units_total{")) <= {
                "qc_units_total{verdict=pass}", "qc_units_total{verdict=fail}"}
            assert m["qc_frames_invalid_total{reason=wrong_size}"] >= 1
            assert m["qc_frames_invalid_total{reason=unreadable}"] >= 1
            assert m["qc_inference_seconds_count"] >= units
            assert m["qc_inference_seconds_bucket{le=+Inf}"] == m["qc_inference_seconds_count"]
            assert 0 < m["qc_inference_seconds_sum"] < m["qc_inference_seconds_count"]
            assert m["qc_source_reconnects_total"] == 0 and m["qc_unit_errors_total"] == 0

            folder.rename(tmp_path / "gone")
            deadline = time.monotonic() + 10
            while c.get("/healthz").json()["source"]["reconnects"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            h = c.get("/healthz").json()
            down = _scrape(c)
        finally:
            pipe.stop()
    assert h["status"] == "degraded"
    problem = next(p for p in h["problems"] if p.startswith("camera cam-1: source down since "))
    assert ", reconnecting, attempt " in problem and "line" in problem
    assert h["source"]["type"] == "folder" and h["source"]["up"] is False
    assert h["frames_invalid"]["wrong_size"] >= 1
    assert down["qc_source_up"] == 0 and down["qc_source_reconnects_total"] >= 2
    assert down["qc_frames_read_total"] >= m["qc_frames_read_total"]


def test_each_app_has_its_own_metrics(store, tiny_model_dir):
    apps = [_line_app(store, tiny_model_dir, SimulatedSource(SimulatedSourceConfig(
        fps=50, size_px=(96, 128), max_frames=n)))[::-1] for n in (2, 3)]
    for app, pipe in apps:
        pipe.start()
        assert pipe.wait(timeout_s=20)
    reads = []
    for app, _ in apps:
        with TestClient(app) as c:
            reads.append(_scrape(c)["qc_frames_read_total"])
    assert reads == [2, 3]
    with TestClient(create_app(Services(config=EdgeConfig(), store=store))) as c:
        assert c.get("/metrics").status_code == 200
