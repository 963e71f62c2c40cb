"""A reviewed defect type re-graded by the station's severity table (issue 15).

An operator who gives a type but no class makes the unit count under the class the station's table
gives that type at the unit's regions' sizes: in the unit's JSON, the lot's AQL, the summary's
Pareto and the units CSV alike. An operator's class still wins; a review with neither leaves the
class alone; the model's own regions keep the grades they were stored with.
"""

import csv
import io
from datetime import timedelta

import pytest

from edge.config import EdgeConfig
from tests.edge.conftest import T0

LOT = {"po": "PO-15", "style": "polo", "lot_size": 500}


def region(defect_type, severity, length_mm=None):
    return {"type": defect_type, "box": [10, 40, 30, 20], "area_px": 600, "area_mm2": None,
            "length_mm": length_mm, "peak_score": 0.9, "mean_score": 0.7,
            "type_confidence": 0.93, "severity": severity}


STAIN_MINOR = region("stain", "minor")  # the shipped table: a stain is minor below 10 mm


def counted(api, lot_id, unit_id):
    """Where a unit's class is read: its JSON, the lot's class counts and AQL sample, the lot's
    and the summary's severity split per type, and the units CSV."""
    unit = api.get(f"/api/v1/units/{unit_id}").json()
    report = api.get(f"/api/v1/lots/{lot_id}/report").json()
    summary = api.get("/api/v1/summary").json()
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(api.get("/api/v1/units.csv").text))}
    return {
        "unit": unit["severity"],
        "lot": report["defects_by_class"],
        "aql": report["aql"]["defects_in_sample"],
        "lot_types": {d["type"]: d["by_severity"] for d in report["defects_by_type"]},
        "pareto": {p["type"]: p["by_severity"] for p in summary["pareto"]},
        "csv": {c: rows[unit_id][c] for c in ("severity", "model_severity", "review_severity",
                                               "review_defect_type", "defect_types")},
    }


def split(critical=0, major=0, minor=0):
    return {"critical": critical, "major": major, "minor": minor}


@pytest.fixture
def stained(api, auth, add_unit):
    """An open lot with one failed unit, its one region typed a stain and graded minor."""
    lot = api.post("/api/v1/lots", json=LOT, headers=auth["operator"]).json()
    unit = add_unit(T0, verdict="fail", score=0.9, defects=[STAIN_MINOR])
    before = counted(api, lot["id"], unit.id)
    assert before == {
        "unit": "minor", "lot": split(minor=1), "aql": split(minor=1),
        "lot_types": {"stain": split(minor=1)}, "pareto": {"stain": split(minor=1)},
        "csv": {"severity": "minor", "model_severity": "minor", "review_severity": "",
                "review_defect_type": "", "defect_types": "stain"},
    }
    return lot["id"], unit


def test_a_type_only_review_counts_the_unit_under_the_tables_class_for_that_type(api, auth, stained):
    lot_id, unit = stained
    res = api.post(f"/api/v1/units/{unit.id}/review", json={"verdict": "fail", "defect_type": "hole"},
                   headers=auth["operator"])
    assert res.status_code == 200, res.text
    out = res.json()
    # A hole is major at any size: the unit is major now.
    assert out["severity"] == "major"
    # The operator chose no class, and the review says so; the table's class is recorded as such.
    assert (out["review"]["severity"], out["review"]["type_severity"]) == (None, "major")
    # The model's region keeps its type and grade.
    assert [(d["type"], d["severity"]) for d in out["defects"]] == [("stain", "minor")]

    assert counted(api, lot_id, unit.id) == {
        "unit": "major", "lot": split(major=1), "aql": split(major=1),
        "lot_types": {"hole": split(major=1)}, "pareto": {"hole": split(major=1)},
        "csv": {"severity": "major", "model_severity": "minor", "review_severity": "",
                "review_defect_type": "hole", "defect_types": "hole"},
    }
    (history,) = api.get(f"/api/v1/units/{unit.id}/reviews").json()["reviews"]
    assert (history["defect_type"], history["severity"], history["type_severity"]) == ("hole", None, "major")


