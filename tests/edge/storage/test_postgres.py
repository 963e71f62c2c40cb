"""The store on a real PostgreSQL server (started by the tests with initdb/pg_ctl): everything the
station does, two stations on one database, and the server going away mid-run."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from edge.api.app import Services, create_app
from edge.config import EdgeConfig
from edge.line.sources import Frame, SimulatedSource
from edge.line.sources.config import SimulatedSourceConfig
from edge.reports.pictures import unit_picture
from edge.storage.lots import NewLot
from edge.storage.store import UnitStore
from edge.storage.tables import units_table
from qc.inference import Inferencer
from tests.edge.conftest import T0, _new_unit
from tests.edge.pipeline_helpers import make_pipeline
from tests.edge.postgres_server import pg_url, postgres  # noqa: F401  (fixtures)

IMAGE = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
HOLE = {"type": "hole", "box": [1, 2, 3, 4], "area_px": 12, "area_mm2": None, "length_mm": None,
        "peak_score": 0.9, "mean_score": 0.7}


def add(store: UnitStore, at: datetime, **kw):
    return store.add(_new_unit(at, **kw), original_rgb=IMAGE, heatmap_rgb=IMAGE, overlay_rgb=IMAGE)


def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def pg_store(pg_url, tmp_path):
    store = UnitStore(pg_url, tmp_path / "data", spool_retry_s=0.1)
    yield store
    store.close()


def test_the_station_runs_on_postgresql(pg_store):
    store = pg_store
    assert store.engine.dialect.name == "postgresql"
    client = TestClient(create_app(Services(config=EdgeConfig(), store=store)))
    operator = {"Authorization": f"Bearer {store.keys.create('op', 'operator')}"}
    lot = client.post("/api/v1/lots", headers=operator, json={
        "po": "PO-7", "style": "tee", "lot_size": 50, "colour": "navy", "size": "M"}).json()
    units = [add(store, T0 + timedelta(seconds=i), verdict="fail" if i % 3 == 0 else "pass",
                 score=0.9 if i % 3 == 0 else 0.1, defects=[HOLE] if i % 3 == 0 else [])
             for i in range(7)]
    got = store.get(units[0].id)
    assert got == units[0] and got.captured_at == T0 and got.defects == [HOLE]
    assert (got.lot, got.style, got.po, got.colour) == (str(lot["id"]), "tee", "PO-7", "navy")

    page = client.get("/api/v1/units", params={"limit": 3}).json()
    seen = [u["id"] for u in page["items"]]
    while page["next"]:
        page = client.get("/api/v1/units", params={"limit": 3, "cursor": page["next"]}).json()
        seen += [u["id"] for u in page["items"]]
    assert seen == [u.id for u in reversed(units)]
    fails = client.get("/api/v1/units", params={"verdict": "fail", "defect_type": "hole"}).json()
    assert {u["id"] for u in fails["items"]} == {units[0].id, units[3].id, units[6].id}
    window = client.get("/api/v1/units", params={
        "from": (T0 + timedelta(seconds=2)).isoformat(), "to": (T0 + timedelta(seconds=4)).isoformat(),
        "min_score": 0.05, "station": "station-1", "lot": str(lot["id"])}).json()
    assert [u["id"] for u in window["items"]] == [units[3].id, units[2].id]

    reviewed = client.post(f"/api/v1/units/{units[3].id}/review", headers=operator,
                           json={"verdict": "pass", "note": "lint"})
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["final_verdict"] == "pass"
    history = client.get(f"/api/v1/units/{units[3].id}/reviews").json()
    assert [r["verdict"] for r in history["reviews"]] == ["pass"]

    summary = client.get("/api/v1/summary").json()
    assert summary["units"] == 7 and summary["passed"] == 5
    assert summary["pareto"][0]["type"] == "hole" and summary["pareto"][0]["count"] == 2
    report = client.get(f"/api/v1/lots/{lot['id']}/report")
    assert report.status_code == 200, report.text
    csv = client.get("/api/v1/units.csv").text
    assert csv.count("\n") == 8  # header + 7
    closed = client.post(f"/api/v1/lots/{lot['id']}/close", headers=operator).json()
    assert closed["closed_at"] is not None
    assert client.get(f"/api/v1/units/{units[1].id}/image.jpg").status_code == 200
    assert store.keys.verify("not-a-token") is None


def test_two_stations_write_one_database(pg_url, tmp_path):
    a = UnitStore(pg_url, tmp_path / "a")
    b = UnitStore(pg_url, tmp_path / "b")  # its start finds the schema made and migrates nothing
    a.lots.open(NewLot(station="st-a", po="PO-A", style="tee", lot_size=10, opened_by="op"))
    b.lots.open(NewLot(station="st-b", po="PO-B", style="polo", lot_size=10, opened_by="op"))
    written: dict[str, list[str]] = {"a": [], "b": []}

    def run(store, name):
        for i in range(15):
            written[name].append(add(store, T0 + timedelta(milliseconds=i), station=f"st-{name}").id)

    threads = [threading.Thread(target=run, args=(s, n)) for s, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert a.count() == b.count() == 30
    for store, name, po in ((a, "a", "PO-A"), (b, "b", "PO-B")):
        rows = [store.get(i) for i in written[name]]
        assert {(r.station, r.po) for r in rows} == {(f"st-{name}", po)}
    a.close()
    b.close()


def test_a_read_that_finds_the_server_gone_answers_503(postgres, pg_store):  # noqa: F811
    add(pg_store, T0)
    client = TestClient(create_app(Services(config=EdgeConfig(), store=pg_store)))
    postgres.stop()
    try:
        response = client.get("/api/v1/units")
        assert response.status_code == 503
        assert "database is unreachable" in response.json()["detail"]
        body = client.get("/healthz").json()
        assert body["units"] is None
        assert any(p.startswith("database unreachable since") for p in body["problems"])
    finally:
        postgres.start()
    wait_for(lambda: pg_store.storage_status()["up"], what="the database to count as back")
    assert client.get("/api/v1/units").status_code == 200


def test_a_station_started_while_the_server_is_down_spools_then_migrates_and_replays(
    postgres, pg_url, tmp_path  # noqa: F811
):
    postgres.stop()
    try:
        store = UnitStore(pg_url, tmp_path / "data", spool_retry_s=0.1)  # no exception
        assert not store.schema_ready and not store.storage_status()["up"]
        units = [add(store, T0 + timedelta(seconds=i)) for i in range(3)]
        assert store.spool.pending == 3
        assert store.sweep_after_crash().total == 0  # deletes nothing it cannot check
    finally:
        postgres.start()
    wait_for(lambda: store.spool.pending == 0, what="the migration and the replay")
    assert store.schema_ready and store.storage_status()["up"]
    assert [r.id for r in store.iter_units()] == [u.id for u in reversed(units)]
    store.close()


@pytest.fixture(scope="module")
def inferencer(tiny_model_dir):
    return Inferencer(tiny_model_dir, threads=1)


def test_the_server_stops_mid_run_and_no_unit_is_lost_or_doubled(
    postgres, pg_store, inferencer  # noqa: F811
):
    store = pg_store
    source = SimulatedSource(SimulatedSourceConfig(fps=25, size_px=(64, 96), max_frames=None))
    pipeline = make_pipeline(source, inferencer, store, "station.id=station-1", "station.line=line-1")
    decided = lambda: sum(pipeline.snapshot()["units_by_verdict"].values())  # noqa: E731
    pipeline.start()
    try:
        wait_for(lambda: store.count() >= 5, what="units before the stop")
        postgres.stop("fast")  # ends the station's open connections too
        try:
            wait_for(lambda: store.spool.pending >= 10, what="units spooled while it is down")
            assert not store.storage_status()["up"]
            before = decided()
            wait_for(lambda: decided() >= before + 3, what="the line going on")
        finally:
            postgres.start()
        wait_for(lambda: store.spool.pending == 0, what="the replay")
        after = decided()
        wait_for(lambda: decided() >= after + 5, what="units inserted after the replay")
    finally:
        assert pipeline.stop(timeout_s=30)
    wait_for(lambda: store.spool.pending == 0, what="the last spooled units")
    snapshot = pipeline.snapshot()
    assert snapshot["errors"] == 0, snapshot["last_error"]
    total = sum(snapshot["units_by_verdict"].values())
    with store.engine.connect() as conn:
        ids = list(conn.execute(select(units_table.c.id)).scalars())
        rows = conn.execute(select(func.count()).select_from(units_table)).scalar()
    assert rows == total == len(set(ids))
    assert store.storage_status()["replayed"] >= 10
    for unit_id in ids:
        assert unit_picture(store, unit_id, "image") is not None
    assert store.sweep_after_crash().total == 0


def test_a_unit_postgresql_refuses_is_kept_with_its_files_and_counted(pg_store, inferencer):
    """A unit_ref with a NUL (psycopg's DataError) or a lone surrogate (UnicodeEncodeError, not
    even a database error) reached by a path that is not the REST API, e.g. an MQTT trigger."""
    store = pg_store
    source = SimulatedSource(SimulatedSourceConfig(size_px=(64, 96)))
    pipeline = make_pipeline(source, inferencer, store, "station.id=station-1", "station.line=line-1")
    image = np.full((64, 96, 3), 200, np.uint8)
    image[20:40, 30:60] = 0  # the tiny model fails it

    def unit(i: int, ref: str):
        return pipeline.process(Frame(i, image, datetime.now(timezone.utc), time.monotonic(),
                                      unit_ref=ref))

    refused = [unit(0, "BAD\x00REF"), unit(1, "BAD\ud800REF")]
    stored = unit(2, "GOOD-REF")
    assert [u.verdict for u in refused] == ["fail", "fail"]
    assert [r.id for r in store.iter_units()] == [stored.id]
    snapshot = pipeline.snapshot()
    assert snapshot["units_by_verdict"] == {"fail": 3} and snapshot["errors"] == 0
    lines = (store.data_dir / "spool" / "rejected.jsonl").read_text().splitlines()
    kept = {json.loads(line)["unit"]["row"]["id"]: json.loads(line) for line in lines}
    assert set(kept) == {u.id for u in refused}
    assert kept[refused[0].id]["unit"]["row"]["unit_ref"] == "BAD\x00REF"
    assert kept[refused[0].id]["reason"].startswith("DataError: PostgreSQL text fields cannot contain NUL")
    assert kept[refused[1].id]["reason"].startswith("UnicodeEncodeError")
    for u in refused:
        folder = (store.data_dir / u.original_path).parent
        assert sorted(p.name for p in folder.iterdir()) == ["heatmap-values.png", "image.jpg"]
    assert store.sweep_after_crash().orphan_units == 0

    client = TestClient(create_app(Services(config=EdgeConfig(), store=store, pipeline=pipeline)))
    problems = client.get("/healthz").json()["problems"]
    assert any(p.startswith("2 unit(s) refused by the database, kept with their files in ")
               and p.count("rejected.jsonl") == 1 for p in problems), problems
    assert 'qc_units_total{camera="cam-1",verdict="fail"} 3.0' in client.get("/metrics").text
