"""Lots through the API: open, close, units recording the open lot, and the lot report."""

from datetime import timedelta

import pytest

from edge.config import EdgeConfig
from tests.edge.conftest import T0

LOT = {"po": "PO-4711", "style": "polo", "colour": "navy", "size": "M", "lot_size": 500}


def test_open_close_and_one_open_lot_per_station(api, auth, store):
    op = auth["operator"]
    res = api.post("/api/v1/lots", json=LOT, headers=op)
    assert res.status_code == 201
    lot = res.json()
    assert lot["station"] == "station-1" and lot["open"] and lot["opened_by"] == "operator-key"
    res = api.post("/api/v1/lots", json={**LOT, "po": "PO-2"}, headers=op)
    assert res.status_code == 409 and "PO-4711" in res.json()["detail"]
    other = api.post("/api/v1/lots", json={**LOT, "station": "station-2"}, headers=op)
    assert other.status_code == 201  # another station may have its own
    assert [x["id"] for x in api.get("/api/v1/lots", params={"open": True}).json()] == [
        other.json()["id"], lot["id"]]

    closed = api.post(f"/api/v1/lots/{lot['id']}/close", headers=op)
    assert closed.status_code == 200 and not closed.json()["open"]
    assert closed.json()["closed_by"] == "operator-key"
    assert api.post(f"/api/v1/lots/{lot['id']}/close", headers=op).status_code == 409
    assert api.post("/api/v1/lots/999/close", headers=op).status_code == 404
    assert api.get("/api/v1/lots/999").status_code == 404
    assert api.get("/api/v1/lots/999/report").status_code == 404
    assert api.post("/api/v1/lots", json={**LOT, "po": "PO-3"}, headers=op).status_code == 201
    assert store.lots.current("station-1").po == "PO-3"


@pytest.mark.parametrize("body", [{**LOT, "lot_size": 1}, {**LOT, "po": ""}, {**LOT, "extra": 1},
                                  {k: v for k, v in LOT.items() if k != "style"}])
def test_bad_lots_are_422(api, auth, body):
    assert api.post("/api/v1/lots", json=body, headers=auth["operator"]).status_code == 422


def test_units_record_the_open_lot_of_their_station(api, auth, add_unit):
    before = add_unit(T0)
    lot = api.post("/api/v1/lots", json=LOT, headers=auth["operator"]).json()
    inside = add_unit(T0 + timedelta(seconds=1))
    elsewhere = add_unit(T0 + timedelta(seconds=2), station="station-2")
    api.post(f"/api/v1/lots/{lot['id']}/close", headers=auth["operator"])
    after = add_unit(T0 + timedelta(seconds=3))
    assert (before.lot, inside.lot, elsewhere.lot, after.lot) == (None, str(lot["id"]), None, None)
    assert inside.style == "polo"
    got = api.get("/api/v1/units", params={"lot": str(lot["id"])}).json()["items"]
    assert [u["id"] for u in got] == [inside.id] and got[0]["style"] == "polo"


def _lot_with_units(api, auth, add_unit, *, lot=LOT, verdicts):
    made = api.post("/api/v1/lots", json=lot, headers=auth["operator"]).json()
    hole = {"type": "hole", "box": [10, 40, 30, 20], "area_px": 600, "area_mm2": None,
            "length_mm": None, "peak_score": 0.9, "mean_score": 0.7}
    units = [add_unit(T0 + timedelta(seconds=i), seed=i, verdict=v, score=0.9 if v == "fail" else 0.1,
                      defects=[hole] if v == "fail" else [])
             for i, v in enumerate(verdicts)]
    return made, units


def test_lot_report_counts_and_classes(api, auth, add_unit):
    lot, units = _lot_with_units(api, auth, add_unit, verdicts=["pass", "fail", "fail", "pass", "fail"])
    op = auth["operator"]
    api.post(f"/api/v1/units/{units[2].id}/review", json={"verdict": "fail", "severity": "critical",
                                                          "defect_type": "stain"}, headers=op)
    api.post(f"/api/v1/units/{units[4].id}/review", json={"verdict": "pass"}, headers=op)
    api.post(f"/api/v1/units/{units[0].id}/review",
             json={"verdict": "fail", "severity": "minor", "defect_type": "slub"}, headers=op)
    report = api.get(f"/api/v1/lots/{lot['id']}/report").json()
    assert report["lot"]["po"] == "PO-4711"
    assert report["units"] == {"inspected": 5, "passed": 2, "failed": 3, "needs_review": 0, "reviewed": 3}
    assert report["defects_by_class"] == {"critical": 1, "major": 1, "minor": 1}
    assert sorted((d["type"], d["count"]) for d in report["defects_by_type"]) == [
        ("hole", 1), ("slub", 1), ("stain", 1)]
    four = report["fourpoint"]
    assert four["available"] is False
    assert "station.px_per_mm" in four["reason"] and "fabric width" in four["reason"]


