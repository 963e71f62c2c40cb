"""Alembic revisions of the station database; run by edge.migrate at every store start."""
