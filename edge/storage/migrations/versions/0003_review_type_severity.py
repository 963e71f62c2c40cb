"""A reviewed type's class: ``units.review_type_severity`` and ``reviews.type_severity``.

Revision ID: 0003_review_type_severity
Revises: 0002_unit_severity
Create Date: 2027-01-20

When an operator gives a defect type but no class, the unit counts under the class the station's
severity table gives that type at the unit's regions' sizes (edge.services grades it as the review
is recorded). Both columns are new and nullable: the table a station graded with when it recorded
an older review is not known here, so the rows reviewed before this revision keep the class they
were counted under (their derived columns are unchanged). Nothing the rows store is changed.
"""

from alembic import op

from edge.storage.tables import migrate

revision = "0003_review_type_severity"
down_revision = "0002_unit_severity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Adds the two columns (a database older than Alembic has them already from the same call).
    migrate(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError(
        "the units' severity column may hold classes graded from review_type_severity; dropping "
        "it would leave them without their source"
    )
