"""Alembic at store start, on SQLite and on a real PostgreSQL: a fresh database gets the whole
schema, a database older than Alembic is adopted without losing a row, and a second run is a no-op.

"The whole schema" is checked by Alembic's own comparison of the database with edge.storage.tables.metadata:
no table, column or index missing or extra.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from edge.storage.migrate import current_revision, head_revision, upgrade_database
from edge.storage.store import UnitStore
from edge.storage.tables import metadata
from tests.edge.postgres_server import pg_url, postgres  # noqa: F401  (fixtures)

# The units table as the station's first release created it (before reviews, lots and keys).
OLD_UNITS_SQL = """CREATE TABLE units (
    id VARCHAR(32) NOT NULL PRIMARY KEY, station VARCHAR(128) NOT NULL, line VARCHAR(128) NOT NULL,
    lot VARCHAR(128), style VARCHAR(128), captured_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP NOT NULL, verdict VARCHAR(16) NOT NULL, score FLOAT NOT NULL,
    defects JSON NOT NULL, model_name VARCHAR(128) NOT NULL, model_version VARCHAR(64) NOT NULL,
    thresholds JSON NOT NULL, timings JSON NOT NULL, original_path VARCHAR(512) NOT NULL,
    heatmap_path VARCHAR(512) NOT NULL, overlay_path VARCHAR(512) NOT NULL,
    review_by VARCHAR(128), reviewed_at TIMESTAMP, review_verdict VARCHAR(16), review_note TEXT)"""
OLD_ROWS = [
    ("a" * 32, "fail", '[{"type": "hole", "box": [1, 2, 3, 4]}]', "pass"),
    ("b" * 32, "fail", '[{"type": "stain", "box": [1, 2, 3, 4]}]', None),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qc.db'}"
    return request.getfixturevalue("pg_url")


def differences(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def revision(engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


def test_a_fresh_database_gets_the_whole_schema_and_a_second_run_does_nothing(url):
    engine = create_engine(url)
    assert upgrade_database(engine) == "created"
    assert revision(engine) == head_revision()
    assert differences(engine) == []
    assert upgrade_database(engine) == "current"
    assert revision(engine) == head_revision() and differences(engine) == []
    engine.dispose()


def test_a_database_older_than_alembic_is_adopted_without_losing_rows(url, tmp_path):
    engine = create_engine(url)
    with engine.begin() as conn:
        # What SQLAlchemy's DateTime is in each dialect, as the first release created it.
        datetime_type = "DATETIME" if conn.dialect.name == "sqlite" else "TIMESTAMP"
        conn.execute(text(OLD_UNITS_SQL.replace("TIMESTAMP", datetime_type)))
        conn.execute(text("CREATE INDEX ix_units_captured_at_id ON units (captured_at, id)"))
        for unit_id, verdict, defects, review in OLD_ROWS:
            conn.execute(
                text(
                    "INSERT INTO units VALUES (:id, 's', 'l', NULL, NULL, '2024-05-06 07:08:09', "
                    "'2024-05-06 07:08:10', :verdict, 0.9, :defects, 'm', '1', '{}', '{}', 'a', "
                    "'b', 'c', NULL, NULL, :review, NULL)"
                ),
                {"id": unit_id, "verdict": verdict, "defects": defects, "review": review},
            )
    assert "alembic_version" not in inspect(engine).get_table_names()

    assert upgrade_database(engine) == "adopted"
    assert revision(engine) == head_revision()
    assert differences(engine) == []
    store = UnitStore(url, tmp_path / "data")  # and the store opens it as it is
    hole, stain = store.get("a" * 32), store.get("b" * 32)
    assert store.count() == 2
    assert (hole.final_verdict, stain.final_verdict) == ("pass", "fail")  # backfilled
    assert stain.defects == [{"type": "stain", "box": [1, 2, 3, 4]}]
    store.close()
    assert upgrade_database(engine) == "current" and differences(engine) == []
    engine.dispose()


def test_stations_starting_together_on_one_fresh_postgresql_take_turns(pg_url, tmp_path):
    import threading

    engines = [create_engine(pg_url) for _ in range(4)]
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine):
        barrier.wait()
        try:
            results.append(upgrade_database(engine))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results) == ["created", "current", "current", "current"]
    assert differences(engines[0]) == []
    for engine in engines:
        engine.dispose()


def test_units_stored_before_defect_classes_keep_the_class_they_were_counted_under(url, tmp_path):
    """A database at the baseline (no severity column, ",type," without classes) upgrades to
    classes: each failed unit gets its reviewed class, else major, as the lot's AQL counted it."""
    engine = create_engine(url)
    upgrade_database(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE units DROP COLUMN severity"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0001_baseline'"))
        rows = [  # id, verdict, defects, review verdict, review type, review class, final, types
            ("a" * 32, "fail", '[{"type": "defect", "box": [1, 2, 3, 4]}]', None, None, None, "fail", ",defect,"),
            ("b" * 32, "fail", '[{"type": "defect", "box": [1, 2, 3, 4]}]', "fail", "slub", "minor", "fail", ",slub,"),
            ("c" * 32, "pass", "[]", None, None, None, "pass", ""),
            ("d" * 32, "fail", '[{"type": "defect", "box": [1, 2, 3, 4]}]', "pass", None, None, "pass", ""),
        ]
        for unit_id, verdict, defects, review, review_type, review_class, final, types in rows:
            conn.execute(
                text(
                    "INSERT INTO units (id, station, line, captured_at, decided_at, verdict, score, "
                    "defects, model_name, model_version, thresholds, timings, original_path, "
                    "heatmap_path, overlay_path, review_verdict, review_defect_type, review_severity, "
                    "final_verdict, defect_types) VALUES (:id, 's', 'l', '2024-05-06 07:08:09', "
                    "'2024-05-06 07:08:10', :verdict, 0.9, :defects, 'm', '1', '{}', '{}', 'a', 'b', "
                    "'c', :review, :review_type, :review_class, :final, :types)"
                ),
                {"id": unit_id, "verdict": verdict, "defects": defects, "review": review,
                 "review_type": review_type, "review_class": review_class, "final": final, "types": types},
            )

    assert upgrade_database(engine) == "upgraded"
    assert revision(engine) == head_revision() and differences(engine) == []
    with engine.connect() as conn:
        stored = dict(
            (row[0][0], row[1:])
            for row in conn.execute(text("SELECT id, severity, defect_types, final_verdict FROM units"))
        )
    assert stored == {
        "a": ("major", ",defect:major,", "fail"),
        "b": ("minor", ",slub:minor,", "fail"),
        "c": (None, "", "pass"),
        "d": (None, "", "pass"),
    }
    store = UnitStore(url, tmp_path / "data")
    assert store.count() == 4 and store.get("b" * 32).review_defect_type == "slub"
    store.close()
    engine.dispose()


