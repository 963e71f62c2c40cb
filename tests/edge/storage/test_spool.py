"""The spool: units survive a database that cannot be written, and reach it once, in order.

SQLite is made unwritable the way a real station meets it: another process's connection holds
``BEGIN EXCLUSIVE`` on the file (chmod cannot stop root), and the station's busy timeout is short.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from edge.reports.pictures import unit_picture
from edge.storage.lots import NewLot
from edge.storage.spool import Spool, SpoolCorrupt, SpooledUnit
from edge.storage.store import UnitStore
from edge.storage.tables import units_table
from tests.edge.conftest import T0, _new_unit, refuse_rows_with

IMAGE = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def open_store(data: Path, **kw) -> UnitStore:
    kw = {"busy_timeout_s": 0.1, "spool_retry_s": 0.05, **kw}
    return UnitStore(f"sqlite:///{data / 'qc.db'}", data, **kw)


def add(store: UnitStore, at: datetime, **kw):
    return store.add(_new_unit(at, **kw), original_rgb=IMAGE, heatmap_rgb=IMAGE, overlay_rgb=IMAGE)


class Locked:
    """Another connection holding SQLite's write lock: every write of the station fails."""

    def __init__(self, db: Path):
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def ids_in_table(store: UnitStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(units_table.c.id).order_by(units_table.c.id)).scalars())


def replay_by_hand(store: UnitStore, monkeypatch) -> None:
    """Keep the background replayer idle: the test calls ``store.replayer.replay()`` itself."""
    monkeypatch.setattr(store.replayer, "start", lambda: None)


def spooled(i: int, at: datetime = T0) -> SpooledUnit:
    return SpooledUnit(row={"id": f"{i:032x}", "captured_at": at.replace(tzinfo=None),
                            "defects": [{"type": "hole"}], "score": 0.5}, resolve_lot=True)


# -- the spool file ------------------------------------------------------------------------------


def test_records_round_trip_and_survive_reopening(tmp_path):
    spool = Spool(tmp_path / "spool", segment_records=2)
    for i in range(5):
        spool.append(spooled(i, T0 + timedelta(seconds=i)))
    assert spool.pending == 5 and len(spool.segments()) == 3  # 2 + 2 + 1
    units = [u for s in spool.segments() for u in spool.read(s)]
    assert [u.row["id"] for u in units] == [f"{i:032x}" for i in range(5)]
    assert units[3].row["captured_at"] == datetime(2024, 5, 6, 7, 8, 12)  # a datetime again
    assert units[0].row["defects"] == [{"type": "hole"}] and units[0].resolve_lot

    again = Spool(tmp_path / "spool", segment_records=2)
    assert again.pending == 5 and again.ids() == spool.ids()
    again.append(spooled(9))
    assert len(again.segments()) == 4  # a fresh segment: the old last one may end torn


