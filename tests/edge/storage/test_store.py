import json
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest
from sqlalchemy import update

from edge.reports.pictures import unit_picture
from edge.storage.files import UnsafePath, resolve_inside
from edge.storage.store import BadCursor, units_table
from tests.edge.conftest import refuse_rows_with

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def test_insert_get_roundtrip_and_files(store, add_unit, new_unit):
    rec = add_unit(T0, verdict="fail", score=0.9,
                   defects=[{"type": "defect", "box": [1, 2, 3, 4], "area_px": 12,
                             "area_mm2": None, "length_mm": None, "peak_score": 0.9,
                             "mean_score": 0.7}])
    got = store.get(rec.id)
    assert got == rec
    assert got.captured_at == T0 and got.captured_at.tzinfo is not None
    assert got.defects[0]["box"] == [1, 2, 3, 4]
    assert got.original_path == f"units/2024-05-06/{rec.id}/image.jpg"
    for kind in ("image", "heatmap", "overlay"):
        path = unit_picture(store, rec.id, kind)
        assert path is not None and path.is_file()
        assert path.is_relative_to(store.data_dir.resolve())
    overlay = cv2.imread(str(unit_picture(store, rec.id, "overlay")))
    assert overlay.shape == (48, 64, 3)
    assert store.get("0" * 32) is None and unit_picture(store, "0" * 32, "overlay") is None
    assert store.count() == 1
    # No temp files left behind by the atomic writes.
    assert sorted(p.name for p in unit_picture(store, rec.id, "image").parent.iterdir()) == [
        "heatmap.png", "image.jpg", "overlay.png"]


def test_ids_sort_by_time(store, add_unit, new_unit):
    a = add_unit(T0)
    b = add_unit(T0 + timedelta(milliseconds=5))
    assert len(a.id) == 32 and a.id < b.id


def test_list_newest_first_with_stable_cursor(store, add_unit, new_unit):
    times = [T0 + timedelta(seconds=i) for i in range(7)] + [T0 + timedelta(seconds=3)] * 2
    ids = {add_unit(t, seed=i).id for i, t in enumerate(times)}
    expected = [r.id for r in sorted(
        (store.get(i) for i in ids), key=lambda r: (r.captured_at, r.id), reverse=True)]

    page, cursor = store.list_units(limit=4)
    seen = [r.id for r in page]
    # New units arriving at the top must not shift the pages that follow.
    add_unit(T0 + timedelta(minutes=5))
    while cursor:
        page, cursor = store.list_units(limit=4, cursor=cursor)
        seen += [r.id for r in page]
    assert seen == expected
    assert store.list_units(limit=100)[1] is None
    assert len(store.list_units(limit=100)[0]) == 10


def test_bad_cursor_refused(store, add_unit, new_unit):
    with pytest.raises(BadCursor):
        store.list_units(cursor="not-a-cursor!")


def test_wal_mode(store, add_unit, new_unit):
    add_unit(T0)
    assert store.journal_mode() == "wal"
    assert (store.data_dir / "qc.db-wal").exists()


