"""Baseline: the schema edge/storage/tables.py described when the station adopted Alembic.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-27

A database older than Alembic (``units`` but no ``alembic_version``) is brought to this shape by
the idempotent ``edge.storage.tables.migrate`` (new tables, new columns, indexes, backfilled derived
columns), which is also what this revision runs: on an empty database it creates every table.
"""

from alembic import op

from edge.storage.tables import migrate

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrate(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("the baseline cannot be undone: it would drop every unit")