def test_the_operators_class_still_wins_over_the_tables(api, auth, stained):
    lot_id, unit = stained
    out = api.post(f"/api/v1/units/{unit.id}/review",
                   json={"verdict": "fail", "defect_type": "hole", "severity": "minor"},
                   headers=auth["operator"]).json()
    assert out["severity"] == "minor"
    assert (out["review"]["severity"], out["review"]["type_severity"]) == ("minor", "major")
    assert counted(api, lot_id, unit.id) == {
        "unit": "minor", "lot": split(minor=1), "aql": split(minor=1),
        "lot_types": {"hole": split(minor=1)}, "pareto": {"hole": split(minor=1)},
        "csv": {"severity": "minor", "model_severity": "minor", "review_severity": "minor",
                "review_defect_type": "hole", "defect_types": "hole"},
    }


def test_a_review_with_neither_type_nor_class_leaves_the_class_alone(api, auth, stained):
    lot_id, unit = stained
    before = counted(api, lot_id, unit.id)
    out = api.post(f"/api/v1/units/{unit.id}/review", json={"verdict": "fail", "note": "seen it"},
                   headers=auth["operator"]).json()
    assert out["severity"] == "minor" and out["review"]["type_severity"] is None
    after = counted(api, lot_id, unit.id)
    assert after == before


def test_the_latest_review_decides_so_a_later_one_without_a_type_drops_the_tables_class(api, auth, stained):
    lot_id, unit = stained
    before = counted(api, lot_id, unit.id)
    url, op = f"/api/v1/units/{unit.id}/review", auth["operator"]
    assert api.post(url, json={"verdict": "fail", "defect_type": "hole"}, headers=op).json()["severity"] == "major"
    assert api.post(url, json={"verdict": "fail", "defect_type": "slub"}, headers=op).json()["severity"] == "minor"
    assert api.post(url, json={"verdict": "fail"}, headers=op).json()["severity"] == "minor"
    assert counted(api, lot_id, unit.id) == before
    history = api.get(f"/api/v1/units/{unit.id}/reviews").json()["reviews"]
    assert [(h["defect_type"], h["type_severity"]) for h in history] == [
        ("hole", "major"), ("slub", "minor"), (None, None)]
    # A passed unit has no class, whatever type it was given.
    out = api.post(url, json={"verdict": "pass", "defect_type": "hole"}, headers=op).json()
    assert out["severity"] is None and out["review"]["type_severity"] == "major"
    assert counted(api, lot_id, unit.id)["lot"] == split()


def test_the_reviewed_type_is_graded_at_the_units_region_sizes_by_the_stations_own_table(make_client, auth, add_unit):
    """Each region graded as the reviewed type at its measured length, the worst taken; a unit
    without regions takes the type's base class; the station's table, not the shipped one."""
    config = EdgeConfig.model_validate({"severity": {"types": {
        "slub": {"base": "minor", "major_from_mm": 5},
        "hole": {"base": "critical"},
    }}})
    api, op = make_client(config), auth["operator"]
    short = add_unit(T0, seed=1, verdict="fail", score=0.9,
                     defects=[region("stain", "minor", 3.0), region("stain", "minor", 4.0)])
    long = add_unit(T0 + timedelta(seconds=1), seed=2, verdict="fail", score=0.9,
                    defects=[region("stain", "minor", 3.0), region("stain", "minor", 7.0)])
    unmeasured = add_unit(T0 + timedelta(seconds=2), seed=3, verdict="fail", score=0.9,
                          defects=[region("stain", "minor")])
    passed = add_unit(T0 + timedelta(seconds=3), seed=4)  # the model saw nothing; the operator fails it
    graded = {
        unit.id: api.post(f"/api/v1/units/{unit.id}/review", json={"verdict": "fail", "defect_type": kind},
                          headers=op).json()["severity"]
        for unit, kind in ((short, "slub"), (long, "slub"), (unmeasured, "slub"), (passed, "hole"))
    }
    assert graded == {short.id: "minor", long.id: "major", unmeasured.id: "minor", passed.id: "critical"}
    # A type the table does not name takes its default rule (major).
    assert api.post(f"/api/v1/units/{short.id}/review", json={"verdict": "fail", "defect_type": "lint"},
                    headers=op).json()["severity"] == "major"


def test_a_review_under_the_type_heads_reserved_false_alarm_name_is_refused_naming_it(api, auth, stained):
    lot_id, unit = stained
    before = counted(api, lot_id, unit.id)
    response = api.post(f"/api/v1/units/{unit.id}/review", json={"verdict": "fail", "defect_type": "not_a_defect"},
                        headers=auth["operator"])
    assert response.status_code == 422 and "not_a_defect" in response.text and "reserved" in response.text
    assert api.get(f"/api/v1/units/{unit.id}").json()["review"] is None  # nothing recorded
    assert counted(api, lot_id, unit.id) == before
