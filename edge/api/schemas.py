"""What the API takes (``...In``) and gives (``...Out``): separate models, so a stored field never
leaks out by accident and a client can never set one it should not."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.storage.query import DEFECT_TYPE_PATTERN
from edge.text_fields import Name, Note, Printable
from edge.units import ReviewOut, UnitOut
from qc.decision import Defect
from qc.defect_types import NOT_A_DEFECT
from qc.severity import Severity


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReviewIn(_In):
    verdict: Literal["pass", "fail"] = Field(description="the operator's verdict")
    defect_type: str | None = Field(
        None, pattern=DEFECT_TYPE_PATTERN, description="corrected defect type (letters, digits, _ -)"
    )
    severity: Severity | None = Field(
        None, description="defect class for the lot's AQL; a failed unit without one counts under "
        "the class the station's severity table gives `defect_type` at the unit's regions' sizes "
        "where a type is given, else the worst class the station graded among its defects, else major"
    )
    note: Note | None = Field(None, description="free text; tabs and line breaks are kept")

    @field_validator("defect_type")
    @classmethod
    def _not_the_reserved_type(cls, value: str | None) -> str | None:
        # The type heads' name for a detector's false alarm: a review filed under it would become a
        # training folder `qc train-types` refuses. A unit without a defect is reviewed as a pass.
        if value == NOT_A_DEFECT:
            raise ValueError(f"{NOT_A_DEFECT!r} is reserved for the type head's false alarms; review a unit "
                             f"without a defect with verdict 'pass'")
        return value


class UnitPage(BaseModel):
    items: list[UnitOut]
    next: str | None = Field(description="cursor of the next (older) page; null on the last page")


class LotIn(_In):
    station: Name | None = Field(None, description="default: this station")
    po: Name = Field(description="purchase order")
    style: Name
    colour: Annotated[str, Printable(max_length=64)] | None = None
    size: Annotated[str, Printable(max_length=64)] | None = None
    lot_size: int = Field(ge=2, le=10_000_000, description="units in the lot (ISO 2859-1 lot size)")
    fabric_width_mm: float | None = Field(
        None, gt=0, le=10_000, description="for the 4-point system; default: the station's"
    )


class SeveritySplit(BaseModel):
    critical: int
    major: int
    minor: int


class ParetoRow(BaseModel):
    type: str
    count: int = Field(description="failed units with a defect of this type")
    percent: float
    cumulative_percent: float
    by_severity: SeveritySplit = Field(description="those units by the class of this type's defect")


class Rates(BaseModel):
    units: int
    passed: int
    yield_: float | None = Field(alias="yield", description="passed / units (final verdicts)")
    first_pass_yield: float | None = Field(
        description="units the model passed and no operator overrode, / units"
    )
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class StationRates(Rates):
    station: str


class ShiftRates(Rates):
    shift: str


class SummaryOut(Rates):
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    first_unit_at: datetime | None
    last_unit_at: datetime | None
    failed: int
    units_per_hour: float | None = Field(
        description="units over the asked window, else over first to last unit"
    )
    pareto: list[ParetoRow]
    by_station: list[StationRates]
    by_shift: list[ShiftRates]
    timezone: str = Field(description="zone the shifts are counted in")


class InspectOut(BaseModel):
    verdict: str
    score: float
    defects: list[Defect]
    image_size_px: tuple[int, int] = Field(description="height, width")
    model_name: str
    model_version: str
    thresholds: dict[str, float]
    infer_ms: float
    heatmap_png_base64: str
    overlay_png_base64: str


class KeyIn(_In):
    name: Name
    role: Literal["viewer", "operator", "admin"]


class KeyOut(BaseModel):
    name: str
    role: str
    key_id: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreatedOut(BaseModel):
    name: str
    role: str
    token: str = Field(description="shown only now; store it, it cannot be read again")


class ReviewHistoryOut(BaseModel):
    unit_id: str
    reviews: list[ReviewOut]


def review_out(row: dict[str, Any]) -> ReviewOut:
    return ReviewOut(
        by=row["by"], at=row["at"], verdict=row["verdict"], defect_type=row["defect_type"],
        severity=row["severity"], type_severity=row["type_severity"], note=row["note"],
    )
