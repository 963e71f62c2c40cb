"""What a failed unit's defects are and how bad: the type classifier (when the model has one),
then the station's severity table (edge.line.severity_config), applied after qc.decision.decide;
and, when an operator reviews a unit with a type but no class, the class the table gives that type
(``reviewed_type_severity``).

A classifier is anything with the ``TypeClassifier`` shape; the model's own type head
(qc.defect_types.TypeClassifier) is one. Without a classifier every region stays of the one-class
type "defect" and is graded by the table's default rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from qc.decision import Decision, Defect
from qc.severity import Severity, SeverityTable, graded, worst


class TypeClassifier(Protocol):
    def classify(
        self, image_rgb: np.ndarray, heatmap: np.ndarray, defects: list[Defect], pixel_threshold: float
    ) -> list[Defect]:
        """Copies of ``defects`` with ``type`` and ``type_confidence`` set."""
        ...


@dataclass(frozen=True)
class DefectGrading:
    table: SeverityTable = field(default_factory=SeverityTable)
    classifier: TypeClassifier | None = None

    def apply(
        self, image_rgb: np.ndarray, heatmap: np.ndarray, decision: Decision, model: object = None
    ) -> Decision:
        """The decision with its defects typed and graded; a passed unit has none to grade.

        ``model`` is the model that made ``decision``: its type head (qc.inspection_model), if it
        has one, types the regions, so a model swapped meanwhile never types another model's
        regions. A classifier given to the grading itself takes its place; a bare detector (as in
        tests) has none."""
        if not decision.defects:
            return decision
        defects = decision.defects
        classifier = self.classifier if self.classifier is not None else getattr(model, "type_classifier", None)
        if classifier is not None:
            defects = classifier.classify(image_rgb, heatmap, defects, decision.pixel_threshold)
        return decision.model_copy(update={"defects": graded(defects, self.table)})


def reviewed_type_severity(table: SeverityTable, defect_type: str, defects: list[dict[str, Any]]) -> Severity:
    """The class ``table`` gives a unit an operator says is of ``defect_type``: each of the unit's
    stored regions graded as that type at the size measured at inspection (mm, where the station
    knew ``px_per_mm``; else the type's base class), the worst taken. A unit without regions (an
    operator's fail on a unit the model passed) takes the type's base class.

    Each region rather than only the largest: a reviewed type stands for all of the unit's regions
    (edge.units.defect_types), a region graded by the model counts at its own class the same way
    (the unit takes the worst), and a rule may set limits in length and in area, so "the largest"
    would have to pick one of the two; grading each region needs no such choice."""
    rule = table.rule(defect_type)
    return worst(rule.grade(d.get("length_mm"), d.get("area_mm2")) for d in defects) or rule.base
