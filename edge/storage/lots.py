"""Lots: a production order (PO, style, colour, size, lot size) open on one station at a time.

While a lot is open, every unit the station stores records it (UnitStore.add asks
``open_lot_in`` inside its insert transaction), so the pipeline needs no knowledge of lots.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from edge.storage.tables import lots_table
from edge.units import Lot


class LotConflict(RuntimeError):
    """The station already has an open lot, or the lot is already closed."""


class UnknownLot(LookupError):
    pass


@dataclass(frozen=True)
class NewLot:
    station: str
    po: str
    style: str
    lot_size: int
    opened_by: str
    colour: str | None = None
    size: str | None = None
    fabric_width_mm: float | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _to_lot(row) -> Lot:
    values = dict(row._mapping)
    for key in ("opened_at", "closed_at"):
        if values[key] is not None:
            values[key] = values[key].replace(tzinfo=timezone.utc)
    return Lot(**values)


class LotStore:
    def __init__(self, engine: Engine, write_lock: threading.Lock):
        self.engine = engine
        self._write_lock = write_lock

    def open_lot_in(self, conn: Connection, station: str) -> Lot | None:
        t = lots_table
        query = (
            select(t)
            .where(t.c.station == station, t.c.closed_at.is_(None))
            .order_by(t.c.id.desc())
            .limit(1)
        )
        row = conn.execute(query).first()
        return None if row is None else _to_lot(row)

    def open(self, lot: NewLot) -> Lot:
        with self._write_lock, self.engine.begin() as conn:
            current = self.open_lot_in(conn, lot.station)
            if current is not None:
                raise LotConflict(
                    f"station {lot.station} already has lot {current.id} open "
                    f"(PO {current.po}); close it first"
                )
            result = conn.execute(
                lots_table.insert().values(**vars(lot), opened_at=_now())
            )
            lot_id = result.inserted_primary_key[0]
        return self.get(lot_id)

    def close(self, lot_id: int, *, by: str) -> Lot:
        t = lots_table
        with self._write_lock, self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == lot_id)).first()
            if row is None:
                raise UnknownLot(f"lot {lot_id} not found")
            if row.closed_at is not None:
                raise LotConflict(f"lot {lot_id} was already closed at {row.closed_at.isoformat()}Z")
            conn.execute(update(t).where(t.c.id == lot_id).values(closed_at=_now(), closed_by=by))
        return self.get(lot_id)

    def get(self, lot_id: int) -> Lot:
        with self.engine.connect() as conn:
            row = conn.execute(select(lots_table).where(lots_table.c.id == lot_id)).first()
        if row is None:
            raise UnknownLot(f"lot {lot_id} not found")
        return _to_lot(row)

    def current(self, station: str) -> Lot | None:
        with self.engine.connect() as conn:
            return self.open_lot_in(conn, station)

    def list(
        self, *, station: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Lot]:
        """Newest first."""
        t = lots_table
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if station is not None:
            query = query.where(t.c.station == station)
        if open_only:
            query = query.where(t.c.closed_at.is_(None))
        with self.engine.connect() as conn:
            return [_to_lot(r) for r in conn.execute(query)]
