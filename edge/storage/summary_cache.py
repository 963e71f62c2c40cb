"""Counts of closed days, kept in memory so a summary over weeks reads no old units.

The summary counts units per (station, quarter hour) and failed units per defect type. Over 30
days of 100,000 units that costs ~0.5 s on SQLite, nearly all of it on days that no longer change.
This cache keeps each closed day's rows (station, quarter-hour start, units, passed, first-pass;
station, day, defect types, failed) and the summary reads only the open day, and partial days at
the edges of its window, from the units table.

A closed day can still change, and the cache notices without any hook in the store:
- a review changes a unit's final verdict: each call reads the reviews written since the last
  check (with a minute's overlap, for transactions that commit late) and drops their units' days;
- a unit arrives late (a spool replay, a slow writer) or is removed: each call compares the number
  of units in the cached days with one index-only range count, and on a difference counts day by
  day and rebuilds the days that differ.
So a summary is what a full count would give, at the price of one index-only count per call. The
one change it cannot see is a unit removed and another added on the same closed day between two
summaries (the count stays); the units table only ever grows today, so that needs a retention job
that also drops the day (``day_cache(engine).forget()``).

The cache lives in the process (one per database engine). After a restart the first summary over
a long window builds it; later calls add a day at a time.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from edge.storage.tables import reviews_table, units_table

DAY = timedelta(days=1)
# A day is closed once it ended this long ago: units still in the pipeline by then are late, and
# the count check catches those.
CLOSE_MARGIN = timedelta(minutes=5)
# Reviews are re-read this far back: a review stamped before a check may commit after it.
REVIEW_OVERLAP = timedelta(minutes=1)

BucketRow = tuple[str, datetime, int, int, int]  # station, quarter-hour start (naive UTC), n, passed, first
TypeRow = tuple[str, datetime, str, int]  # station, day (naive UTC), defect_types text, failed units
# Counts the units of [start, end): per (station, quarter hour), and failed ones per (station, day,
# defect types); the summary's own grouping.
CountBuckets = Callable[[datetime, datetime], tuple[list[BucketRow], list[TypeRow]]]
DayRows = tuple[list[BucketRow], list[TypeRow]]


def floor_day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(at: datetime) -> datetime:
    floor = floor_day(at)
    return floor if floor == at else floor + DAY


def utc_now_naive() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class DayCache:
    """Closed days' bucket rows for one database. Thread-safe; every call checks freshness."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: dict[datetime, DayRows] = {}
        self._reviews_checked_at: datetime | None = None
        self.days_built = 0  # days (re)counted from units, for tests and curiosity

    def forget(self) -> None:
        """Drop every cached day (after a bulk change the checks cannot see)."""
        with self._lock:
            self._days.clear()

    def closed_until(self, now: datetime | None = None) -> datetime:
        """Start of the first day that is not closed (naive UTC)."""
        return floor_day((now or utc_now_naive()) - CLOSE_MARGIN)

    def rows(self, engine: Engine, start: datetime, end: datetime, count_buckets: CountBuckets) -> DayRows:
        """Bucket and type rows of the closed days in [start, end), both day-aligned (naive UTC)."""
        with self._lock:
            self._drop_reviewed_days(engine)
            wanted = _days_between(start, end)
            missing = [d for d in wanted if d not in self._days]
            self._build(missing, count_buckets)
            self._rebuild_changed_days(engine, start, end, wanted, count_buckets)
            days = [self._days[day] for day in wanted]
            return [r for buckets, _ in days for r in buckets], [r for _, types in days for r in types]

    def _build(self, days: list[datetime], count_buckets: CountBuckets) -> None:
        for first, last in _runs(days):  # one query per run of consecutive days
            fresh: dict[datetime, DayRows] = {d: ([], []) for d in _days_between(first, last + DAY)}
            buckets, types = count_buckets(first, last + DAY)
            for row in buckets:
                fresh[floor_day(row[1])][0].append(row)
            for row in types:
                fresh[row[1]][1].append(row)
            self._days.update(fresh)
            self.days_built += len(fresh)

    def _drop_reviewed_days(self, engine: Engine) -> None:
        checked_at = utc_now_naive()
        if self._reviews_checked_at is not None and self._days:
            r, t = reviews_table, units_table
            since = self._reviews_checked_at - REVIEW_OVERLAP
            query = (
                select(t.c.captured_at)
                .select_from(r.join(t, t.c.id == r.c.unit_id))
                .where(r.c.at >= since)
            )
            with engine.connect() as conn:
                for (captured_at,) in conn.execute(query):
                    self._days.pop(floor_day(captured_at), None)
        self._reviews_checked_at = checked_at

    def _rebuild_changed_days(
        self, engine: Engine, start: datetime, end: datetime, wanted: list[datetime], count_buckets: CountBuckets
    ) -> None:
        cached = sum(row[2] for day in wanted for row in self._days[day][0])
        with engine.connect() as conn:
            stored = conn.execute(_count_between(start, end)).scalar_one()
            if stored == cached:
                return
            changed = [
                day
                for day in wanted
                if conn.execute(_count_between(day, day + DAY)).scalar_one()
                != sum(row[2] for row in self._days[day][0])
            ]
        self._build(changed, count_buckets)


def _count_between(start: datetime, end: datetime):
    t = units_table
    return select(func.count()).select_from(t).where(and_(t.c.captured_at >= start, t.c.captured_at < end))


def _days_between(start: datetime, end: datetime) -> list[datetime]:
    days, day = [], start
    while day < end:
        days.append(day)
        day += DAY
    return days


def _runs(days: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive days grouped: [(first, last), ...]."""
    runs: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        if runs and runs[-1][1] + DAY == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


_CACHES: weakref.WeakKeyDictionary[Engine, DayCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def day_cache(engine: Engine) -> DayCache:
    """The cache of this database engine (made on first use, gone with the engine)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(engine)
        if cache is None:
            cache = _CACHES[engine] = DayCache()
        return cache
