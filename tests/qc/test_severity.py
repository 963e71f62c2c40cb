import numpy as np
import pytest
from pydantic import ValidationError

from qc.decision import Defect, find_defects
from qc.severity import SeverityRule, SeverityTable, grade, graded, worst

TABLE = SeverityTable.model_validate(
    {
        "default": {"base": "major"},
        "types": {
            "hole": {"base": "major"},
            "slub": {"base": "minor", "major_from_mm": 5},
            "stain": {"base": "minor", "major_from_mm2": 50, "critical_from_mm2": 400},
            "open_seam": {"base": "major", "critical_from_mm": 25},
        },
    }
)


def defect(defect_type: str = "defect", length_mm: float | None = None, area_mm2: float | None = None) -> Defect:
    return Defect(
        type=defect_type, box=(0, 0, 4, 4), area_px=16, length_mm=length_mm, area_mm2=area_mm2,
        peak_score=0.9, mean_score=0.7,
    )


def test_a_hole_is_major_at_any_size():
    assert grade(defect("hole", length_mm=0.5, area_mm2=0.1), TABLE) == "major"
    assert grade(defect("hole", length_mm=80, area_mm2=900), TABLE) == "major"
    assert grade(defect("hole"), TABLE) == "major"


def test_a_slub_is_minor_below_its_limit_and_major_from_it():
    assert grade(defect("slub", length_mm=4.9), TABLE) == "minor"
    assert grade(defect("slub", length_mm=5.0), TABLE) == "major"
    assert grade(defect("slub", length_mm=30), TABLE) == "major"


def test_without_lengths_the_base_class_holds():
    assert grade(defect("slub"), TABLE) == "minor"
    assert grade(defect("stain"), TABLE) == "minor"
    assert grade(defect("open_seam"), TABLE) == "major"


def test_area_limits_raise_the_class_step_by_step():
    assert grade(defect("stain", area_mm2=49), TABLE) == "minor"
    assert grade(defect("stain", area_mm2=50), TABLE) == "major"
    assert grade(defect("stain", area_mm2=400), TABLE) == "critical"


def test_length_limit_makes_a_long_open_seam_critical():
    assert grade(defect("open_seam", length_mm=24), TABLE) == "major"
    assert grade(defect("open_seam", length_mm=25), TABLE) == "critical"


def test_unknown_types_and_the_one_class_take_the_default_rule():
    assert grade(defect("defect", length_mm=1), TABLE) == "major"
    assert grade(defect("weft_curling", length_mm=1), TABLE) == "major"
    lenient = SeverityTable(default=SeverityRule(base="minor", major_from_mm=10))
    assert grade(defect("defect", length_mm=3), lenient) == "minor"
    assert grade(defect("defect", length_mm=12), lenient) == "major"


def test_the_empty_table_keeps_todays_rule_every_failure_is_major():
    assert grade(defect("slub", length_mm=1), SeverityTable()) == "major"


def test_graded_sets_severity_on_copies_and_keeps_the_rest():
    found = [defect("slub", length_mm=2), defect("hole", length_mm=2)]
    out = graded(found, TABLE)
    assert [d.severity for d in out] == ["minor", "major"]
    assert [d.severity for d in found] == [None, None]
    assert out[0].model_dump(exclude={"severity"}) == found[0].model_dump(exclude={"severity"})


def test_lengths_come_from_the_camera_scale_of_find_defects():
    heatmap = np.zeros((100, 100), np.float32)
    heatmap[50, 10:50] = 1.0  # a 40 px line
    [line] = find_defects(heatmap, 0.5, px_per_mm=4.0)  # 10 mm
    [unmeasured] = find_defects(heatmap, 0.5)
    assert grade(line.model_copy(update={"type": "slub"}), TABLE) == "major"
    assert grade(unmeasured.model_copy(update={"type": "slub"}), TABLE) == "minor"
    [short] = find_defects(heatmap, 0.5, px_per_mm=10.0)  # 4 mm
    assert grade(short.model_copy(update={"type": "slub"}), TABLE) == "minor"


@pytest.mark.parametrize("name", ["broken-end", "2nd_pass", "hole spot", ""])
def test_a_type_name_that_is_not_an_identifier_is_refused_by_name(name):
    with pytest.raises(ValidationError) as err:
        SeverityTable.model_validate({"types": {name: {"base": "minor"}}})
    assert repr(name) in str(err.value)
    assert "not a valid identifier" in str(err.value)


def test_the_one_class_is_graded_by_default_not_by_a_key():
    with pytest.raises(ValidationError, match="default"):
        SeverityTable.model_validate({"types": {"defect": {"base": "minor"}}})


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"base": "minor", "major_from_mm": 10, "critical_from_mm": 5}, "critical_from_mm .* below"),
        ({"base": "major", "major_from_mm": 5}, "major already"),
        ({"base": "critical", "critical_from_mm2": 5}, "critical at any size"),
        ({"base": "severe"}, "base"),
        ({"base": "minor", "major_from_mm": -1}, "major_from_mm"),
        ({"base": "minor", "major_from": 5}, "major_from"),
    ],
)
def test_a_rule_that_cannot_be_meant_is_refused(rule, message):
    with pytest.raises(ValidationError, match=message):
        SeverityRule.model_validate(rule)


def test_worst_orders_critical_major_minor_and_ignores_ungraded():
    assert worst(["minor", None, "major"]) == "major"
    assert worst(["minor", "critical"]) == "critical"
    assert worst([None, None]) is None
    assert worst([]) is None
