"""Bring the station database to the current schema at every start: Alembic, run in code.

There is no alembic.ini: the script location is the ``edge/storage/migrations`` package, and the revisions
run on a connection this module opens. Three kinds of database meet a starting station:

- empty: every table is created from ``edge.storage.tables.metadata`` and stamped as the newest revision
  (Alembic's recipe for a fresh database: replaying history would only rebuild the same thing);
- older than Alembic (``units`` but no ``alembic_version``): the idempotent ``edge.storage.tables.migrate``
  brings it to the baseline's shape, it is stamped as the baseline, then upgraded to the newest;
- under Alembic: upgraded to the newest revision (nothing to do when it is there already).

Then ``edge.storage.tables.migrate`` runs once more: additive changes made in edge/storage/tables.py (a new
nullable column, a new index) reach every database without a revision. Changes it cannot make
(renames, new types, data moves) are revisions in edge/storage/migrations/versions/.

On PostgreSQL, several stations may start at once against one database: an advisory lock lets one
of them migrate while the others wait, then find nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from edge.storage.tables import metadata, migrate

SCRIPT_LOCATION = Path(__file__).parent / "migrations"
BASELINE = "0001_baseline"
ADVISORY_LOCK_KEY = 0x51C0_ED6E  # any constant shared by every station: "qc edge" migrations


def alembic_config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade_database(engine: Engine) -> str:
    """Bring the database to the newest revision; returns what was done, in words."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        config = alembic_config(conn)
        tables = set(inspect(conn).get_table_names())
        if "units" not in tables:
            metadata.create_all(conn)
            command.stamp(config, "head")
            done = "created"
        elif "alembic_version" not in tables:
            migrate(conn)
            command.stamp(config, BASELINE)
            command.upgrade(config, "head")
            done = "adopted"
        else:
            before = current_revision(conn)
            command.upgrade(config, "head")
            done = "upgraded" if current_revision(conn) != before else "current"
        migrate(conn)
    return done
