"""The ``storage:`` section: where units, their images and the spool live, and how long images are kept."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from qc.strict import Strict


class RetentionConfig(Strict):
    """How long unit images are kept. Rows (verdicts, reviews) are never deleted (edge.storage.retention)."""

    max_age_days: float | None = Field(
        None, gt=0, description="remove the images of whole days once all their units are older "
        "than this many days; None: keep",
    )
    max_bytes: int | None = Field(
        None, gt=0, description="keep the unit images under this many bytes, removing the oldest "
        "units first; None: no limit",
    )
    check_every_s: float = Field(
        300.0, gt=0, le=86400, description="how often the limits are checked (a background thread)"
    )


class StorageConfig(Strict):
    data_dir: Path = Field(Path("var"), description="where the database and unit images live")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; None means sqlite:///<data_dir>/qc.db"
    )
    sqlite_busy_timeout_s: float = Field(
        15.0, gt=0, le=600, description="SQLite: how long a write waits for another writer's lock "
        "before the unit goes to the local spool (data_dir/spool)",
    )
    postgres_connect_timeout_s: float = Field(
        5.0, ge=1, le=600, description="PostgreSQL: how long a connect may take before the "
        "database counts as unreachable and units go to the local spool",
    )
    spool_retry_s: float = Field(
        1.0, gt=0, le=3600, description="while units wait in the spool, how often the database "
        "is tried again",
    )
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="image retention by age and by size"
    )

    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.data_dir)


def default_database_url(data_dir: Path) -> str:
    """The station database when storage.database_url is not set: SQLite in the data folder."""
    return f"sqlite:///{data_dir / 'qc.db'}"