def test_a_torn_last_record_is_ignored_and_never_glued_to_the_next(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.append(spooled(1))
    spool.append(spooled(2))
    (segment,) = spool.segments()
    with segment.open("ab") as f:
        f.write(b'{"v":1,"resolve_lot":true,"row":{"id":"00')  # power cut mid-write
    reopened = Spool(tmp_path / "spool")
    assert reopened.pending == 2
    reopened.append(spooled(3))
    assert [u.row["id"][-1] for s in reopened.segments() for u in reopened.read(s)] == ["1", "2", "3"]


def test_a_damaged_middle_line_is_named(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.append(spooled(1))
    (segment,) = spool.segments()
    segment.write_bytes(b"not json\n" + segment.read_bytes())
    with pytest.raises(SpoolCorrupt, match=r"00000001\.jsonl line 1"):
        Spool(tmp_path / "spool")


class FullDisk:
    """os.write in edge.storage.spool as a full disk answers it: ``partial`` bytes of the first write go
    through (a torn record, as a filesystem with a few blocks left does), then ENOSPC."""

    def __init__(self, monkeypatch, partial: int = 0):
        import edge.storage.spool

        self.monkeypatch, self.partial = monkeypatch, partial
        self.real_write = os.write
        monkeypatch.setattr(edge.storage.spool.os, "write", self.write)

    def write(self, fd, data):
        if self.partial:
            n, self.partial = self.partial, 0
            return self.real_write(fd, bytes(data[:n]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def free(self) -> None:
        self.monkeypatch.undo()


def test_appends_the_full_disk_refuses_leave_no_empty_segment_and_no_torn_record(
    tmp_path, monkeypatch
):
    spool = Spool(tmp_path / "spool", segment_records=2)
    spool.append(spooled(1))
    (first,) = spool.segments()
    before = first.read_bytes()
    disk = FullDisk(monkeypatch, partial=40)
    for i in range(17):  # the writer retries a held unit: each try used to leave a file behind
        with pytest.raises(OSError):
            spool.append(spooled(100 + i))
    disk.free()
    assert first.read_bytes() == before  # the torn bytes of the refused record are gone
    assert sorted(p.name for p in spool.folder.iterdir()) == [first.name]  # no empty segment
    assert spool.pending == 1
    spool.append(spooled(2))
    assert [u.row["id"][-1] for s in spool.segments() for u in spool.read(s)] == ["1", "2"]


def test_empty_segments_are_removed_when_found_never_one_that_holds_data(tmp_path):
    folder = tmp_path / "spool"
    spool = Spool(folder)
    spool.append(spooled(1))
    (with_record,) = spool.segments()
    torn = folder / "00000005.jsonl"  # a crash mid-write of its only record: bytes, no unit
    torn.write_bytes(b'{"v":1,"resolve_lot":true,"row":{"id":"00')
    for name in ("00000000.jsonl", "00000003.jsonl", "00000007.jsonl"):
        (folder / name).write_bytes(b"")  # left by failed appends of an older version
    reopened = Spool(folder)
    assert sorted(p.name for p in folder.iterdir()) == [with_record.name, torn.name]
    assert reopened.pending == 1
    (folder / "00000009.jsonl").write_bytes(b"")  # found while running: the replay lists segments
    assert reopened.segments() == [with_record, torn]
    assert not (folder / "00000009.jsonl").exists()


# -- the store against a locked SQLite database -------------------------------------------------


def test_units_are_spooled_while_sqlite_is_locked_then_replayed_once_in_order(tmp_path):
    data = tmp_path / "data"
    store = open_store(data)
    first = add(store, T0)
    lock = Locked(data / "qc.db")
    try:
        during = [add(store, T0 + timedelta(seconds=i + 1)) for i in range(6)]
        status = store.storage_status()
        assert not status["up"] and "locked" in status["last_error"]
        assert store.spool.pending >= 1  # the replayer may not take them while the lock stands
        assert ids_in_table(store) == [first.id]
        # Known (to the sweep and to retention) before they have a row, and known after.
        assert store.known_ids([u.id for u in during]) == {u.id for u in during}
        for unit in during:  # the files stay for the replay; the record is returned all the same
            assert (data / unit.original_path).is_file() and unit.verdict == "pass"
    finally:
        lock.release()
    wait_for(lambda: store.spool.pending == 0, what="the spool to drain")
    after = add(store, T0 + timedelta(seconds=30))
    assert ids_in_table(store) == sorted([first.id, *(u.id for u in during), after.id])
    status = store.storage_status()
    assert status["up"] and status["replayed"] == 6 and status["down_since"] is None
    assert store.spool.segments() == []
    store.close()


def test_while_anything_is_spooled_new_units_queue_behind_it(tmp_path, monkeypatch):
    data = tmp_path / "data"
    store = open_store(data)
    replay_by_hand(store, monkeypatch)
    lock = Locked(data / "qc.db")
    spooled_unit = add(store, T0)
    lock.release()
    behind = add(store, T0 + timedelta(seconds=1))  # the database answers, but one waits first
    assert store.spool.ids() == {spooled_unit.id, behind.id}
    assert ids_in_table(store) == []
    assert store.replayer.replay() == 2
    assert ids_in_table(store) == sorted([spooled_unit.id, behind.id])
    store.close()


def test_a_restarted_station_replays_what_the_last_run_spooled(tmp_path):
    data = tmp_path / "data"
    store = open_store(data)
    lock = Locked(data / "qc.db")
    units = [add(store, T0 + timedelta(seconds=i)) for i in range(3)]
    store.close()  # the station stops with the database still locked
    lock.release()

    restarted = open_store(data)
    assert restarted.sweep_after_crash().orphan_units == 0  # spooled units are no orphans
    wait_for(lambda: restarted.spool.pending == 0, what="the replay after restart")
    assert ids_in_table(restarted) == sorted(u.id for u in units)
    for unit in units:
        assert unit_picture(restarted, unit.id, "image") is not None
    restarted.close()


def test_a_crash_between_commit_and_cleanup_inserts_nothing_twice(tmp_path, monkeypatch):
    data = tmp_path / "data"
    store = open_store(data)
    replay_by_hand(store, monkeypatch)
    lock = Locked(data / "qc.db")
    units = [add(store, T0 + timedelta(seconds=i)) for i in range(3)]
    lock.release()
    # The first unit's row was committed, then the process died before the segment was deleted.
    (segment,) = store.spool.segments()
    with store.engine.begin() as conn:
        conn.execute(units_table.insert().values(**store.spool.read(segment)[0].row))
    store.close()

    restarted = open_store(data)
    wait_for(lambda: restarted.spool.pending == 0, what="the replay")
    assert ids_in_table(restarted) == sorted(u.id for u in units)
    assert restarted.storage_status()["replayed"] == 2
    restarted.close()


def test_a_refused_row_is_not_spooled(tmp_path, new_unit):
    store = open_store(tmp_path / "data")
    with pytest.raises(Exception):
        store.add(new_unit(T0, defects=[object()]), original_rgb=IMAGE, heatmap_rgb=IMAGE,
                  overlay_rgb=IMAGE)  # not JSON: a bug, not a database away; nothing to retry
    assert store.spool.pending == 0 and store.count() == 0
    store.close()


def test_a_spooled_unit_joins_the_lot_open_when_it_was_captured(tmp_path, monkeypatch):
    data = tmp_path / "data"
    store = open_store(data)
    replay_by_hand(store, monkeypatch)
    lot_a = store.lots.open(NewLot(station="station-1", po="PO-A", style="tee", lot_size=50,
                                   opened_by="op", colour="navy", size="M"))
    now = datetime.now(timezone.utc)
    lock = Locked(data / "qc.db")
    unit = add(store, now)
    assert unit.lot is None  # not known until the database answers
    lock.release()
    store.lots.close(lot_a.id, by="op")
    store.lots.open(NewLot(station="station-1", po="PO-B", style="polo", lot_size=50,
                           opened_by="op"))
    store.replayer.replay()
    got = store.get(unit.id)
    assert (got.lot, got.style, got.po, got.colour, got.size) == (str(lot_a.id), "tee", "PO-A",
                                                                  "navy", "M")
    store.close()


# -- what people see -----------------------------------------------------------------------------


def test_health_and_metrics_tell_the_database_is_away(tmp_path):
    from fastapi.testclient import TestClient

    from edge.api.app import Services, create_app
    from edge.config import EdgeConfig

    data = tmp_path / "data"
    store = open_store(data)
    client = TestClient(create_app(Services(config=EdgeConfig(), store=store)))
    lock = Locked(data / "qc.db")
    try:
        add(store, T0)
        add(store, T0 + timedelta(seconds=1))
        body = client.get("/healthz").json()
        problem = next(p for p in body["problems"] if p.startswith("database unreachable since"))
        assert "database is locked" in problem
        assert f"units waiting in the spool ({data / 'spool'})" in problem
        assert body["database"]["spool_units"] == store.spool.pending >= 1
        metrics = client.get("/metrics").text
        assert "qc_database_up 0.0" in metrics
        assert f"qc_spool_units {float(store.spool.pending)}" in metrics
    finally:
        lock.release()
    wait_for(lambda: store.spool.pending == 0, what="the replay")
    body = client.get("/healthz").json()
    assert not [p for p in body["problems"] if "database" in p or "spool" in p]
    assert body["units"] == 2
    metrics = client.get("/metrics").text
    assert "qc_database_up 1.0" in metrics and "qc_spool_units 0.0" in metrics
    assert "qc_spool_replayed_total 2.0" in metrics
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(units_table)).scalar() == 2
    store.close()


def test_a_row_the_database_refuses_is_set_aside_not_blocking_the_rest(tmp_path, monkeypatch):
    data = tmp_path / "data"
    store = open_store(data)
    replay_by_hand(store, monkeypatch)
    lock = Locked(data / "qc.db")
    before = add(store, T0)
    lock.release()
    good = dict(store.spool.read(store.spool.segments()[0])[0].row)
    bad = {**good, "id": "f" * 32, "verdict": None}  # NOT NULL: a refusal, not an outage
    store.spool.append(SpooledUnit(row=bad, resolve_lot=True))
    after = add(store, T0 + timedelta(seconds=2))
    assert store.replayer.replay() == 2
    assert ids_in_table(store) == sorted([before.id, after.id]) and store.spool.pending == 0
    status = store.storage_status()
    assert status["spool_rejected"] == 1 and "f" * 32 in status["last_rejection"]
    assert "IntegrityError" in status["last_rejection"]
    rejected = (data / "spool" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and '"verdict":null' in rejected[0].replace(" ", "")
    store.close()
    reopened = open_store(data)
    assert reopened.spool.rejected == 1 and "f" * 32 in reopened.spool.known_ids()
    reopened.close()


def test_a_spooled_row_refused_with_any_exception_class_is_set_aside(tmp_path, monkeypatch):
    data = tmp_path / "data"
    store = open_store(data)
    replay_by_hand(store, monkeypatch)
    lock = Locked(data / "qc.db")
    before = add(store, T0)
    refused = add(store, T0 + timedelta(seconds=1), unit_ref="BAD-REF")
    after = add(store, T0 + timedelta(seconds=2))
    lock.release()
    refuse_rows_with(store, "BAD-REF")  # not a SQLAlchemy error: it must not block the spool
    assert store.replayer.replay() == 2
    assert ids_in_table(store) == sorted([before.id, after.id]) and store.spool.pending == 0
    assert store.spool.rejected == 1 and refused.id in store.spool.known_ids()
    assert "DriverSurprise: cannot store 'BAD-REF'" in store.storage_status()["last_rejection"]
    store.close()


@pytest.fixture(scope="module")
def inferencer(tiny_model_dir):
    from qc.inference import Inferencer

    return Inferencer(tiny_model_dir, threads=1)


def test_a_running_line_loses_and_doubles_nothing_while_sqlite_is_locked(tmp_path, inferencer):
    from tests.edge.pipeline_helpers import make_pipeline
    from edge.line.sources import SimulatedSource
    from edge.line.sources.config import SimulatedSourceConfig

    data = tmp_path / "data"
    store = open_store(data)
    source = SimulatedSource(SimulatedSourceConfig(fps=25, size_px=(64, 96), max_frames=None))
    pipeline = make_pipeline(source, inferencer, store, "station.id=station-1", "station.line=line-1")
    decided = lambda: sum(pipeline.snapshot()["units_by_verdict"].values())  # noqa: E731
    pipeline.start()
    try:
        wait_for(lambda: store.count() >= 3, what="units before the lock")
        lock = Locked(data / "qc.db")
        try:
            wait_for(lambda: store.spool.pending >= 8, what="units spooled while locked")
        finally:
            lock.release()
        wait_for(lambda: store.spool.pending == 0, what="the replay")
        after = decided()
        wait_for(lambda: decided() >= after + 3, what="units inserted after the replay")
    finally:
        assert pipeline.stop(timeout_s=30)
    wait_for(lambda: store.spool.pending == 0, what="the last spooled units")
    snapshot = pipeline.snapshot()
    assert snapshot["errors"] == 0, snapshot["last_error"]
    ids = ids_in_table(store)
    assert len(ids) == len(set(ids)) == sum(snapshot["units_by_verdict"].values())
    assert store.storage_status()["replayed"] >= 8
    assert all(unit_picture(store, i, "image") is not None for i in ids)
    store.close()


SPOOLING_CHILD = """
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
import numpy as np
from edge.storage.store import UnitStore
from tests.edge.conftest import _new_unit
data = Path(sys.argv[1])
store = UnitStore(f"sqlite:///{data / 'qc.db'}", data, busy_timeout_s=0.05, spool_retry_s=0.05)
image = np.zeros((24, 32, 3), np.uint8)
t0 = datetime.now(timezone.utc)
for i in range(100000):
    unit = store.add(_new_unit(t0 + timedelta(milliseconds=i)), original_rgb=image,
                     heatmap_rgb=image, overlay_rgb=image)
    print(unit.id, flush=True)  # acknowledged: add() has returned
"""


def test_sigkill_while_spooling_then_restart_loses_and_doubles_nothing(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    data = tmp_path / "data"
    open_store(data).close()  # the schema, so the child's start finds it made
    lock = Locked(data / "qc.db")
    try:
        child = subprocess.Popen([sys.executable, "-c", SPOOLING_CHILD, str(data)], cwd=repo,
                                 stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(repo)})
        acknowledged = []
        deadline = time.monotonic() + 60
        while len(acknowledged) < 25 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        child.send_signal(signal.SIGKILL)  # mid-write of the next unit, most likely
        child.wait(10)
        assert len(acknowledged) == 25, "the child did not spool units"
    finally:
        lock.release()

    store = open_store(data)
    store.sweep_after_crash()  # the unit being written when killed: files without a record
    wait_for(lambda: store.spool.pending == 0, what="the replay after the kill")
    ids = ids_in_table(store)
    assert len(ids) == len(set(ids))
    assert set(acknowledged) <= set(ids)  # every acknowledged unit, once
    assert store.storage_status()["replayed"] >= 25  # and they came through the spool
    assert len(ids) <= len(acknowledged) + 1  # at most the one it was writing, if it got that far
    for unit_id in ids:
        assert unit_picture(store, unit_id, "image") is not None
    folders = {p.name for p in (data / "units").glob("*/*") if p.is_dir()}
    assert folders == set(ids)  # no orphan files left
    store.close()


def test_a_unit_spooled_before_defect_classes_replays_with_its_class(tmp_path):
    """A spool written by a station before classes (",hole," and no severity) survives the
    upgrade: its row's derived columns are derived anew when it is replayed."""
    import json

    data = tmp_path / "data"
    store = open_store(data)
    lock = Locked(data / "qc.db")
    hole = {"type": "hole", "box": [1, 2, 3, 4], "area_px": 12, "peak_score": 0.9, "mean_score": 0.7}
    unit = add(store, T0, verdict="fail", score=0.9, defects=[{**hole, "severity": "minor"}])
    store.close()
    lock.release()
    [segment] = sorted((data / "spool").glob("*.jsonl"))
    record = json.loads(segment.read_bytes())
    record["row"].pop("severity")
    record["row"]["defect_types"] = ",hole,"
    segment.write_bytes(json.dumps(record).encode() + b"\n")

    restarted = open_store(data)
    wait_for(lambda: restarted.spool.pending == 0, what="the replay")
    with restarted.engine.connect() as conn:
        row = conn.execute(
            select(units_table.c.defect_types, units_table.c.severity).where(units_table.c.id == unit.id)
        ).one()
    assert tuple(row) == (",hole:minor,", "minor")
    restarted.close()