def test_a_database_at_0002_gets_the_reviewed_types_class_and_keeps_the_classes_it_counted(url, tmp_path):
    """Revision 0003 adds units.review_type_severity and reviews.type_severity. A unit reviewed
    with a type only before it keeps the class it was counted under (the table the station graded
    with then is not known); its next review through the station grades the type."""
    from edge.config import EdgeConfig
    from edge.services import Services
    from edge.units import Review

    engine = create_engine(url)
    upgrade_database(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE units DROP COLUMN review_type_severity"))
        conn.execute(text("ALTER TABLE reviews DROP COLUMN type_severity"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0002_unit_severity'"))
        conn.execute(
            text(
                "INSERT INTO units (id, station, line, captured_at, decided_at, verdict, score, "
                "defects, model_name, model_version, thresholds, timings, original_path, "
                "heatmap_path, overlay_path, review_by, review_verdict, review_defect_type, "
                "final_verdict, defect_types, severity) VALUES (:id, 's', 'l', "
                "'2024-05-06 07:08:09', '2024-05-06 07:08:10', 'fail', 0.9, :defects, 'm', '1', "
                "'{}', '{}', 'a', 'b', 'c', 'op', 'fail', 'hole', 'fail', ',hole:minor,', 'minor')"
            ),
            {"id": "a" * 32,
             "defects": '[{"type": "stain", "box": [1, 2, 3, 4], "area_px": 12, "peak_score": 0.9, '
                        '"mean_score": 0.7, "severity": "minor"}]'},
        )

    assert upgrade_database(engine) == "upgraded"
    assert revision(engine) == head_revision()
    assert differences(engine) == []
    store = UnitStore(url, tmp_path / "data")
    old = store.get("a" * 32)
    assert (old.review_defect_type, old.review_type_severity) == ("hole", None)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT severity, defect_types FROM units")).one() == ("minor", ",hole:minor,")
    again = Services(config=EdgeConfig(), store=store).review(
        "a" * 32, Review(by="op", verdict="fail", defect_type="hole"))
    assert again.review_type_severity == "major" and again.defects == old.defects
    with engine.connect() as conn:
        assert conn.execute(text("SELECT severity, defect_types FROM units")).one() == ("major", ",hole:major,")
    store.close()
    engine.dispose()
