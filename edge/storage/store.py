"""Unit records: one SQL row per unit plus its image files. Routes call this, never the ORM.

SQLAlchemy Core over SQLite in WAL mode (readers never wait for the pipeline's writes), or
PostgreSQL by URL. Files are written before the row is committed, so a row never points at
missing files. A kill between the two leaves files without a row; ``sweep_after_crash`` removes
them when the station starts again. A row the database refuses (a constraint, a NUL PostgreSQL
cannot store, a value its driver cannot encode: whatever the exception) is a decided unit all the
same: it is kept with its files in the spool's ``rejected.jsonl`` for a person to look at, never
lost and never holding up the line.

When the database cannot be reached or written, the row goes to a local spool instead (edge.storage.spool)
and its files stay; a background replayer (edge.storage.replay) inserts spooled rows in order once the
database answers. While anything is spooled, new rows are spooled behind it, so units reach the
table in the order they were decided.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import Engine

from edge.storage.engine import open_engine
from edge.storage.files import (
    SweepReport,
    UnitFiles,
    remove_unit_files,
    resolve_inside,
    sweep_unit_folders,
    write_unit_files,
)
from edge.storage.keys import KeyStore
from edge.storage.lots import LotStore
from edge.storage.migrate import upgrade_database
from edge.storage.query import UnitFilter
from edge.storage.replay import DatabaseWatch, SpoolReplayer, describe, is_unavailable
from edge.storage.spool import Spool, SpooledUnit
from edge.storage.tables import (
    derived_columns,
    metadata,
    reviews_table,
    units_table,
)
from edge.units import RECORD_FIELDS, NewUnit, Review, UnitRecord

log = logging.getLogger(__name__)

__all__ = ["BadCursor", "UnitStore", "UnknownUnit", "metadata", "units_table"]

FILE_COLUMNS = {"image": "original_path", "heatmap": "heatmap_path", "overlay": "overlay_path"}

# (reviewed defect type, the unit's stored regions) -> the class the station's table gives it.
GradeType = Callable[[str, list[dict[str, Any]]], str]


class BadCursor(ValueError):
    """A pagination cursor this store did not hand out."""


class UnknownUnit(LookupError):
    pass


def new_unit_id(at: datetime) -> str:
    """32 hex chars: milliseconds since the epoch, then randomness, so ids sort by time."""
    return f"{int(at.timestamp() * 1000):012x}{secrets.token_hex(10)}"


def _naive_utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        return at
    return at.astimezone(timezone.utc).replace(tzinfo=None)


def _aware(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=timezone.utc)


def encode_cursor(captured_at: datetime, unit_id: str) -> str:
    raw = f"{_naive_utc(captured_at).isoformat()}|{unit_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, unit_id = raw.split("|", 1)
        return datetime.fromisoformat(at_text), unit_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor(f"cursor {cursor!r} is not valid") from exc


class UnitReader:
    """Reads stored units, their reviews and where their files are: the queries only. Opens,
    migrates and writes nothing, so a read-only tool (``qc data export-feedback``) uses it on an
    engine of its own; UnitStore adds the station's writing side."""

    def __init__(self, engine: Engine, data_dir: Path):
        self.engine = engine
        self.data_dir = Path(data_dir)

    def get(self, unit_id: str) -> UnitRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(units_table).where(units_table.c.id == unit_id)).first()
        return None if row is None else _to_record(row._mapping)

    def list_units(
        self, *, limit: int = 50, cursor: str | None = None, filter: UnitFilter | None = None
    ) -> tuple[list[UnitRecord], str | None]:
        """Newest first. The cursor is the last item's (captured_at, id), so pages stay stable
        while new units arrive at the top."""
        t = units_table
        query = select(t).order_by(t.c.captured_at.desc(), t.c.id.desc()).limit(limit + 1)
        if filter is not None:
            query = query.where(filter.where())
        if cursor:
            at, unit_id = decode_cursor(cursor)
            query = query.where(
                or_(t.c.captured_at < at, and_(t.c.captured_at == at, t.c.id < unit_id))
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [_to_record(r._mapping) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.captured_at, last.id)
        return items, next_cursor

    def iter_units(self, filter: UnitFilter | None = None, *, page: int = 500) -> Iterator[UnitRecord]:
        """Every matching unit, newest first, one short read per page (no long-held connection)."""
        cursor = None
        while True:
            items, cursor = self.list_units(limit=page, cursor=cursor, filter=filter)
            yield from items
            if cursor is None:
                return

    def reviews(self, unit_id: str) -> list[dict[str, Any]]:
        """The review history of a unit, oldest first."""
        r = reviews_table
        query = select(r).where(r.c.unit_id == unit_id).order_by(r.c.at, r.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "at": _aware(row["at"])} for row in rows]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(units_table)).scalar_one())

    def stored_file(self, unit_id: str, kind: str) -> tuple[Path, float | None] | None:
        """Where the unit's ``image`` / ``heatmap`` / ``overlay`` file is, or is to be kept once
        rendered (edge.reports.pictures), with the pixel threshold its verdict used; None for an
        unknown unit. Nothing is rendered here.

        Raises UnsafePath when the stored path would leave data_dir.
        """
        t = units_table
        with self.engine.connect() as conn:
            found = conn.execute(
                select(t.c[FILE_COLUMNS[kind]], t.c.thresholds).where(t.c.id == unit_id)
            ).first()
        if found is None or found[0] is None:
            return None
        return resolve_inside(self.data_dir, found[0]), (found[1] or {}).get("pixel")



