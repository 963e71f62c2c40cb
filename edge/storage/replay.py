"""Getting spooled units into the database once it answers again, and knowing whether it does.

``is_unavailable`` tells a database that cannot be reached or written (server down, connection
cut, SQLite file locked or read-only) from a row that is wrong (a constraint, a bad value): the
first kind is worth spooling and retrying, the second is not.

The replayer is a background thread the store starts when its spool is non-empty. It replays one
segment per transaction, under the store's write lock, so no new unit can slip between spooled
ones: while anything is spooled, UnitStore.add appends to the spool instead of inserting. Rows
already in the table are skipped (a crash between the commit and the segment's deletion), so a
unit is never inserted twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import or_, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from edge.storage.spool import Spool, SpooledUnit
from edge.storage.tables import derived_columns, lots_table, units_table

log = logging.getLogger(__name__)


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached or written, as opposed to a refused row."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def describe(exc: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's statement dump."""
    inner = getattr(exc, "orig", None) or exc
    text_ = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text_[0] if text_ else ''}".rstrip(": ")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class DatabaseWatch:
    """Whether the last write reached the database, since when it has not, and why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = True
        self.down_since: datetime | None = None
        self.last_error: str | None = None
        self.replayed = 0  # spooled units inserted so far

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.up:
                log.warning("database unavailable, units go to the spool: %s", describe(exc))
                self.down_since = _now()
            self.up = False
            self.last_error = describe(exc)

    def answered(self) -> None:
        with self._lock:
            if not self.up:
                log.warning("database answers again (down since %s)", self.down_since)
            self.up, self.down_since = True, None

    def count_replayed(self, n: int) -> None:
        with self._lock:
            self.replayed += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "up": self.up,
                "down_since": self.down_since,
                "last_error": self.last_error,
                "replayed": self.replayed,
            }


def lot_at(conn: Connection, station: str, at: datetime):
    """The lot that was open on ``station`` at ``at`` (naive UTC), or None: a replayed unit joins
    the lot it was captured in, not whichever lot is open when the database comes back."""
    t = lots_table
    query = (
        select(t)
        .where(
            t.c.station == station,
            t.c.opened_at <= at,
            or_(t.c.closed_at.is_(None), t.c.closed_at > at),
        )
        .order_by(t.c.id.desc())
        .limit(1)
    )
    return conn.execute(query).first()


def insert_spooled(
    conn: Connection,
    units: list[SpooledUnit],
    apply_lot: Callable[[dict[str, Any], Any], None],
) -> int:
    """Insert the units whose ids are not in the table yet; the number inserted."""
    t = units_table
    ids = [u.row["id"] for u in units]
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]  # SQLite caps bound parameters per statement
        known.update(conn.execute(select(t.c.id).where(t.c.id.in_(chunk))).scalars())
    columns = set(t.c.keys())
    inserted = 0
    for unit in units:
        if unit.row["id"] in known:
            continue
        row = {k: v for k, v in unit.row.items() if k in columns}
        # Derived anew: a unit spooled before an upgrade may lack a column or hold an old form.
        row.update(derived_columns(row["verdict"], row["defects"]))
        if unit.resolve_lot:
            lot = lot_at(conn, row["station"], row["captured_at"])
            if lot is not None:
                apply_lot(row, lot)
        conn.execute(t.insert().values(**row))
        known.add(row["id"])
        inserted += 1
    return inserted


class SpooledStore(Protocol):
    """What the replayer works on: the station's store (edge.storage.store.UnitStore, which builds
    the replayer; named by shape here, so neither module imports the other)."""

    engine: Engine
    spool: Spool
    database: DatabaseWatch
    write_lock: threading.Lock  # held by every insert, so spooled units keep their order
    schema_ready: bool

    def prepare_schema(self) -> None: ...

    def apply_lot(self, row: dict[str, Any], lot: Any) -> None: ...


class SpoolReplayer:
    """Drains the store's spool into the database in order; retries every ``retry_s`` while the
    database is away."""

    def __init__(self, store: SpooledStore, *, retry_s: float = 1.0):
        self.store = store
        self.retry_s = retry_s
        self.error: str | None = None  # a replay failure that is not the database being away
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="edge-spool-replay", daemon=True
                )
                self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def replay(self) -> int:
        """Replay every segment, oldest first; the number of units inserted. Raises when the
        database is still away (the rest stays spooled)."""
        store, total = self.store, 0
        for segment in store.spool.segments():
            # Read, insert and delete under the write lock: add() cannot append to this segment
            # meanwhile, and nothing new reaches the table ahead of a spooled unit.
            with store.write_lock:
                if not segment.exists():
                    continue
                units = store.spool.read(segment)
                try:
                    with store.engine.begin() as conn:
                        inserted = insert_spooled(conn, units, store.apply_lot)
                except Exception as exc:  # whatever the class: a refused row must not block the rest
                    if is_unavailable(exc):
                        raise
                    inserted = self._one_by_one(units)  # find the refused row, keep the rest
                store.spool.remove(segment, units)
            store.database.answered()
            store.database.count_replayed(inserted)
            total += inserted
            if inserted:
                log.info("replayed %d spooled unit(s) from %s", inserted, segment.name)
        return total

    def _one_by_one(self, units: list[SpooledUnit]) -> int:
        """Insert each unit in its own transaction; a refused one goes to rejected.jsonl."""
        inserted = 0
        for unit in units:
            try:
                with self.store.engine.begin() as conn:
                    inserted += insert_spooled(conn, [unit], self.store.apply_lot)
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.error("the database refused spooled unit %s: %s", unit.row.get("id"), exc)
                self.store.spool.reject(unit, describe(exc))
        return inserted

    def probe(self) -> None:
        """Raise when the database cannot even be read."""
        with self.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.store.schema_ready:
                    self.store.prepare_schema()  # the station started while it was away
                if not self.store.database.up:
                    # Outside the write lock: a dead server costs this thread the connect
                    # timeout, not the line.
                    self.probe()
                if self.store.spool.pending:
                    self.replay()  # a write: only a committed segment says the database is back
                    self.error = None
                elif not self.store.database.up:
                    self.store.database.answered()  # nothing waits, and it answers reads
                else:
                    self._wake.wait(self.retry_s)
                    self._wake.clear()
                    continue
            except Exception as exc:  # the thread must outlive any failure: it retries
                if is_unavailable(exc):
                    self.store.database.failed(exc)
                else:
                    log.exception("spool replay failed")
                    self.error = f"spool replay failed: {describe(exc)}"
            else:
                continue
            self._wake.wait(self.retry_s)
            self._wake.clear()
