"""The QC manager's figures: the summary (yield, first-pass yield, rate, Pareto, stations, shifts).

Counting happens in SQL (edge.storage.summary_queries), grouped into quarter-hour buckets per
station; this module only maps buckets to local shifts (a zone may be 5:30 or 5:45 off UTC, hence
quarter hours) and expands the Pareto's type strings into types and their classes. The buckets of closed days come from an
in-process cache (edge.storage.summary_cache) that notices reviews and late units, so a 30-day
summary counts only today's units.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from edge.reports.config import ReportsConfig
from edge.storage.query import UnitFilter
from edge.storage.store import UnitReader
from edge.storage.summary_queries import counted, first_and_last_capture
from edge.storage.tables import parse_defect_types
from qc.severity import SEVERITIES


def _zone(config: ReportsConfig) -> tzinfo | None:
    return ZoneInfo(config.timezone) if config.timezone else None


def _rates(units: int, passed: int, first_pass: int) -> dict[str, Any]:
    return {
        "units": units,
        "passed": passed,
        "yield": passed / units if units else None,
        "first_pass_yield": first_pass / units if units else None,
    }


def pareto(graded_counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    """Types by count, most first, with each one's share, the running (cumulative) share, and
    how many of its units were of each class (critical, major, minor)."""
    type_counts: Counter[str] = Counter()
    by_severity: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SEVERITIES, 0))
    for (defect_type, severity), n in graded_counts.items():
        type_counts[defect_type] += n
        by_severity[defect_type][severity] = by_severity[defect_type].get(severity, 0) + n
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
                "by_severity": by_severity[defect_type],
            }
        )
    return rows


def count_graded_types(rows: Iterable[tuple[str | None, int]]) -> Counter[tuple[str, str]]:
    """Units per (type, class), from (``defect_types`` column text, units) rows."""
    counts: Counter[tuple[str, str]] = Counter()
    for text, n in rows:
        for graded in parse_defect_types(text):
            counts[graded] += n
    return counts


MIN_RATE_WINDOW_H = 0.25


def summary(
    units: UnitReader, unit_filter: UnitFilter, config: ReportsConfig, *, use_cache: bool = True
) -> dict[str, Any]:
    """The figures of the units ``unit_filter`` selects, counted by the storage queries on the
    store's database."""
    engine = units.engine
    first_at, last_at = first_and_last_capture(engine, unit_filter.where())
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

    failed = sum(n for *_, n in type_rows)
    graded_counts = count_graded_types((text, n) for _station, _day, text, n in type_rows)

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
        "pareto": pareto(graded_counts),
        "by_station": [{"station": k, **_rates(*v)} for k, v in sorted(by_station.items())],
        "by_shift": [{"shift": k, **_rates(*v)} for k, v in by_shift.items()],
        "timezone": config.timezone or str(datetime.now().astimezone().tzinfo),
    }