def test_lot_report_aql(api, auth, add_unit):
    # Lot of 500 at level II: code letter H, n = 50; at AQL 2.5 major Ac 3 / Re 4.
    lot, _ = _lot_with_units(api, auth, add_unit, verdicts=["fail"] * 4 + ["pass"] * 46)
    aql = api.get(f"/api/v1/lots/{lot['id']}/report").json()["aql"]
    assert aql["sample_size"] == 50 and aql["sampled"] == 50
    assert aql["defects_in_sample"] == {"critical": 0, "major": 4, "minor": 0}
    assert aql["verdict"] == "reject"
    major = next(c for c in aql["classes"] if c["defect_class"] == "major")
    assert (major["plan"]["code_letter"], major["plan"]["accept"], major["plan"]["reject"]) == ("H", 3, 4)
    api.post(f"/api/v1/lots/{lot['id']}/close", headers=auth["operator"])

    # Three majors in the sample pass; a fourth after the sample is not part of it.
    lot2, units = _lot_with_units(api, auth, add_unit, verdicts=["fail"] * 3 + ["pass"] * 47 + ["fail"])
    aql = api.get(f"/api/v1/lots/{lot2['id']}/report").json()["aql"]
    assert aql["defects_in_sample"]["major"] == 3 and aql["verdict"] == "accept"
    # A critical defect (AQL 0) in the sample rejects the lot.
    api.post(f"/api/v1/units/{units[0].id}/review", json={"verdict": "fail", "severity": "critical"},
             headers=auth["operator"])
    aql = api.get(f"/api/v1/lots/{lot2['id']}/report").json()["aql"]
    assert aql["defects_in_sample"] == {"critical": 1, "major": 2, "minor": 0}
    assert aql["verdict"] == "reject"


def test_lot_report_aql_waits_for_the_sample(api, auth, add_unit):
    lot, _ = _lot_with_units(api, auth, add_unit, verdicts=["pass"] * 3)
    aql = api.get(f"/api/v1/lots/{lot['id']}/report").json()["aql"]
    assert aql["verdict"] == "incomplete" and "3 of the 50" in aql["reason"]


def test_the_json_lot_report_carries_the_lot_verdict(make_client, auth, add_unit):
    """The overall verdict the PDF prints: reject when either method rejects, else the AQL's."""
    config = EdgeConfig.model_validate({"station": {"px_per_mm": 0.1}})
    api = make_client(config)
    waiting, _ = _lot_with_units(api, auth, add_unit, verdicts=["pass"] * 3)
    assert api.get(f"/api/v1/lots/{waiting['id']}/report").json()["verdict"] == "incomplete"
    api.post(f"/api/v1/lots/{waiting['id']}/close", headers=auth["operator"])
    # The sample is still incomplete, but the 4-point system fails the fabric: the lot is rejected.
    holed, _ = _lot_with_units(api, auth, add_unit, lot={**LOT, "po": "PO-2", "fabric_width_mm": 1500},
                               verdicts=["fail", "pass"])
    report = api.get(f"/api/v1/lots/{holed['id']}/report").json()
    assert (report["aql"]["verdict"], report["fourpoint"]["verdict"]) == ("incomplete", "fail")
    assert report["verdict"] == "reject"


