"""A unit, as the station knows it: one definition of each of its forms, and of a lot.

``NewUnit`` is what the pipeline decided, ``UnitRecord`` a stored unit (the decided unit's fields
and what storing and reviewing add; a row of edge.storage.tables' ``units``, mapped by
edge.storage.store), ``Review`` an operator's review, and ``UnitOut`` the unit's JSON: the REST
API's and every output's (MQTT, webhook) alike.
``defect_types`` is the one rule for which defect types a unit counts under, ``unit_severity`` for
the class a unit counts under in a lot's AQL, and ``graded_defect_types`` pairs each type with its
class for the Pareto. ``Lot`` is a production order as stored and as the API gives it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from qc.decision import ONE_CLASS, Defect
from qc.severity import Severity, worst

# A failed unit nothing graded (an operator's fail, a unit stored before grading): the class every
# failed unit counted under before the station graded defects.
UNGRADED_SEVERITY: Severity = "major"


def defect_types(final_verdict: str, defects: list[dict], review_defect_type: str | None) -> list[str]:
    """A passed unit has no defects; a reviewed type stands for the unit's one defect; a failed
    unit the model saw nothing on (an operator's override) has one of the generic type. One entry
    per type, in the order the model found them: a Pareto counts units with a type, not regions."""
    if final_verdict == "pass":
        return []
    if review_defect_type:
        return [review_defect_type]
    return list(dict.fromkeys(d.get("type", ONE_CLASS) for d in defects)) or [ONE_CLASS]


def unit_severity(
    final_verdict: str,
    defects: list[dict],
    review_severity: str | None,
    review_type_severity: str | None = None,
) -> Severity | None:
    """The class a unit counts under in a lot's AQL: the operator's where reviewed, else the class
    the station's severity table gave the operator's reviewed type (``review_type_severity``,
    graded when the review was recorded: edge.services.Services.review), else the worst the
    station graded among its defects, else major. None for a passed unit."""
    if final_verdict == "pass":
        return None
    return (  # type: ignore[return-value]
        review_severity
        or review_type_severity
        or worst(d.get("severity") for d in defects)
        or UNGRADED_SEVERITY
    )


def graded_defect_types(
    final_verdict: str,
    defects: list[dict],
    review_defect_type: str | None,
    review_severity: str | None,
    review_type_severity: str | None = None,
) -> list[tuple[str, Severity]]:
    """``defect_types`` with each type's class, for the Pareto's severity split: the worst graded
    among the model's regions of that type; a reviewed type or class stands for the unit's, so
    every type of a reviewed unit takes the unit's class (``unit_severity``)."""
    types = defect_types(final_verdict, defects, review_defect_type)
    severity = unit_severity(final_verdict, defects, review_severity, review_type_severity)
    if not types or severity is None:
        return []
    if review_defect_type or review_severity:
        return [(t, severity) for t in types]
    return [
        (t, worst(d.get("severity") for d in defects if d.get("type", ONE_CLASS) == t) or UNGRADED_SEVERITY)
        for t in types
    ]


# Keyword-only, so a stored unit can extend the decided one and each field sits where it reads
# best whatever its default: the units CSV takes its columns in this order (edge.api.routes.units).
@dataclass(frozen=True, kw_only=True)
class NewUnit:
    """What the pipeline decided about a unit: the fields every form of a unit starts from."""

    station: str
    line: str
    lot: str | None = None
    style: str | None = None
    captured_at: datetime
    decided_at: datetime
    verdict: str
    score: float
    defects: list[dict[str, Any]]
    model_name: str
    model_version: str
    thresholds: dict[str, Any]
    timings: dict[str, float]
    camera: str | None = None
    unit_ref: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnitRecord(NewUnit):
    """A stored unit: the decided unit, and what storing it and reviewing it add."""

    id: str
    original_path: str
    heatmap_path: str
    overlay_path: str
    height_px: int | None = None
    width_px: int | None = None
    # The operator's latest review, and the verdict that follows (the model's until reviewed).
    review_by: str | None = None
    reviewed_at: datetime | None = None
    review_verdict: str | None = None
    review_defect_type: str | None = None
    review_severity: str | None = None
    review_note: str | None = None
    # The class the station's severity table gave the reviewed defect type at the unit's regions'
    # sizes when the review was recorded (None without a reviewed type, and for reviews recorded
    # before the station graded reviewed types): the unit's class when the operator gave no class.
    review_type_severity: str | None = None
    final_verdict: str | None = None
    # The rest of the station's lot context when the unit was stored.
    po: str | None = None
    colour: str | None = None
    size: str | None = None


# A stored unit's fields by name: the columns edge.storage.store reads a record from.
RECORD_FIELDS = tuple(f.name for f in fields(UnitRecord))


@dataclass(frozen=True)
class Review:
    """An operator's review of a unit, as given (the store records with it the class the station's
    table gives a reviewed type, edge.storage.store.UnitStore.review)."""

    by: str
    verdict: str
    defect_type: str | None = None
    severity: str | None = None
    note: str | None = None


class ReviewOut(BaseModel):
    by: str
    at: datetime | None
    verdict: str
    defect_type: str | None = None
    severity: str | None = Field(None, description="the class the operator gave; null: none given")
    type_severity: str | None = Field(
        None,
        description="the class the station's severity table gives `defect_type` at the unit's "
        "regions' sizes, graded when the review was recorded (null without a type); a failed unit "
        "counts under it when the operator gave no `severity`",
    )
    note: str | None


class UnitLinks(BaseModel):
    image: str
    heatmap: str
    overlay: str


class UnitOut(BaseModel):
    id: str
    station: str
    line: str
    lot: str | None
    style: str | None
    po: str | None = Field(None, description="purchase order of the station's lot at the time")
    colour: str | None = Field(None, description="colour of the station's lot at the time")
    size: str | None = Field(None, description="size of the station's lot at the time")
    camera: str | None = Field(None, description="the station's camera that took the unit")
    unit_ref: str | None = Field(
        None, description="the unit's own id (barcode) where an external trigger gave one"
    )
    captured_at: datetime
    decided_at: datetime
    verdict: str = Field(description="the model's verdict: pass | fail | needs_review")
    final_verdict: str = Field(description="the operator's verdict where reviewed, else the model's")
    severity: Severity | None = Field(
        None,
        description="the class a failed unit counts under in its lot's AQL: the operator's reviewed "
        "class, else the station's table's class for the reviewed type (review.type_severity), else "
        "the worst graded among its defects, else major; null for a passed unit",
    )
    score: float
    defects: list[Defect]
    model_name: str
    model_version: str
    thresholds: dict[str, float]
    timings: dict[str, float] = Field(description="milliseconds per stage")
    review: ReviewOut | None = Field(description="the latest review; history at .../reviews")
    links: UnitLinks

    @classmethod
    def from_record(cls, r: UnitRecord) -> UnitOut:
        base = f"/api/v1/units/{r.id}"
        review = None
        if r.review_verdict is not None:
            review = ReviewOut(
                by=r.review_by or "", at=r.reviewed_at, verdict=r.review_verdict,
                defect_type=r.review_defect_type, severity=r.review_severity,
                type_severity=r.review_type_severity, note=r.review_note,
            )
        final = r.final_verdict or r.verdict
        made = {
            "final_verdict": final,
            "severity": unit_severity(final, r.defects, r.review_severity, r.review_type_severity),
            "defects": [Defect.model_validate(d) for d in r.defects],
            "review": review,
            "links": UnitLinks(
                image=f"{base}/image.jpg", heatmap=f"{base}/heatmap.png", overlay=f"{base}/overlay.png"
            ),
        }
        # Every other field of the JSON is the record's field of that name, as it is.
        copied = {name: getattr(r, name) for name in cls.model_fields if name not in made}
        return cls(**copied, **made)


class Lot(BaseModel):
    """A production order open on one station at a time (edge.storage.lots keeps them)."""

    model_config = ConfigDict(frozen=True)

    id: int
    station: str
    po: str
    style: str
    colour: str | None
    size: str | None
    lot_size: int
    fabric_width_mm: float | None
    opened_at: datetime
    opened_by: str
    closed_at: datetime | None
    closed_by: str | None

    @computed_field
    @property
    def open(self) -> bool:
        return self.closed_at is None
