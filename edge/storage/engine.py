"""The station database's engine: SQLite in WAL mode, or PostgreSQL (or another URL) as given."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url


def _sqlite_engine(url: str, busy_timeout_s: float) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # The pipeline thread writes while API threads read; the timeout rides out a writer's lock.
    # A lock held longer than that counts as the database being away: the unit is spooled.
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # safe in WAL; commits survive a process crash
        cur.close()

    return engine


def open_engine(
    database_url: str, *, busy_timeout_s: float = 15.0, connect_timeout_s: float = 5.0
) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, busy_timeout_s)
    connect_args = {}
    if url.get_backend_name() == "postgresql":
        # A server that went away must fail a write in seconds (the unit is then spooled), not
        # hang the writer on TCP's own timeout.
        connect_args["connect_timeout"] = max(1, round(connect_timeout_s))
    # pre_ping: a connection the server dropped (a restart) is replaced, not handed out.
    return create_engine(database_url, pool_pre_ping=True, connect_args=connect_args)
