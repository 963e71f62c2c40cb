"""The rules for which types and which class a unit counts under (edge.units)."""

import pytest

from edge.units import defect_types, graded_defect_types, unit_severity


def region(defect_type: str, severity: str | None) -> dict:
    return {"type": defect_type, "box": [0, 0, 4, 4], "severity": severity}


HOLE_MAJOR, SLUB_MINOR, SLUB_MAJOR = region("hole", "major"), region("slub", "minor"), region("slub", "major")


def test_a_failed_unit_counts_under_its_worst_graded_class():
    assert unit_severity("fail", [SLUB_MINOR], None) == "minor"
    assert unit_severity("fail", [SLUB_MINOR, HOLE_MAJOR], None) == "major"
    assert unit_severity("fail", [region("open_seam", "critical"), SLUB_MINOR], None) == "critical"


def test_the_operators_class_wins_over_the_graded_ones():
    assert unit_severity("fail", [HOLE_MAJOR], "minor") == "minor"
    assert unit_severity("fail", [SLUB_MINOR], "critical") == "critical"


def test_the_tables_class_for_a_reviewed_type_wins_over_the_graded_ones_but_not_the_operators():
    # The model graded a stain minor; the operator said "hole", which the station's table makes major.
    stain = region("stain", "minor")
    assert unit_severity("fail", [stain], None, "major") == "major"
    assert unit_severity("fail", [HOLE_MAJOR], None, "minor") == "minor"  # the reviewed type's, either way
    assert unit_severity("fail", [stain], "minor", "major") == "minor"  # the operator's class wins
    assert unit_severity("fail", [], None, "critical") == "critical"
    assert unit_severity("pass", [stain], None, "major") is None
    assert graded_defect_types("fail", [stain], "hole", None, "major") == [("hole", "major")]
    assert graded_defect_types("fail", [stain], "hole", "minor", "major") == [("hole", "minor")]


def test_ungraded_and_region_less_failures_count_as_major_as_before():
    assert unit_severity("fail", [region("defect", None)], None) == "major"
    assert unit_severity("fail", [{"type": "defect", "box": [0, 0, 1, 1]}], None) == "major"  # stored before classes
    assert unit_severity("fail", [], None) == "major"  # an operator's fail on a unit the model passed


def test_a_passed_unit_has_no_class():
    assert unit_severity("pass", [HOLE_MAJOR], None) is None
    assert graded_defect_types("pass", [HOLE_MAJOR], None, None) == []


def test_each_type_takes_the_worst_class_of_its_own_regions():
    defects = [SLUB_MINOR, HOLE_MAJOR, SLUB_MAJOR, region("stain", "minor")]
    assert graded_defect_types("fail", defects, None, None) == [
        ("slub", "major"), ("hole", "major"), ("stain", "minor"),
    ]
    assert [t for t, _ in graded_defect_types("fail", defects, None, None)] == defect_types("fail", defects, None)


@pytest.mark.parametrize(
    "review_type, review_class, expected",
    [
        ("stain", None, [("stain", "major")]),  # the reviewed type, of the unit's class
        ("stain", "minor", [("stain", "minor")]),
        (None, "critical", [("slub", "critical"), ("hole", "critical")]),  # the reviewed class for every type
    ],
)
def test_a_review_stands_for_the_units_types_and_class(review_type, review_class, expected):
    assert graded_defect_types("fail", [SLUB_MINOR, HOLE_MAJOR], review_type, review_class) == expected


def test_a_failure_without_regions_is_one_generic_major_defect():
    assert graded_defect_types("fail", [], None, None) == [("defect", "major")]
