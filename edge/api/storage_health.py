"""What the station's storage tells people: /healthz words, /metrics figures, and a 503 (not a 500)
for a read that finds the database away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy.exc import DBAPIError

from edge.storage.replay import describe, is_unavailable
from edge.storage.store import UnitStore

log = logging.getLogger(__name__)


@dataclass
class StorageHealth:
    problems: list[str] = field(default_factory=list)
    units: int | None = None  # rows in the table; None when the database could not be read
    status: dict[str, Any] = field(default_factory=dict)


def storage_health(store: UnitStore) -> StorageHealth:
    """The database's and the spool's state, and what is wrong with them in words."""
    health = StorageHealth()
    try:
        health.units = store.count()
    except DBAPIError as exc:
        if not is_unavailable(exc):
            raise
        store.database.failed(exc)
        store.replayer.start()  # it tells when the database answers again
    status = store.storage_status()
    health.status = {**status, "down_since": _iso(status["down_since"])}
    waiting = status["spool_units"]
    units = "unit" if waiting == 1 else "units"
    spool = f"{waiting} {units} waiting in the spool ({status['spool_dir']})"
    if not status["up"]:
        health.problems.append(
            f"database unreachable since {_iso(status['down_since'])}: {status['last_error']}; "
            f"{spool}"
        )
    elif waiting:
        health.problems.append(f"database is back; replaying {spool}")
    if status["spool_rejected"]:
        last = f"; the last: {status['last_rejection']}" if status["last_rejection"] else ""
        health.problems.append(
            f"{status['spool_rejected']} unit(s) refused by the database, kept with their files "
            f"in {status['spool_dir']}/rejected.jsonl{last}"
        )
    if status["replay_error"]:
        health.problems.append(status["replay_error"])
    return health


def _iso(at) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds").replace("+00:00", "Z")


class StorageCollector:
    """qc_database_up, qc_spool_units and qc_spool_replayed, read at scrape time."""

    def __init__(self, store: UnitStore):
        self.store = store

    def collect(self):
        status = self.store.storage_status()
        yield GaugeMetricFamily(
            "qc_database_up", "1 while the last write reached the database", value=int(status["up"])
        )
        yield GaugeMetricFamily(
            "qc_spool_units", "units kept in the local spool until the database answers",
            value=status["spool_units"],
        )
        yield CounterMetricFamily(
            "qc_spool_replayed", "spooled units inserted once the database answered",
            value=status["replayed"],
        )


def answer_database_away_with_503(app: FastAPI, store: UnitStore) -> None:
    """A route that needs a database which is away answers 503 with the reason, not a bare 500."""

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError):
        if not is_unavailable(exc):
            log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
            return JSONResponse({"detail": "internal database error"}, status_code=500)
        store.database.failed(exc)
        store.replayer.start()
        detail = (
            f"the station database is unreachable ({describe(exc)}); new units are kept in the "
            f"local spool and are replayed when it answers"
        )
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})
