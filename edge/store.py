"""Unit records: one SQL row per unit plus its image files. Routes call this, never the ORM.

SQLAlchemy Core over SQLite in WAL mode (readers never wait for the pipeline's writes). Files are
written before the row is committed and removed if the insert fails, so a row never points at
missing files. A kill between the two leaves files without a row; ``sweep_after_crash`` removes
them when the station starts again.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url

from edge.files import (
    SweepReport,
    UnitFiles,
    remove_unit_files,
    resolve_inside,
    sweep_unit_folders,
    write_unit_files,
)

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
    Index("ix_units_captured_at_id", "captured_at", "id"),
)

FILE_COLUMNS = {"image": "original_path", "heatmap": "heatmap_path", "overlay": "overlay_path"}


class BadCursor(ValueError):
    """A pagination cursor this store did not hand out."""


@dataclass(frozen=True)
class NewUnit:
    """What the pipeline knows about a unit before it is stored."""

    station: str
    line: str
    captured_at: datetime
    decided_at: datetime
    verdict: str
    score: float
    defects: list[dict[str, Any]]
    model_name: str
    model_version: str
    thresholds: dict[str, Any]
    timings: dict[str, float]
    lot: str | None = None
    style: str | None = None


@dataclass(frozen=True)
class UnitRecord:
    id: str
    station: str
    line: str
    lot: str | None
    style: str | None
    captured_at: datetime
    decided_at: datetime
    verdict: str
    score: float
    defects: list[dict[str, Any]]
    model_name: str
    model_version: str
    thresholds: dict[str, Any]
    timings: dict[str, float]
    original_path: str
    heatmap_path: str
    overlay_path: str
    review_by: str | None = None
    reviewed_at: datetime | None = None
    review_verdict: str | None = None
    review_note: str | None = None


_RECORD_FIELDS = [f.name for f in dataclasses.fields(UnitRecord)]


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


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # The pipeline thread writes while API threads read; the timeout rides out a writer's lock.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # safe in WAL; commits survive a process crash
        cur.close()

    return engine


class UnitStore:
    def __init__(self, database_url: str, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if make_url(database_url).get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(database_url)
        else:
            self.engine = create_engine(database_url, pool_pre_ping=True)
        metadata.create_all(self.engine)
        self._write_lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    def journal_mode(self) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(text("PRAGMA journal_mode")).scalar()).lower()

    def add(
        self,
        unit: NewUnit,
        *,
        original_rgb: np.ndarray,
        heatmap_rgb: np.ndarray,
        overlay_rgb: np.ndarray,
    ) -> UnitRecord:
        """Write the unit's files, then its row; if the row fails the files are removed."""
        unit_id = new_unit_id(unit.captured_at)
        files: UnitFiles = write_unit_files(
            self.data_dir,
            unit_id,
            unit.captured_at,
            original_rgb=original_rgb,
            heatmap_rgb=heatmap_rgb,
            overlay_rgb=overlay_rgb,
        )
        record = UnitRecord(
            id=unit_id,
            original_path=files.original,
            heatmap_path=files.heatmap,
            overlay_path=files.overlay,
            **dataclasses.asdict(unit),
        )
        row = dataclasses.asdict(record)
        for key in ("captured_at", "decided_at", "reviewed_at"):
            if row[key] is not None:
                row[key] = _naive_utc(row[key])
        try:
            with self._write_lock, self.engine.begin() as conn:
                conn.execute(units_table.insert().values(**row))
        except BaseException:
            remove_unit_files(self.data_dir, files)
            raise
        return dataclasses.replace(
            record, captured_at=_aware(row["captured_at"]), decided_at=_aware(row["decided_at"])
        )

    def known_ids(self, ids: list[str]) -> set[str]:
        """The ids among ``ids`` that have a row."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
                chunk = ids[start : start + 500]
                query = select(units_table.c.id).where(units_table.c.id.in_(chunk))
                found.update(conn.execute(query).scalars())
        return found

    def sweep_after_crash(self, *, recent_days: int = 2) -> SweepReport:
        """Remove unit files without a row and stray temp files; call before the line starts."""
        with self._write_lock:
            return sweep_unit_folders(self.data_dir, self.known_ids, recent_days=recent_days)

    def get(self, unit_id: str) -> UnitRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(units_table).where(units_table.c.id == unit_id)).first()
        return None if row is None else _to_record(row)

    def list_units(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[UnitRecord], str | None]:
        """Newest first. The cursor is the last item's (captured_at, id), so pages stay stable
        while new units arrive at the top."""
        t = units_table
        query = select(t).order_by(t.c.captured_at.desc(), t.c.id.desc()).limit(limit + 1)
        if cursor:
            at, unit_id = decode_cursor(cursor)
            query = query.where(
                or_(t.c.captured_at < at, and_(t.c.captured_at == at, t.c.id < unit_id))
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [_to_record(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.captured_at, last.id)
        return items, next_cursor

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(units_table)).scalar_one())

    def file_path(self, unit_id: str, kind: str) -> Path | None:
        """The unit's ``image`` / ``heatmap`` / ``overlay`` file, or None if unknown or missing.

        Raises UnsafePath when the stored path would leave data_dir.
        """
        column = units_table.c[FILE_COLUMNS[kind]]
        with self.engine.connect() as conn:
            rel = conn.execute(select(column).where(units_table.c.id == unit_id)).scalar()
        if rel is None:
            return None
        path = resolve_inside(self.data_dir, rel)
        return path if path.is_file() else None


def _to_record(row) -> UnitRecord:
    values = {name: getattr(row, name) for name in _RECORD_FIELDS}
    for key in ("captured_at", "decided_at", "reviewed_at"):
        values[key] = _aware(values[key])
    return UnitRecord(**values)