def test_failed_insert_leaves_no_files(store, add_unit, new_unit):
    with pytest.raises(Exception):
        # Not JSON: the insert fails, and the row cannot be kept in rejected.jsonl either.
        store.add(new_unit(T0, defects=[object()]),
                  original_rgb=np.zeros((8, 8, 3), np.uint8),
                  heatmap_rgb=np.zeros((8, 8, 3), np.uint8),
                  overlay_rgb=np.zeros((8, 8, 3), np.uint8))
    assert store.count() == 0
    leftovers = [p for p in (store.data_dir / "units").rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_row_the_database_refuses_is_kept_in_rejected_jsonl_with_its_files(store, add_unit):
    refuse_rows_with(store, "BAD-REF")  # an exception class the store has never heard of
    refused = add_unit(T0, unit_ref="BAD-REF")
    later = add_unit(T0 + timedelta(seconds=1), seed=1, unit_ref="GOOD-REF")
    assert store.get(refused.id) is None and store.get(later.id) == later  # the line goes on
    assert store.spool.pending == 0 and store.spool.rejected == 1
    (line,) = (store.data_dir / "spool" / "rejected.jsonl").read_text().splitlines()
    kept = json.loads(line)
    assert kept["reason"] == "DriverSurprise: cannot store 'BAD-REF'"
    assert kept["unit"]["row"]["id"] == refused.id and kept["unit"]["row"]["unit_ref"] == "BAD-REF"
    for path in (refused.original_path, refused.heatmap_path, refused.overlay_path):
        assert (store.data_dir / path).is_file()
    assert store.sweep_after_crash().orphan_units == 0  # its files are known, not swept away
    assert refused.id in store.storage_status()["last_rejection"]


def test_bad_image_fails_before_touching_disk(store, add_unit, new_unit):
    with pytest.raises(Exception):
        store.add(new_unit(T0), original_rgb=np.zeros((0, 0, 3), np.uint8),
                  heatmap_rgb=np.zeros((8, 8, 3), np.uint8),
                  overlay_rgb=np.zeros((8, 8, 3), np.uint8))
    assert store.count() == 0
    assert not (store.data_dir / "units").exists() or not any((store.data_dir / "units").rglob("*.*"))


def test_path_traversal_refused(store, add_unit, tmp_path):
    rec = add_unit(T0)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the API")
    for evil in ("../secret.txt", str(secret), "units/../../secret.txt"):
        with store.engine.begin() as conn:
            conn.execute(update(units_table).where(units_table.c.id == rec.id)
                         .values(overlay_path=evil))
        with pytest.raises(UnsafePath):
            unit_picture(store, rec.id, "overlay")
    with pytest.raises(UnsafePath):
        resolve_inside(store.data_dir, ".")


def test_sweep_after_crash_removes_orphans_and_temp_files_only(store, add_unit):
    kept = add_unit(T0)
    old = add_unit(T0 - timedelta(days=30), seed=1)
    day = store.data_dir / "units" / "2024-05-06"
    # A kill after the files were written but before the row was committed:
    orphan = day / ("f" * 32)
    orphan.mkdir()
    for name in ("image.jpg", "heatmap.png", "overlay.png"):
        (orphan / name).write_bytes(b"written, never recorded")
    # ... and one during an atomic write: a temp file beside a recorded unit and in an orphan.
    kept_dir = unit_picture(store, kept.id, "image").parent
    (kept_dir / ".overlay.png.abc123.tmp").write_bytes(b"half")
    half = day / ("e" * 32)
    half.mkdir()
    (half / ".image.jpg.xyz.tmp").write_bytes(b"half")
    # Something the station did not write stays, and so does its folder.
    foreign = day / "operator-notes"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")

    report = store.sweep_after_crash()
    assert (report.orphan_units, report.temp_files) == (2, 2)
    assert not orphan.exists() and not half.exists()
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in kept_dir.iterdir()) == ["heatmap.png", "image.jpg", "overlay.png"]
    assert unit_picture(store, old.id, "overlay").is_file()
    assert store.count() == 2 and store.sweep_after_crash().total == 0
    assert store.known_ids([kept.id, "0" * 32, old.id]) == {kept.id, old.id}


def test_sweep_looks_only_at_the_newest_days(store, add_unit):
    add_unit(T0)
    stale_orphan = store.data_dir / "units" / "2024-01-01" / ("a" * 32)
    stale_orphan.mkdir(parents=True)
    (stale_orphan / "image.jpg").write_bytes(b"x")
    add_unit(T0 + timedelta(days=1))
    assert store.sweep_after_crash(recent_days=0).total == 0 and stale_orphan.exists()
    assert store.sweep_after_crash(recent_days=2).total == 0 and stale_orphan.exists()
    assert store.sweep_after_crash(recent_days=3).orphan_units == 1 and not stale_orphan.exists()


OLD_UNITS_SQL = """CREATE TABLE units (
    id VARCHAR(32) PRIMARY KEY, station VARCHAR(128) NOT NULL, line VARCHAR(128) NOT NULL,
    lot VARCHAR(128), style VARCHAR(128), captured_at DATETIME NOT NULL,
    decided_at DATETIME NOT NULL, verdict VARCHAR(16) NOT NULL, score FLOAT NOT NULL,
    defects JSON NOT NULL, model_name VARCHAR(128) NOT NULL, model_version VARCHAR(64) NOT NULL,
    thresholds JSON NOT NULL, timings JSON NOT NULL, original_path VARCHAR(512) NOT NULL,
    heatmap_path VARCHAR(512) NOT NULL, overlay_path VARCHAR(512) NOT NULL,
    review_by VARCHAR(128), reviewed_at DATETIME, review_verdict VARCHAR(16), review_note TEXT)"""


