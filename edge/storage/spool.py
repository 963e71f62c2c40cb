"""The local spool: unit rows that could not reach the database, kept on disk until they can.

Append-only JSON lines in numbered segment files under ``data_dir/spool/`` (``00000001.jsonl``,
...), one record per line, each fsynced before ``append`` returns: once UnitStore.add has
returned, a power cut cannot lose the unit. A crash in the middle of a write leaves a last line without its
newline (a torn record); reading ignores it, and that unit was never acknowledged (its files are
orphans the startup sweep removes). A fresh segment is started at every open and after a failed
write, so a later record is never glued onto a torn one.

A write the disk refuses (full, I/O error) is undone before ``append`` raises: the segment is cut
back to its last whole record, or removed when that record was to be its first. A full disk whose
writer retries a held unit every few seconds therefore leaves no trail of empty segments; an empty
segment found all the same (a crash between creating a file and writing it, or an older version)
holds no unit and is removed when found: at open and whenever the segments are listed.

Segments are replayed oldest first and each is deleted only once all of its rows are committed
(edge.storage.replay): the order units were decided in is the order they reach the table. A row the
database refuses outright (a constraint, a value too long, a NUL PostgreSQL cannot store) would
block every unit behind it: it is moved to ``rejected.jsonl`` beside the segments with the
database's reason, for a person to look at; it is not lost and does not hold up the line. A row
refused at its first insert (UnitStore.add) goes there too, without passing through a segment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime

from edge.storage.tables import units_table
from qc.atomic import fsync_dir

log = logging.getLogger(__name__)

SEGMENT = re.compile(r"(\d{8})\.jsonl")
REJECTED = "rejected.jsonl"
FORMAT_VERSION = 1
_DATETIME_COLUMNS = {c.name for c in units_table.columns if isinstance(c.type, DateTime)}


class SpoolCorrupt(RuntimeError):
    """A spool line that is neither a record nor a torn last line: the disk has damaged it."""


@dataclass(frozen=True)
class SpooledUnit:
    row: dict[str, Any]  # the units row as UnitStore.add would have inserted it
    resolve_lot: bool  # the lot was not known when spooled: the replay looks it up


def encode(unit: SpooledUnit) -> bytes:
    row = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in unit.row.items()}
    record = {"v": FORMAT_VERSION, "resolve_lot": unit.resolve_lot, "row": row}
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def decode(line: bytes) -> SpooledUnit:
    record = json.loads(line)
    if record.get("v") != FORMAT_VERSION:
        raise ValueError(f"spool record format {record.get('v')!r}, expected {FORMAT_VERSION}")
    row = dict(record["row"])
    for name in _DATETIME_COLUMNS & row.keys():
        if row[name] is not None:
            row[name] = datetime.fromisoformat(row[name])
    return SpooledUnit(row=row, resolve_lot=bool(record["resolve_lot"]))


class Spool:
    """Thread-safe; the store also serialises appends against replay with its write lock."""

    def __init__(self, folder: Path, *, segment_records: int = 500):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.segment_records = segment_records
        self._lock = threading.Lock()
        self._active: Path | None = None
        self._active_count = 0
        segments = self.segments()
        self._ids: set[str] = set()
        for segment in segments:
            self._ids.update(u.row["id"] for u in self.read(segment))
        # Never append to a segment from before this open: its last line may be torn.
        self._next_seq = (int(SEGMENT.fullmatch(segments[-1].name).group(1)) + 1) if segments else 1
        self._rejected_ids: set[str] = set()
        rejected = self.folder / REJECTED
        if rejected.exists():
            for line in rejected.read_bytes().splitlines():
                try:
                    self._rejected_ids.add(json.loads(line)["unit"]["row"]["id"])
                except (ValueError, KeyError, TypeError):
                    pass  # a torn last line: that unit is still in its segment
        self.last_rejection: str | None = None

    @property
    def pending(self) -> int:
        """Units waiting in the spool."""
        with self._lock:
            return len(self._ids)

    @property
    def rejected(self) -> int:
        """Units the database refused, kept in rejected.jsonl."""
        with self._lock:
            return len(self._rejected_ids)

    def ids(self) -> set[str]:
        """Ids waiting for the database."""
        with self._lock:
            return set(self._ids)

    def known_ids(self) -> set[str]:
        """Ids whose files must stay: waiting, or refused and kept for a person to look at."""
        with self._lock:
            return self._ids | self._rejected_ids

    def segments(self) -> list[Path]:
        """Segment files that hold data, oldest first; empty ones found on the way are removed.

        Only a file of zero bytes is removed, and under the lock appends hold, so never the segment
        an append is writing nor one holding a record, whole or torn.
        """
        with self._lock:
            kept, emptied = [], []
            for path in sorted(p for p in self.folder.iterdir() if SEGMENT.fullmatch(p.name)):
                try:
                    empty = path.stat().st_size == 0
                except FileNotFoundError:
                    continue  # the replay removed it meanwhile
                if empty:
                    path.unlink(missing_ok=True)
                    emptied.append(path.name)
                else:
                    kept.append(path)
        if emptied:
            log.warning("spool: removed %d empty segment(s): %s", len(emptied), ", ".join(emptied))
        return kept

    def append(self, unit: SpooledUnit) -> None:
        """Write one record and fsync it; on return the unit survives a power cut."""
        data = encode(unit)
        with self._lock:
            if self._active is None or self._active_count >= self.segment_records:
                self._active = self.folder / f"{self._next_seq:08d}.jsonl"
                self._next_seq += 1
                self._active_count = 0
            segment = self._active
            created = not segment.exists()
            whole = 0 if created else segment.stat().st_size  # where the last whole record ends
            try:
                fd = os.open(segment, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                    if created:
                        fsync_dir(self.folder)
                except BaseException:
                    _undo_append(fd, segment, created=created, whole=whole)
                    raise
                finally:
                    os.close(fd)
            except BaseException:
                self._active = None  # the next record starts a clean segment after a torn one
                raise
            self._active_count += 1
            self._ids.add(unit.row["id"])

    def read(self, segment: Path) -> list[SpooledUnit]:
        """The segment's complete records; a torn last line (a crash mid-write) is left out."""
        data = segment.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # empty when the file ends with a newline, as every complete one does
        if tail:
            log.warning("spool %s: ignoring a torn last record (%d bytes)", segment.name, len(tail))
        units = []
        for number, line in enumerate(lines, start=1):
            try:
                units.append(decode(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise SpoolCorrupt(f"spool {segment} line {number} is damaged: {exc}") from exc
        return units

    def reject(self, unit: SpooledUnit, reason: str) -> None:
        """Keep a unit the database refused in rejected.jsonl, with the reason."""
        record = json.dumps({"reason": reason, "unit": json.loads(encode(unit))}).encode() + b"\n"
        with self._lock:
            path = self.folder / REJECTED
            if path.exists() and path.stat().st_size:
                with path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        record = b"\n" + record  # never glued onto a torn line
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, record)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._rejected_ids.add(unit.row["id"])
            self.last_rejection = f"unit {unit.row.get('id')}: {reason}"

    def remove(self, segment: Path, units: list[SpooledUnit]) -> None:
        """Delete a segment whose units are all in the database."""
        with self._lock:
            segment.unlink(missing_ok=True)
            fsync_dir(self.folder)
            if segment == self._active:
                self._active = None
            self._ids.difference_update(u.row["id"] for u in units)


def _undo_append(fd: int, segment: Path, *, created: bool, whole: int) -> None:
    """Take back a record the disk refused: it was never acknowledged, so it must not stay behind,
    neither as an empty segment (created for it) nor as a torn tail a later open would have to
    skip, nor, after a failed fsync, as a whole record whose unit files the store removes."""
    try:
        if created:
            segment.unlink(missing_ok=True)
        else:
            os.ftruncate(fd, whole)
            os.fsync(fd)
    except OSError as exc:  # reading ignores a torn tail; the fresh segment keeps it unglued
        log.error("spool %s: could not take back a refused record: %s", segment.name, exc)
