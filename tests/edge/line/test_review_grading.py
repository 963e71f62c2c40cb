"""The class the station's severity table gives a type an operator reviewed a unit as
(edge.line.defect_grading.reviewed_type_severity)."""

from edge.line.defect_grading import reviewed_type_severity
from edge.line.severity_config import shipped_severity_table
from qc.severity import SeverityRule, SeverityTable


def region(length_mm=None, area_mm2=None, severity="minor"):
    return {"type": "stain", "box": [0, 0, 4, 4], "area_px": 16, "length_mm": length_mm,
            "area_mm2": area_mm2, "peak_score": 0.9, "mean_score": 0.7, "severity": severity}


TABLE = SeverityTable(types={
    "slub": SeverityRule(base="minor", major_from_mm=5, critical_from_mm=40),
    "patch": SeverityRule(base="minor", major_from_mm2=100),
})


def test_each_region_is_graded_as_the_reviewed_type_and_the_worst_taken():
    assert reviewed_type_severity(TABLE, "slub", [region(3), region(4)]) == "minor"
    assert reviewed_type_severity(TABLE, "slub", [region(3), region(7)]) == "major"
    assert reviewed_type_severity(TABLE, "slub", [region(50), region(7)]) == "critical"
    # By area where the rule limits area: the longest region is not the one that counts.
    assert reviewed_type_severity(TABLE, "patch", [region(30, 20), region(8, 120)]) == "major"


def test_the_models_grades_do_not_count_only_the_sizes():
    assert reviewed_type_severity(TABLE, "slub", [region(3, severity="critical")]) == "minor"


def test_unmeasured_regions_and_a_unit_without_regions_take_the_base_class():
    assert reviewed_type_severity(TABLE, "slub", [region()]) == "minor"
    assert reviewed_type_severity(TABLE, "slub", []) == "minor"
    assert reviewed_type_severity(TABLE, "lint", []) == "major"  # the default rule
    assert reviewed_type_severity(TABLE, "defect", [region(3)]) == "major"  # the one-class type too


def test_the_shipped_table_makes_a_hole_major_at_any_size():
    assert reviewed_type_severity(shipped_severity_table(), "hole", [region(0.5)]) == "major"
    assert reviewed_type_severity(shipped_severity_table(), "stain", [region(0.5)]) == "minor"
