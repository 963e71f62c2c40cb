"""The station database: every table, and the idempotent step that brings an older database up to
date when the station starts (new tables, new columns, new indexes; nothing is dropped).

Plain SQLAlchemy Core types only, so the same schema runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from edge.units import UNGRADED_SEVERITY, graded_defect_types, unit_severity

metadata = MetaData()

units_table = Table(
    "units",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("station", String(128), nullable=False),
    Column("line", String(128), nullable=False),
    Column("lot", String(128)),
    Column("style", String(128)),
    Column("captured_at", DateTime, nullable=False),  # naive UTC: SQLite keeps no zone
    Column("decided_at", DateTime, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("defects", JSON, nullable=False),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("thresholds", JSON, nullable=False),
    Column("timings", JSON, nullable=False),
    Column("original_path", String(512), nullable=False),
    Column("heatmap_path", String(512), nullable=False),
    Column("overlay_path", String(512), nullable=False),
    Column("review_by", String(128)),
    Column("reviewed_at", DateTime),
    Column("review_verdict", String(16)),
    Column("review_note", Text),
    # Added in schema 2 (migrated in place on older databases):
    Column("review_defect_type", String(64)),
    Column("review_severity", String(16)),
    # The operator's verdict where there is one, else the model's: what reports and filters use.
    Column("final_verdict", String(16)),
    # ",type:class,type:class,..." with one entry per defect type and its class (e.g.
    # ",hole:major,slub:minor,"; edge.units.graded_defect_types), the reviewed type replacing the
    # model's; a delimited string so "has a defect of type X" is a portable LIKE, and the Pareto
    # with its severity split a GROUP BY.
    Column("defect_types", Text),
    Column("height_px", Integer),
    Column("width_px", Integer),
    # Which camera of the station took the unit, the unit's own id (barcode) where a trigger gave
    # one, and the rest of the station's lot context at the time (PO, colour, size).
    Column("camera", String(64)),
    Column("unit_ref", String(128)),
    Column("po", String(128)),
    Column("colour", String(64)),
    Column("size", String(64)),
    # The class a failed unit counts under in a lot's AQL (edge.units.unit_severity); added by
    # revision 0002, which fills it for the rows before it.
    Column("severity", String(16)),
    # The class the station's severity table gave the latest review's defect type at the unit's
    # regions' sizes, when the review was recorded (edge.services grades it; the store keeps no
    # table): what the unit counts under when the operator gave a type but no class. Added by
    # revision 0003; NULL for reviews recorded before it, which keep the class they counted under.
    Column("review_type_severity", String(16)),
    Index("ix_units_captured_at_id", "captured_at", "id"),
    Index("ix_units_station_captured", "station", "captured_at", "id"),
    Index("ix_units_line_captured", "line", "captured_at", "id"),
    Index("ix_units_lot_captured", "lot", "captured_at", "id"),
    Index("ix_units_style_captured", "style", "captured_at", "id"),
    Index("ix_units_final_verdict_captured", "final_verdict", "captured_at", "id"),
    Index("ix_units_score", "score"),
    Index("ix_units_unit_ref", "unit_ref"),
)

reviews_table = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", String(32), nullable=False),
    Column("by", String(128), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("defect_type", String(64)),
    Column("severity", String(16)),
    Column("note", Text),
    # What the station's table gave the review's type (units.review_type_severity); revision 0003.
    Column("type_severity", String(16)),
    Index("ix_reviews_unit_at", "unit_id", "at"),
)

lots_table = Table(
    "lots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station", String(128), nullable=False),
    Column("po", String(128), nullable=False),
    Column("style", String(128), nullable=False),
    Column("colour", String(64)),
    Column("size", String(64)),
    Column("lot_size", Integer, nullable=False),
    Column("fabric_width_mm", Float),
    Column("opened_at", DateTime, nullable=False),
    Column("opened_by", String(128), nullable=False),
    Column("closed_at", DateTime),
    Column("closed_by", String(128)),
    Index("ix_lots_station_closed", "station", "closed_at"),
)

api_keys_table = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),  # public half of the token, for the lookup
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Index("ix_api_keys_name", "name"),
)


TYPE_SEPARATOR, CLASS_SEPARATOR = ",", ":"  # neither may appear in a type (query.DEFECT_TYPE_PATTERN)


def defect_types_text(graded: list[tuple[str, str]]) -> str:
    return "".join(f"{TYPE_SEPARATOR}{t}{CLASS_SEPARATOR}{s}" for t, s in graded) + TYPE_SEPARATOR if graded else ""


def parse_defect_types(text: str | None) -> list[tuple[str, str]]:
    """The ``defect_types`` column's (type, class) pairs, unique by type, in order. A row written
    before types had classes (",hole,": a unit spooled across the upgrade) counts as major."""
    pairs: dict[str, str] = {}
    for entry in (text or "").split(TYPE_SEPARATOR):
        if entry:
            defect_type, _, severity = entry.partition(CLASS_SEPARATOR)
            pairs.setdefault(defect_type, severity or UNGRADED_SEVERITY)
    return list(pairs.items())


def derived_columns(
    verdict: str,
    defects: list[dict],
    review_verdict: str | None = None,
    review_defect_type: str | None = None,
    review_severity: str | None = None,
    review_type_severity: str | None = None,
) -> dict[str, Any]:
    """The columns a unit's row derives from the model's verdict and defects and the latest
    review: what reports and filters read (final verdict, graded types, the unit's class)."""
    final = review_verdict or verdict
    graded = graded_defect_types(final, defects, review_defect_type, review_severity, review_type_severity)
    return {
        "final_verdict": final,
        "defect_types": defect_types_text(graded),
        "severity": unit_severity(final, defects, review_severity, review_type_severity),
    }


def migrate(bind: Engine | Connection) -> None:
    """Create what is missing. Safe to run on every start and on a database of any older shape.

    Additive only: new tables, new columns (added nullable), new indexes. edge.storage.migrate runs it
    after the Alembic revisions, so a column added to a table above reaches old databases without
    a revision of its own; anything else (a rename, a new type) needs a revision.
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            migrate(conn)
        return
    conn = bind
    metadata.create_all(conn)
    inspector = inspect(conn)
    preparer = conn.dialect.identifier_preparer
    unit_columns_before = {c["name"] for c in inspector.get_columns("units")}
    for table in metadata.sorted_tables:
        existing = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} "
                f"ADD COLUMN {preparer.quote(column.name)} {kind}"
            )
        # create_all skips the indexes of a table that already existed.
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    if "final_verdict" not in unit_columns_before:
        _backfill(conn)


def _backfill(conn: Connection) -> None:
    """Fill the derived columns of rows written before they existed."""
    refresh_derived_columns(conn)


def refresh_derived_columns(conn: Connection) -> None:
    """Recompute every row's derived columns (``derived_columns``) from what it stores."""
    t = units_table
    query = select(
        t.c.id, t.c.verdict, t.c.defects, t.c.review_verdict, t.c.review_defect_type, t.c.review_severity,
        t.c.review_type_severity,
    )
    for row in conn.execute(query).all():
        defects = row.defects if isinstance(row.defects, list) else json.loads(row.defects or "[]")
        conn.execute(
            update(t)
            .where(t.c.id == row.id)
            .values(
                derived_columns(
                    row.verdict, defects, row.review_verdict, row.review_defect_type, row.review_severity,
                    row.review_type_severity,
                )
            )
        )
