"""How bad a defect is: a severity table maps each defect type to a class (critical, major, minor),
raised by size limits in mm where the station knows its camera scale.

A rule's ``base`` class holds at any size, and is all there is when the size is unknown (no
``px_per_mm``: qc.decision.find_defects then measures no mm). The ``*_from_mm`` limits only ever
raise the class: "a slub is minor below 5 mm, else major" is ``{base: minor, major_from_mm: 5}``,
"a hole is major at any size" is ``{base: major}``. The table's ``default`` rule grades the types
it does not name, and the one-class detector's ``"defect"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from qc.decision import ONE_CLASS, Defect
from qc.strict import Strict

Severity = Literal["critical", "major", "minor"]
SEVERITIES: tuple[Severity, ...] = ("critical", "major", "minor")  # worst first


def worst(severities: Iterable[str | None]) -> Severity | None:
    """The worst of the classes given (None and unknown names ignored); None when there is none."""
    found = {s for s in severities if s in SEVERITIES}
    return next((s for s in SEVERITIES if s in found), None)


class SeverityRule(Strict):
    base: Severity = Field(description="the class at any size, and when the size is unknown")
    major_from_mm: float | None = Field(
        None, gt=0, description="length (mm) from which the defect is at least major"
    )
    critical_from_mm: float | None = Field(
        None, gt=0, description="length (mm) from which the defect is critical"
    )
    major_from_mm2: float | None = Field(
        None, gt=0, description="area (mm²) from which the defect is at least major"
    )
    critical_from_mm2: float | None = Field(
        None, gt=0, description="area (mm²) from which the defect is critical"
    )

    @model_validator(mode="after")
    def _limits_rise(self) -> SeverityRule:
        for unit in ("mm", "mm2"):
            major, critical = getattr(self, f"major_from_{unit}"), getattr(self, f"critical_from_{unit}")
            if major is not None and critical is not None and critical < major:
                raise ValueError(
                    f"critical_from_{unit} ({critical}) is below major_from_{unit} ({major})"
                )
        if self.base == "major" and (self.major_from_mm or self.major_from_mm2):
            raise ValueError("major_from_* limits raise a minor base; this rule is major already")
        if self.base == "critical" and any(
            (self.major_from_mm, self.major_from_mm2, self.critical_from_mm, self.critical_from_mm2)
        ):
            raise ValueError("a critical base is critical at any size: size limits cannot raise it")
        return self

    def grade(self, length_mm: float | None, area_mm2: float | None) -> Severity:
        reached: list[Severity] = [self.base]
        for size, unit in ((length_mm, "mm"), (area_mm2, "mm2")):
            if size is None:
                continue
            for severity in ("major", "critical"):
                limit = getattr(self, f"{severity}_from_{unit}")
                if limit is not None and size >= limit:
                    reached.append(severity)
        return worst(reached) or self.base


class SeverityTable(Strict):
    default: SeverityRule = Field(
        default_factory=lambda: SeverityRule(base="major"),
        description=f"the rule for types the table does not name, and for {ONE_CLASS!r}",
    )
    types: dict[str, SeverityRule] = Field(
        default_factory=dict, description="defect type (an identifier, e.g. broken_end) -> its rule"
    )

    @field_validator("types")
    @classmethod
    def _type_names(cls, types: dict[str, SeverityRule]) -> dict[str, SeverityRule]:
        for name in types:
            if not name.isidentifier():
                raise ValueError(
                    f"severity type {name!r} is not a valid identifier (letters, digits and _, "
                    "not starting with a digit), so no classifier can name it"
                )
            if name == ONE_CLASS:
                raise ValueError(
                    f"severity type {ONE_CLASS!r} is graded by the table's `default` rule; "
                    "set that one instead"
                )
        return types

    def rule(self, defect_type: str) -> SeverityRule:
        return self.types.get(defect_type, self.default)


def grade(defect: Defect, table: SeverityTable) -> Severity:
    """The defect's class: its type's rule at its size (sizes in mm are None without px_per_mm)."""
    return table.rule(defect.type).grade(defect.length_mm, defect.area_mm2)


def graded(defects: list[Defect], table: SeverityTable) -> list[Defect]:
    """Copies of ``defects`` with ``severity`` set from the table."""
    return [d.model_copy(update={"severity": grade(d, table)}) for d in defects]
