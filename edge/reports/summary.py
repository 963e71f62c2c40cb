"""The QC manager's figures: the summary (yield, first-pass yield, rate, Pareto, stations, shifts).

Counting happens in SQL, grouped into quarter-hour buckets per station; Python only maps buckets
to local shifts (a zone may be 5:30 or 5:45 off UTC, hence quarter hours) and expands the Pareto's
type strings. The buckets of closed days come from an in-process cache (edge.storage.summary_cache) that
notices reviews and late units, so a 30-day summary counts only today's units.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, extract, func, select
from sqlalchemy.engine import Engine

from edge.config import ReportsConfig
from edge.storage.query import UnitFilter, naive_utc
from edge.storage.summary_cache import BucketRow, TypeRow, ceil_day, day_cache, floor_day
from edge.storage.tables import units_table


def _zone(config: ReportsConfig) -> tzinfo | None:
    return ZoneInfo(config.timezone) if config.timezone else None


def _rates(units: int, passed: int, first_pass: int) -> dict[str, Any]:
    return {
        "units": units,
        "passed": passed,
        "yield": passed / units if units else None,
        "first_pass_yield": first_pass / units if units else None,
    }


def pareto(type_counts: Counter[str]) -> list[dict[str, Any]]:
    """Types by count, most first, with each one's share and the running (cumulative) share."""
    total = sum(type_counts.values())
    rows, running = [], 0
    for defect_type, n in sorted(type_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        running += n
        rows.append(
            {
                "type": defect_type,
                "count": n,
                "percent": 100.0 * n / total,
                "cumulative_percent": 100.0 * running / total,
            }
        )
    return rows


MIN_RATE_WINDOW_H = 0.25


def split_types(defect_types: str | None) -> list[str]:
    # Unique, in order: rows written before types were de-duplicated may repeat one.
    return list(dict.fromkeys(t for t in (defect_types or "").split(",") if t))


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


def summary(
    engine: Engine, unit_filter: UnitFilter, config: ReportsConfig, *, use_cache: bool = True
) -> dict[str, Any]:
    t = units_table
    where = unit_filter.where()
    with engine.connect() as conn:
        # Two queries, not one: each of min and max alone is a single index lookup.
        first_at = conn.execute(select(func.min(t.c.captured_at)).where(where)).scalar()
        last_at = conn.execute(select(func.max(t.c.captured_at)).where(where)).scalar()
    count_rows, type_rows = counted(engine, unit_filter, first_at, use_cache=use_cache)

    zone = _zone(config)
    # Thousands of bucket rows over a month: the shift of each local quarter hour is looked up
    # once, and rows are summed per (station, shift) before the three tallies.
    shift_at = {
        minute: next(s.name for s in config.shifts if s.contains(minute)) for minute in range(0, 24 * 60, 15)
    }
    shift_of_bucket: dict[datetime, str] = {}
    per_station_shift: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for station, bucket, n, n_passed, n_first in count_rows:
        shift = shift_of_bucket.get(bucket)
        if shift is None:
            local = bucket.replace(tzinfo=timezone.utc).astimezone(zone)
            shift = shift_of_bucket[bucket] = shift_at[local.hour * 60 + local.minute]
        acc = per_station_shift[station, shift]
        acc[0] += n
        acc[1] += n_passed
        acc[2] += n_first
    totals = [0, 0, 0]
    by_station: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_shift: dict[str, list[int]] = {s.name: [0, 0, 0] for s in config.shifts}
    for (station, shift), counts in per_station_shift.items():
        for acc in (totals, by_station[station], by_shift[shift]):
            for i in range(3):
                acc[i] += counts[i]

    type_counts: Counter[str] = Counter()
    failed = 0
    for _station, _day, text, n in type_rows:
        failed += n
        for defect_type in split_types(text):
            type_counts[defect_type] += n

    start = unit_filter.from_ or (first_at and first_at.replace(tzinfo=timezone.utc))
    end = unit_filter.to or (last_at and last_at.replace(tzinfo=timezone.utc))
    hours = (end - start).total_seconds() / 3600 if start and end else 0.0
    return {
        "from": unit_filter.from_,
        "to": unit_filter.to,
        "first_unit_at": first_at and first_at.replace(tzinfo=timezone.utc),
        "last_unit_at": last_at and last_at.replace(tzinfo=timezone.utc),
        **_rates(*totals),
        "failed": failed,
        # Under a quarter of an hour of data says nothing about an hourly rate.
        "units_per_hour": totals[0] / hours if hours >= MIN_RATE_WINDOW_H else None,
        "pareto": pareto(type_counts),
        "by_station": [{"station": k, **_rates(*v)} for k, v in sorted(by_station.items())],
        "by_shift": [{"shift": k, **_rates(*v)} for k, v in by_shift.items()],
        "timezone": config.timezone or str(datetime.now().astimezone().tzinfo),
    }
