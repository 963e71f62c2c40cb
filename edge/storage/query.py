"""Filters of the unit list, the CSV export and the summary: one typed object, one SQL translation."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import and_

from edge.storage.tables import CLASS_SEPARATOR, TYPE_SEPARATOR, units_table

DEFECT_TYPE_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"  # no ',' or ':' (the delimiters) and no LIKE wildcards
TEXT_FIELD = dict(min_length=1, max_length=128)


class UnitFilter(BaseModel):
    """Every filter is optional; all given ones must hold. Times without a zone are UTC."""

    model_config = ConfigDict(extra="forbid")

    from_: datetime | None = Field(None, alias="from", description="captured at or after (ISO 8601)")
    to: datetime | None = Field(None, description="captured before (ISO 8601)")
    station: str | None = Field(None, **TEXT_FIELD)
    line: str | None = Field(None, **TEXT_FIELD)
    lot: str | None = Field(None, **TEXT_FIELD, description="lot id")
    style: str | None = Field(None, **TEXT_FIELD)
    camera: str | None = Field(None, **TEXT_FIELD, description="camera id of the station")
    unit_ref: str | None = Field(None, **TEXT_FIELD, description="unit id or barcode from a trigger")
    verdict: Literal["pass", "fail", "needs_review"] | None = Field(
        None, description="the final verdict: the operator's where reviewed, else the model's"
    )
    defect_type: str | None = Field(
        None, pattern=DEFECT_TYPE_PATTERN, description="has at least one defect of this type"
    )
    min_score: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    max_score: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ranges(self) -> UnitFilter:
        self.from_ = _utc(self.from_)
        self.to = _utc(self.to)
        if self.from_ and self.to and self.from_ >= self.to:
            raise ValueError(f"'from' ({self.from_.isoformat()}) must be before 'to' ({self.to.isoformat()})")
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError(f"min_score ({self.min_score}) is above max_score ({self.max_score})")
        return self

    def where(self):
        """The SQL condition (``true`` when nothing is filtered)."""
        t = units_table
        conditions = []
        if self.from_ is not None:
            conditions.append(t.c.captured_at >= naive_utc(self.from_))
        if self.to is not None:
            conditions.append(t.c.captured_at < naive_utc(self.to))
        for name in ("station", "line", "lot", "style", "camera", "unit_ref"):
            value = getattr(self, name)
            if value is not None:
                conditions.append(t.c[name] == value)
        if self.verdict is not None:
            conditions.append(t.c.final_verdict == self.verdict)
        if self.defect_type is not None:
            # ",type:class," entries (edge.storage.tables.defect_types_text).
            conditions.append(
                t.c.defect_types.like(f"%{TYPE_SEPARATOR}{self.defect_type}{CLASS_SEPARATOR}%")
            )
        if self.min_score is not None:
            conditions.append(t.c.score >= self.min_score)
        if self.max_score is not None:
            conditions.append(t.c.score <= self.max_score)
        return and_(True, *conditions)


def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    if at.tzinfo is None:
        return at.replace(tzinfo=timezone.utc)
    try:
        return at.astimezone(timezone.utc)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+05:00 lies before year 1 in UTC
        raise ValueError(f"{at.isoformat()} is out of range") from exc


def naive_utc(at: datetime) -> datetime:
    """The naive UTC datetime the database stores (SQLite keeps no zone)."""
    return at.astimezone(timezone.utc).replace(tzinfo=None)
