"""The queries the lot report needs, over one lot's units: the SQL stays in storage, the counting
and the standards' verdicts in edge.reports.lot."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from edge.storage.tables import units_table


def verdict_counts(engine: Engine, lot_id: str) -> list[tuple[str, int, int]]:
    """(final verdict, units, reviewed units) per final verdict."""
    t = units_table
    query = (
        select(t.c.final_verdict, func.count(), func.count(t.c.review_verdict))
        .where(t.c.lot == lot_id)
        .group_by(t.c.final_verdict)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def failed_defect_types(engine: Engine, lot_id: str) -> list[tuple[str, int]]:
    """(defect_types column text, failed units) per distinct text."""
    t = units_table
    query = (
        select(t.c.defect_types, func.count())
        .where(t.c.lot == lot_id, t.c.final_verdict == "fail")
        .group_by(t.c.defect_types)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def verdicts_and_severities(engine: Engine, lot_id: str, *, first: int | None = None) -> list[tuple[str, str | None]]:
    """(final verdict, the unit's class) per unit, over the lot or its ``first`` units captured."""
    t = units_table
    query = select(t.c.final_verdict, t.c.severity).where(t.c.lot == lot_id)
    if first is not None:
        query = query.order_by(t.c.captured_at, t.c.id).limit(first)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def units_along_the_fabric(engine: Engine, lot_id: str) -> list[tuple[str, list[dict[str, Any]], str | None, int | None]]:
    """(final verdict, defects, reviewed defect type, height in px) per unit, in capture order."""
    t = units_table
    query = (
        select(t.c.final_verdict, t.c.defects, t.c.review_defect_type, t.c.height_px)
        .where(t.c.lot == lot_id)
        .order_by(t.c.captured_at, t.c.id)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]
