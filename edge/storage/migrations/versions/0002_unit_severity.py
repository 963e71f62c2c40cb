"""Defect classes: the units' ``severity`` column, and ``defect_types`` with each type's class.

Revision ID: 0002_unit_severity
Revises: 0001_baseline
Create Date: 2027-01-12

``defect_types`` changes form (",hole," becomes ",hole:major,") and ``severity`` is new, both
derived from what each row stores (edge.storage.tables.derived_columns). Rows written before the
station graded defects get the rule they were counted under: a failed unit is of its reviewed
class, else major. Nothing the rows store is changed.
"""

from alembic import op

from edge.storage.tables import migrate, refresh_derived_columns

revision = "0002_unit_severity"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    migrate(conn)  # adds the severity column (a database older than Alembic has it already)
    refresh_derived_columns(conn)


def downgrade() -> None:
    raise NotImplementedError("the derived columns of older stations cannot hold classes")
