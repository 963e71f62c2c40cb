"""The summary's counting, in SQL: units, passed and first-pass units per station and quarter
hour, failed units per station, day and defect types; closed days from the day cache
(edge.storage.summary_cache). edge.reports.summary turns the rows into the manager's figures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, extract, func, select
from sqlalchemy.engine import Engine

from edge.storage.query import UnitFilter, naive_utc
from edge.storage.summary_cache import BucketRow, TypeRow, ceil_day, day_cache, floor_day
from edge.storage.tables import units_table


def first_and_last_capture(engine: Engine, where) -> tuple[datetime | None, datetime | None]:
    """When the first and the last unit ``where`` selects were captured (naive UTC)."""
    t = units_table
    with engine.connect() as conn:
        # Two queries, not one: each of min and max alone is a single index lookup.
        first_at = conn.execute(select(func.min(t.c.captured_at)).where(where)).scalar()
        last_at = conn.execute(select(func.max(t.c.captured_at)).where(where)).scalar()
    return first_at, last_at


def count_buckets(engine: Engine, where) -> list[BucketRow]:
    """Units, passed and first-pass per (station, quarter hour) of the units ``where`` selects."""
    t = units_table
    minute = extract("minute", t.c.captured_at)
    quarter = case((minute >= 45, 3), (minute >= 30, 2), (minute >= 15, 1), else_=0)
    first_pass = case(((t.c.verdict == "pass") & (t.c.final_verdict == "pass"), 1), else_=0)
    passed = case((t.c.final_verdict == "pass", 1), else_=0)
    buckets = (
        t.c.station,
        extract("year", t.c.captured_at),
        extract("month", t.c.captured_at),
        extract("day", t.c.captured_at),
        extract("hour", t.c.captured_at),
        quarter,
    )
    counts = (
        select(*buckets, func.count(), func.sum(passed), func.sum(first_pass))
        .where(where)
        .group_by(*buckets)
    )
    with engine.connect() as conn:
        rows = conn.execute(counts).all()
    return [
        (station, datetime(int(y), int(mo), int(d), int(h), 15 * int(q)), n, int(n_passed or 0), int(n_first or 0))
        for station, y, mo, d, h, q, n, n_passed, n_first in rows
    ]


def count_types(engine: Engine, where) -> list[TypeRow]:
    """Failed units per (station, day, defect types text) of the units ``where`` selects."""
    t = units_table
    day = (extract("year", t.c.captured_at), extract("month", t.c.captured_at), extract("day", t.c.captured_at))
    query = (
        select(t.c.station, *day, t.c.defect_types, func.count())
        .where(where, t.c.final_verdict == "fail")
        .group_by(t.c.station, *day, t.c.defect_types)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(station, datetime(int(y), int(mo), int(d)), text or "", n) for station, y, mo, d, text, n in rows]


def count_units(engine: Engine, where) -> tuple[list[BucketRow], list[TypeRow]]:
    return count_buckets(engine, where), count_types(engine, where)


# Filters the day cache can answer (it keeps every station's buckets); any other filter counts live.
CACHED_FILTERS = {"from_", "to", "station"}


def counted(
    engine: Engine, unit_filter: UnitFilter, first_at: datetime | None, *, use_cache: bool = True
) -> tuple[list[BucketRow], list[TypeRow]]:
    """The filter's bucket and type rows: closed whole days from the day cache, the rest live."""
    t = units_table
    where = unit_filter.where()
    others = set(UnitFilter.model_fields) - CACHED_FILTERS
    if not use_cache or first_at is None or any(getattr(unit_filter, f) is not None for f in others):
        return count_units(engine, where)
    cache = day_cache(engine)
    closed_until = cache.closed_until()
    start = floor_day(first_at)  # no unit before it, whatever 'from' says
    if unit_filter.from_ is not None and naive_utc(unit_filter.from_) > start:
        start = ceil_day(naive_utc(unit_filter.from_))  # <= first_at's day + 1: no overflow
    end = min(floor_day(naive_utc(unit_filter.to)), closed_until) if unit_filter.to else closed_until
    if start >= end:
        return count_units(engine, where)
    buckets, types = cache.rows(
        engine, start, end,
        lambda a, b: count_units(engine, and_(t.c.captured_at >= a, t.c.captured_at < b)),
    )
    if unit_filter.station is not None:
        buckets = [row for row in buckets if row[0] == unit_filter.station]
        types = [row for row in types if row[0] == unit_filter.station]
    # The partial days at the edges, one range each (an OR of the two would scan the table).
    ranges = [t.c.captured_at >= end]
    if unit_filter.from_ is not None and naive_utc(unit_filter.from_) < start:
        ranges.append(t.c.captured_at < start)
    for in_range in ranges:
        live_buckets, live_types = count_units(engine, and_(where, in_range))
        buckets += live_buckets
        types += live_types
    return buckets, types
