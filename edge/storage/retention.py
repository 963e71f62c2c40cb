"""Retention of unit images by age and by size. Verdict rows are never deleted.

A station writes images for months; the disk is finite. Two limits, each optional:

- ``max_age_days``: a whole day folder ``units/YYYY-MM-DD/`` goes once every unit in it is older
  than the limit (its day ended ``max_age_days`` ago), so the current day is never touched;
- ``max_bytes``: while the unit images together weigh more, the oldest unit folders go first.

Only the images go: rows, reviews and lots stay, so reports over any range still work; the image
routes then answer 404 "image removed by retention". How far retention has gone is kept in
``units/.retention.json`` (written before anything is deleted), so that answer is exact.

Folders of the two newest days whose unit has no row yet are never deleted: their unit may be being
written right now (files first, then the row). Only names edge.storage.files writes are deleted, and a
folder only when it is then empty.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from edge.storage.files import DAY_FOLDER, UNIT_FILE_NAMES, UNIT_ID
from qc.atomic import write_bytes_atomic

log = logging.getLogger(__name__)

WATERMARK_NAME = ".retention.json"
PROTECTED_DAYS = 2  # the newest day folders, where units without a row may be being written


@dataclass
class RetentionReport:
    units_removed: int = 0
    days_removed: int = 0
    bytes_freed: int = 0
    bytes_kept: int | None = None  # total after the size pass (None: no size limit)
    removed_through: str | None = None  # "YYYY-MM-DD/<unit id>" or "YYYY-MM-DD/~" (the whole day)

    def __str__(self) -> str:
        kept = "" if self.bytes_kept is None else f", {self.bytes_kept / 1e6:.1f} MB kept"
        return (
            f"{self.units_removed} unit(s) in {self.days_removed} whole day(s) removed, "
            f"{self.bytes_freed / 1e6:.1f} MB freed{kept}"
        )


def _watermark_path(data_dir: Path) -> Path:
    return Path(data_dir) / "units" / WATERMARK_NAME


def removed_through(data_dir: Path) -> str | None:
    """How far retention has removed images: "YYYY-MM-DD/<id>" (that unit and all older), or
    "YYYY-MM-DD/~" (that whole day and all older); None when it never removed anything."""
    try:
        return json.loads(_watermark_path(data_dir).read_text())["removed_through"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def removed_by_retention(data_dir: Path, stored_path: str) -> bool:
    """Whether the unit whose file is ``stored_path`` (units/<day>/<id>/<name>) lost its images to
    retention, as opposed to some other loss."""
    parts = stored_path.split("/")
    mark = removed_through(data_dir)
    if mark is None or len(parts) != 4 or parts[0] != "units":
        return False
    return f"{parts[1]}/{parts[2]}" <= mark


def _advance_watermark(data_dir: Path, mark: str) -> None:
    current = removed_through(data_dir)
    if current is not None and current >= mark:
        return
    path = _watermark_path(data_dir)
    write_bytes_atomic(path, json.dumps({"removed_through": mark}).encode())


def _folder_bytes(folder: Path) -> int:
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def _remove_unit_folder(folder: Path) -> int:
    """Delete the files edge.storage.files writes (and temp files) in a unit folder; bytes freed."""
    freed = 0
    for path in [*(folder / name for name in UNIT_FILE_NAMES), *folder.glob(".*.tmp")]:
        try:
            size = path.stat().st_size
            path.unlink()
            freed += size
        except FileNotFoundError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass  # something we did not write lives there; leave it
    return freed


def _rmdir_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


class Retention:
    """Applies the limits to ``data_dir``; ``known_ids`` says which unit ids have a row.

    Day totals of days older than the protected ones are cached by the day folder's mtime (it
    changes when a unit folder is added or removed), so a check does not stat months of files
    every time. Renders made on request inside an old unit folder are counted when that day is
    next rescanned.
    """

    def __init__(
        self,
        data_dir: Path,
        known_ids: Callable[[list[str]], set[str]],
        *,
        max_age_days: float | None = None,
        max_bytes: int | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.known_ids = known_ids
        self.max_age_days = max_age_days
        self.max_bytes = max_bytes
        self._day_bytes: dict[str, tuple[int, int]] = {}  # day -> (mtime_ns, bytes)
        self._lock = threading.Lock()

    def _days(self) -> list[Path]:
        root = self.data_dir / "units"
        if not root.is_dir():
            return []
        return sorted(d for d in root.iterdir() if d.is_dir() and DAY_FOLDER.fullmatch(d.name))

    def apply(self, now: datetime | None = None) -> RetentionReport:
        now = now or datetime.now(timezone.utc)
        report = RetentionReport()
        with self._lock:  # one pass at a time (the thread and an admin call, say)
            if self.max_age_days is not None:
                self._by_age(now, report)
            if self.max_bytes is not None:
                self._by_size(report)
        return report

    def _by_age(self, now: datetime, report: RetentionReport) -> None:
        horizon = now - timedelta(days=self.max_age_days)
        for day in self._days():
            day_end = datetime.combine(date.fromisoformat(day.name), datetime.min.time(), timezone.utc)
            day_end += timedelta(days=1)
            if day_end > horizon:
                break  # this day and every newer one still hold units younger than the limit
            mark = f"{day.name}/~"
            _advance_watermark(self.data_dir, mark)  # before deleting: a kill mid-way is covered
            for folder in day.iterdir():
                if folder.is_dir() and UNIT_ID.fullmatch(folder.name):
                    report.bytes_freed += _remove_unit_folder(folder)
                    report.units_removed += 1
            _rmdir_if_empty(day)
            self._day_bytes.pop(day.name, None)
            report.days_removed += 1
            report.removed_through = mark

    def _day_total(self, day: Path, cacheable: bool) -> int:
        mtime = day.stat().st_mtime_ns
        cached = self._day_bytes.get(day.name)
        if cacheable and cached is not None and cached[0] == mtime:
            return cached[1]
        total = sum(
            _folder_bytes(f) for f in day.iterdir() if f.is_dir() and UNIT_ID.fullmatch(f.name)
        )
        if cacheable:
            self._day_bytes[day.name] = (mtime, total)
        return total

    def _by_size(self, report: RetentionReport) -> None:
        days = self._days()
        protected = {d.name for d in days[-PROTECTED_DAYS:]}
        totals = {d.name: self._day_total(d, cacheable=d.name not in protected) for d in days}
        total = sum(totals.values())
        for day in days:
            if total <= self.max_bytes:
                break
            folders = sorted(f for f in day.iterdir() if f.is_dir() and UNIT_ID.fullmatch(f.name))
            with_rows = self.known_ids([f.name for f in folders]) if day.name in protected else None
            for folder in folders:
                if total <= self.max_bytes:
                    break
                if with_rows is not None and folder.name not in with_rows:
                    continue  # no row yet: possibly being written this moment
                mark = f"{day.name}/{folder.name}"
                _advance_watermark(self.data_dir, mark)
                freed = _remove_unit_folder(folder)
                total -= freed
                report.bytes_freed += freed
                report.units_removed += 1
                report.removed_through = mark
            _rmdir_if_empty(day)
            self._day_bytes.pop(day.name, None)
        report.bytes_kept = total


class RetentionThread:
    """Runs :meth:`Retention.apply` every ``check_every_s`` until stopped; a failed pass is
    logged and tried again at the next check (retention must never stop the station)."""

    def __init__(self, retention: Retention, check_every_s: float):
        self.retention = retention
        self.check_every_s = check_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-retention", daemon=True)
        self.last_report: RetentionReport | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.retention.apply()
                self.last_report, self.last_error = report, None
                if report.units_removed:
                    log.info("retention: %s (through %s)", report, report.removed_through)
            except Exception as exc:  # noqa: BLE001 - logged, retried at the next check
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("retention pass failed")
            self._stop.wait(self.check_every_s)


def start_retention(config, store) -> RetentionThread | None:
    """The service's retention thread for ``config`` (edge.config.RetentionConfig), started; None
    when no limit is set."""
    if config.max_age_days is None and config.max_bytes is None:
        return None
    retention = Retention(
        store.data_dir, store.known_ids, max_age_days=config.max_age_days, max_bytes=config.max_bytes
    )
    thread = RetentionThread(retention, config.check_every_s)
    thread.start()
    log.info(
        "retention: images older than %s days / beyond %s bytes are removed, checked every %.0f s",
        config.max_age_days, config.max_bytes, config.check_every_s,
    )
    return thread


__all__ = [
    "Retention",
    "RetentionReport",
    "RetentionThread",
    "removed_by_retention",
    "removed_through",
    "start_retention",
]
