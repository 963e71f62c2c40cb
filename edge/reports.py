"""The QC manager's figures: the summary (yield, first-pass yield, rate, Pareto, stations, shifts).

Counting happens in SQL, grouped into quarter-hour buckets, so a summary over 100,000 units reads
a few thousand rows; Python only maps buckets to local shifts (a zone may be 5:30 or 5:45 off UTC,
hence quarter hours) and expands the Pareto's type strings.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, extract, func, select
from sqlalchemy.engine import Engine

from edge.config import ReportsConfig
from edge.query import UnitFilter
from edge.tables import units_table


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


def summary(engine: Engine, unit_filter: UnitFilter, config: ReportsConfig) -> dict[str, Any]:
    t = units_table
    where = unit_filter.where()
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
    span = select(func.min(t.c.captured_at), func.max(t.c.captured_at)).where(where)
    types = (
        select(t.c.defect_types, func.count())
        .where(where, t.c.final_verdict == "fail")
        .group_by(t.c.defect_types)
    )
    with engine.connect() as conn:
        count_rows = conn.execute(counts).all()
        first_at, last_at = conn.execute(span).one()
        type_rows = conn.execute(types).all()

    zone = _zone(config)
    totals = [0, 0, 0]
    by_station: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_shift: dict[str, list[int]] = {s.name: [0, 0, 0] for s in config.shifts}
    for station, year, month, day, hour, q, n, n_passed, n_first in count_rows:
        utc = datetime(int(year), int(month), int(day), int(hour), 15 * int(q), tzinfo=timezone.utc)
        local = utc.astimezone(zone)
        shift = next(s.name for s in config.shifts if s.contains(local.hour * 60 + local.minute))
        for acc in (totals, by_station[station], by_shift[shift]):
            acc[0] += n
            acc[1] += int(n_passed or 0)
            acc[2] += int(n_first or 0)

    type_counts: Counter[str] = Counter()
    for text, n in type_rows:
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
        "failed": sum(n for _, n in type_rows),
        # Under a quarter of an hour of data says nothing about an hourly rate.
        "units_per_hour": totals[0] / hours if hours >= MIN_RATE_WINDOW_H else None,
        "pareto": pareto(type_counts),
        "by_station": [{"station": k, **_rates(*v)} for k, v in sorted(by_station.items())],
        "by_shift": [{"shift": k, **_rates(*v)} for k, v in by_shift.items()],
        "timezone": config.timezone or str(datetime.now().astimezone().tzinfo),
    }