def test_a_database_of_the_first_schema_opens_and_is_migrated(tmp_path):
    import sqlite3

    from sqlalchemy import inspect

    from edge.storage.query import UnitFilter
    from edge.storage.store import UnitStore

    db = tmp_path / "old" / "qc.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute(OLD_UNITS_SQL)
        conn.execute("CREATE INDEX ix_units_captured_at_id ON units (captured_at, id)")
        conn.execute(
            "INSERT INTO units VALUES ('a' || hex(randomblob(15)), 's', 'l', NULL, NULL, "
            "'2024-05-06 07:08:09.000000', '2024-05-06 07:08:10.000000', 'fail', 0.9, "
            "'[{\"type\": \"hole\", \"box\": [1, 2, 3, 4]}]', 'm', '1', '{}', '{}', 'a', 'b', 'c', "
            "'op', '2024-05-06 08:00:00.000000', 'pass', 'fine')")
    for _ in range(2):  # the second start finds nothing to do
        store = UnitStore(f"sqlite:///{db}", tmp_path / "old")
        (old,), _ = store.list_units()
        assert old.final_verdict == "pass" and old.review_defect_type is None
        assert store.list_units(filter=UnitFilter(verdict="pass"))[0] == [old]
        store.close()
    fresh = UnitStore(f"sqlite:///{tmp_path / 'new' / 'qc.db'}", tmp_path / "new")
    for table in ("units", "reviews", "lots", "api_keys"):
        assert {c["name"] for c in inspect(store.engine).get_columns(table)} == {
            c["name"] for c in inspect(fresh.engine).get_columns(table)}
    assert {i["name"] for i in inspect(store.engine).get_indexes("units")} == {
        i["name"] for i in inspect(fresh.engine).get_indexes("units")}
    fresh.close()


def test_a_reviewed_types_class_is_recorded_with_the_review_and_survives_a_refresh(store, add_unit):
    """The store keeps no severity table: the class a reviewed type gets is graded by whoever
    passes ``grade_type`` (the station's services) and kept with the review, so recomputing the
    derived columns (a migration) finds it again. The model's regions stay as stored."""
    from edge.storage.tables import refresh_derived_columns
    from edge.units import Review

    stain = {"type": "stain", "box": [1, 2, 3, 4], "area_px": 12, "area_mm2": None, "length_mm": 3.0,
             "peak_score": 0.9, "mean_score": 0.7, "severity": "minor"}
    unit = add_unit(T0, verdict="fail", score=0.9, defects=[stain])
    asked = []

    def grade_type(defect_type, defects):
        asked.append((defect_type, defects))
        return "major"

    def stored():
        with store.engine.connect() as conn:
            row = conn.execute(
                units_table.select().where(units_table.c.id == unit.id)
            ).first()._mapping
        return row["severity"], row["defect_types"], row["review_type_severity"]

    got = store.review(unit.id, Review(by="op", verdict="fail", defect_type="hole"), grade_type=grade_type)
    assert asked == [("hole", [stain])]
    assert (got.review_severity, got.review_type_severity, got.defects) == (None, "major", [stain])
    assert stored() == ("major", ",hole:major,", "major")
    with store.engine.begin() as conn:
        refresh_derived_columns(conn)
    assert stored() == ("major", ",hole:major,", "major")
    assert store.reviews(unit.id)[-1]["type_severity"] == "major"

    # No type, no grading: the class is the regions' again.
    store.review(unit.id, Review(by="op", verdict="fail", note="fine"), grade_type=grade_type)
    assert len(asked) == 1 and stored() == ("minor", ",stain:minor,", None)
    # A tool without the station's table: a type-only review keeps the regions' class, as before.
    store.review(unit.id, Review(by="op", verdict="fail", defect_type="hole"))
    assert stored() == ("minor", ",hole:minor,", None)