def test_lot_report_fourpoint(make_client, auth, add_unit):
    config = EdgeConfig.model_validate({"station": {"px_per_mm": 0.1}})  # 48 px tall = 480 mm
    api = make_client(config)
    lot, _ = _lot_with_units(api, auth, add_unit, lot={**LOT, "fabric_width_mm": 1500},
                             verdicts=["fail", "pass"])
    four = api.get(f"/api/v1/lots/{lot['id']}/report").json()["fourpoint"]
    assert four["available"], four
    # Two units of 48 px at 0.1 px/mm: 960 mm of fabric. One hole 30 px = 300 mm (> 1 in): 4 points.
    assert four["inspected_length_yd"] == pytest.approx(960 / 914.4)
    assert four["defects"] == 1 and four["total_points"] == 4
    assert four["points_per_100_sq_yd"] == pytest.approx(4 * 3600 / (960 / 914.4 * 1500 / 25.4))
    assert four["verdict"] == "fail" and four["limit"] == 40


def test_a_lone_surrogate_in_a_json_body_is_a_422_that_names_the_field(api, auth):
    """Pydantic refuses the string; FastAPI's own 422 echoed the input back and failed to encode
    the lone surrogate, so the client got a 500 instead."""
    body = b'{"po": "a\\ud800", "style": "polo", "colour": "navy", "size": "M", "lot_size": 500}'
    res = api.post("/api/v1/lots", content=body,
                   headers={**auth["operator"], "Content-Type": "application/json"})
    assert res.status_code == 422
    (error,) = res.json()["detail"]
    assert error["loc"] == ["body", "po"] and error["type"] == "string_unicode"
    assert error["input"] == "a\\ud800"  # echoed, with the surrogate written as an escape


def _region(defect_type, severity, confidence=0.97):
    return {"type": defect_type, "box": [10, 40, 30, 20], "area_px": 600, "area_mm2": None,
            "length_mm": None, "peak_score": 0.9, "mean_score": 0.7,
            "type_confidence": confidence, "severity": severity}


def test_lot_report_counts_each_unit_under_its_graded_class_and_types_with_their_split(api, auth, add_unit):
    made = api.post("/api/v1/lots", json=LOT, headers=auth["operator"]).json()
    graded = [
        [_region("slub", "minor")],
        [_region("slub", "major"), _region("hole", "major")],
        [_region("slub", "minor"), _region("stain", "minor")],
        [_region("open_seam", "critical")],
        [_region("defect", "major", confidence=0.4)],  # the classifier was unsure: the default rule
    ]
    units = [add_unit(T0 + timedelta(seconds=i), seed=i, verdict="fail", score=0.9, defects=d)
             for i, d in enumerate(graded)]
    report = api.get(f"/api/v1/lots/{made['id']}/report").json()
    assert report["defects_by_class"] == {"critical": 1, "major": 2, "minor": 2}
    assert report["aql"]["defects_in_sample"] == {"critical": 1, "major": 2, "minor": 2}
    assert report["aql"]["verdict"] == "reject"  # a critical defect in the sample (AQL 0)
    by_type = {d["type"]: (d["count"], d["by_severity"]) for d in report["defects_by_type"]}
    assert by_type == {
        "slub": (3, {"critical": 0, "major": 1, "minor": 2}),
        "hole": (1, {"critical": 0, "major": 1, "minor": 0}),
        "stain": (1, {"critical": 0, "major": 0, "minor": 1}),
        "open_seam": (1, {"critical": 1, "major": 0, "minor": 0}),
        "defect": (1, {"critical": 0, "major": 1, "minor": 0}),
    }

    # The operator's review wins: the seam was only a loose thread end (minor), the unsure region a hole.
    op = auth["operator"]
    api.post(f"/api/v1/units/{units[3].id}/review", json={"verdict": "fail", "severity": "minor"}, headers=op)
    api.post(f"/api/v1/units/{units[4].id}/review", json={"verdict": "fail", "defect_type": "hole"}, headers=op)
    report = api.get(f"/api/v1/lots/{made['id']}/report").json()
    assert report["defects_by_class"] == {"critical": 0, "major": 2, "minor": 3}
    by_type = {d["type"]: (d["count"], d["by_severity"]) for d in report["defects_by_type"]}
    assert by_type["hole"] == (2, {"critical": 0, "major": 2, "minor": 0})
    assert by_type["open_seam"] == (1, {"critical": 0, "major": 0, "minor": 1})
    assert "defect" not in by_type
    got = api.get("/api/v1/units", params={"defect_type": "slub"}).json()["items"]
    assert {u["id"] for u in got} == {units[0].id, units[1].id, units[2].id}
    assert got[0]["defects"][0]["type_confidence"] == 0.97 and got[0]["defects"][0]["severity"]
