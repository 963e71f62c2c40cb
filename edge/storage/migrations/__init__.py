"""Alembic revisions of the station database; run by edge.storage.migrate at every store start."""
