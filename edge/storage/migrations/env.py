"""Alembic's entry: runs on the connection edge.storage.migrate hands over (there is no alembic.ini)."""

from alembic import context

from edge.storage.tables import metadata

connection = context.config.attributes["connection"]
# Batch mode: SQLite's ALTER TABLE cannot drop or change a column; Alembic rebuilds the table.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