class UnitStore(UnitReader):
    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        *,
        busy_timeout_s: float = 15.0,
        connect_timeout_s: float = 5.0,
        spool_retry_s: float = 1.0,
    ):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(
            open_engine(database_url, busy_timeout_s=busy_timeout_s, connect_timeout_s=connect_timeout_s),
            data_dir,
        )
        self.write_lock = threading.Lock()
        self.spool = Spool(self.data_dir / "spool")
        self.database = DatabaseWatch()
        self.replayer = SpoolReplayer(self, retry_s=spool_retry_s)
        self.lots = LotStore(self.engine, self.write_lock)
        self.keys = KeyStore(self.engine)
        self.schema_ready = False
        try:
            self.prepare_schema()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The station inspects all the same: units are spooled, and the replayer migrates
            # the database and replays them once it answers.
            log.warning("database unreachable at start, units go to the spool: %s", describe(exc))
            self.database.failed(exc)
        if self.spool.pending or not self.schema_ready:  # replay as soon as the database answers
            self.replayer.start()

    def prepare_schema(self) -> None:
        """Bring the database to the current schema (edge.storage.migrate); raises while it is away."""
        upgrade_database(self.engine)
        self.schema_ready = True

    def close(self) -> None:
        self.replayer.stop()
        self.engine.dispose()

    def storage_status(self) -> dict[str, Any]:
        """The database's state and the spool's, for /healthz and /metrics."""
        return {
            **self.database.snapshot(),
            "spool_units": self.spool.pending,
            "spool_dir": str(self.spool.folder),
            "replay_error": self.replayer.error,
            "spool_rejected": self.spool.rejected,
            "last_rejection": self.spool.last_rejection,
        }

    def journal_mode(self) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(text("PRAGMA journal_mode")).scalar()).lower()

    def add(
        self,
        unit: NewUnit,
        *,
        original_rgb: np.ndarray,
        heatmap: np.ndarray | None = None,
        heatmap_rgb: np.ndarray | None = None,
        overlay_rgb: np.ndarray | None = None,
    ) -> UnitRecord:
        """Write the unit's files, then its row; if the row cannot be kept anywhere (not even in
        rejected.jsonl: a full disk) the files are removed and the error raised.

        If the database is away (or anything is spooled already) the row goes to the spool and the
        files stay: the record is returned all the same, without its lot when the lot had to wait
        for the database (the replay fills it in, from the lot open at ``captured_at``). A row the
        database refuses goes to rejected.jsonl and its files stay: the record is returned too.
        """
        unit_id = new_unit_id(unit.captured_at)
        files: UnitFiles = write_unit_files(
            self.data_dir,
            unit_id,
            unit.captured_at,
            original_rgb=original_rgb,
            heatmap=heatmap,
            heatmap_rgb=heatmap_rgb,
            overlay_rgb=overlay_rgb,
        )
        row = _unit_row(unit, unit_id, files, original_rgb.shape)
        try:
            with self.write_lock:
                if self.spool.pending or not self.schema_ready:
                    spooled = True  # behind the units already waiting, never ahead of them
                else:
                    spooled = not self._insert(row, find_lot=unit.lot is None)
                if spooled:
                    self.spool.append(SpooledUnit(row=row, resolve_lot=unit.lot is None))
        except BaseException:
            remove_unit_files(self.data_dir, files)
            raise
        if spooled:
            self.replayer.start()  # retries on its own clock, never on the line's
        return _to_record(row)

    def _insert(self, row: dict[str, Any], *, find_lot: bool) -> bool:
        """Insert the row (with the station's open lot); False when the database is away. A row
        it refuses is kept in rejected.jsonl (True: nothing to spool)."""
        values = dict(row)  # the spooled copy keeps no lot read in a transaction that failed
        try:
            with self.engine.begin() as conn:
                if find_lot:
                    # The station's open lot, read in the insert's transaction: a unit never lands
                    # in a lot closed meanwhile.
                    lot = self.lots.open_lot_in(conn, values["station"])
                    if lot is not None:
                        self.apply_lot(values, lot)
                conn.execute(units_table.insert().values(**values))
        except Exception as exc:
            if is_unavailable(exc):
                self.database.failed(exc)
                return False
            # Any other exception is this row's: a class we never named must not lose a decided
            # unit. Retrying would fail the same way, so it is set aside, not spooled.
            log.error("the database refused unit %s, kept in rejected.jsonl: %s", row["id"],
                      describe(exc))
            self.spool.reject(SpooledUnit(row=row, resolve_lot=find_lot), describe(exc))
            return True
        row.update(values)
        self.database.answered()
        return True

    @staticmethod
    def apply_lot(row: dict[str, Any], lot) -> None:
        """Record the lot context on a unit's row: at insert, and at replay for spooled units."""
        row["lot"] = str(lot.id)
        row["style"] = row.get("style") or lot.style
        row.update(po=lot.po, colour=lot.colour, size=lot.size)

    def known_ids(self, ids: list[str]) -> set[str]:
        """The ids among ``ids`` that have a row or wait for one in the spool (whose files must
        stay: the startup sweep and retention ask this)."""
        # The spool first: a unit leaves it only for the table, so none slips between the looks.
        found: set[str] = set(ids) & self.spool.known_ids()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
                chunk = ids[start : start + 500]
                query = select(units_table.c.id).where(units_table.c.id.in_(chunk))
                found.update(conn.execute(query).scalars())
        return found

    def sweep_after_crash(self, *, recent_days: int = 2) -> SweepReport:
        """Remove unit files without a row and stray temp files; call before the line starts.

        A spooled unit has no row yet but is known: its files wait for the replay."""
        try:
            with self.write_lock:
                return sweep_unit_folders(self.data_dir, self.known_ids, recent_days=recent_days)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # Without the rows nothing is known to be an orphan: delete nothing, sweep next start.
            log.warning("startup sweep skipped, the database is unreachable: %s", describe(exc))
            return SweepReport()

    def review(self, unit_id: str, review: Review, *, grade_type: GradeType | None = None) -> UnitRecord:
        """Record an operator's review: the unit shows the latest, the reviews table keeps all.

        ``grade_type(defect_type, defects)`` is the class the station's severity table gives a
        reviewed type for the unit's stored regions (edge.services passes it; the store keeps no
        table). It is recorded with the review, and a failed unit reviewed with a type but no
        class counts under it. Without it (a tool with no station config) such a unit keeps the
        class its regions were graded with."""
        t = units_table
        at = datetime.now(timezone.utc).replace(tzinfo=None)
        with self.write_lock, self.engine.begin() as conn:
            stored = conn.execute(select(t.c.verdict, t.c.defects).where(t.c.id == unit_id)).first()
            if stored is None:
                raise UnknownUnit(f"unit {unit_id} not found")
            type_severity = (
                grade_type(review.defect_type, stored.defects)
                if review.defect_type and grade_type is not None else None
            )
            conn.execute(
                reviews_table.insert().values(
                    unit_id=unit_id, by=review.by, at=at, verdict=review.verdict,
                    defect_type=review.defect_type, severity=review.severity, note=review.note,
                    type_severity=type_severity,
                )
            )
            # Every review column is the latest review's, set or cleared: a later review without a
            # type leaves no class graded for an earlier review's type behind.
            conn.execute(
                update(t).where(t.c.id == unit_id).values(
                    review_by=review.by, reviewed_at=at, review_verdict=review.verdict,
                    review_note=review.note, review_defect_type=review.defect_type,
                    review_severity=review.severity, review_type_severity=type_severity,
                    **derived_columns(
                        stored.verdict, stored.defects, review.verdict, review.defect_type, review.severity,
                        type_severity,
                    ),
                )
            )
        record = self.get(unit_id)
        assert record is not None
        return record


def _unit_row(unit: NewUnit, unit_id: str, files: UnitFiles, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """A decided unit as its ``units`` row: what the pipeline decided, and what storing adds."""
    return {
        **dataclasses.asdict(unit),
        "id": unit_id,
        "original_path": files.original,
        "heatmap_path": files.heatmap,
        "overlay_path": files.overlay,
        "captured_at": _naive_utc(unit.captured_at),
        "decided_at": _naive_utc(unit.decided_at),
        **derived_columns(unit.verdict, unit.defects),
        "height_px": int(image_shape[0]),
        "width_px": int(image_shape[1]),
    }


def _to_record(row: Mapping[str, Any]) -> UnitRecord:
    """A ``units`` row, fetched or as just written, as a UnitRecord; a column it lacks (not set
    on insert) is NULL."""
    values = {name: row.get(name) for name in RECORD_FIELDS}
    for key in ("captured_at", "decided_at", "reviewed_at"):
        values[key] = _aware(values[key])
    return UnitRecord(**values)
