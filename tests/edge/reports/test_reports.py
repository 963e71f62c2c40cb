"""Unit filters, review, summary and CSV through the API, on a real SQLite file."""

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import EdgeConfig
from tests.edge.conftest import T0  # 2024-05-06 07:08:09 UTC

HOLE = {"type": "hole", "box": [1, 2, 3, 4], "area_px": 12, "area_mm2": None, "length_mm": None,
        "peak_score": 0.9, "mean_score": 0.7}
STAIN = {**HOLE, "type": "stain"}


@pytest.fixture
def line(add_unit):
    """Eight units over two stations, three shifts (UTC clock) and a spread of scores."""
    specs = [  # (hours after T0, station, verdict, score, defects, style)
        (0, "s1", "pass", 0.10, [], "polo"),
        (1, "s1", "fail", 0.80, [HOLE, HOLE], "polo"),
        (2, "s1", "fail", 0.70, [STAIN], "tee"),
        (7, "s2", "pass", 0.20, [], "tee"),        # 14:08 UTC: shift B
        (8, "s2", "fail", 0.95, [HOLE, STAIN], "tee"),
        (9, "s2", "pass", 0.30, [], "tee"),
        (15, "s1", "pass", 0.05, [], "polo"),      # 22:08 UTC: shift C
        (16, "s1", "fail", 0.60, [STAIN], "polo"),
    ]
    return [add_unit(T0 + timedelta(hours=h), seed=i, station=st_, verdict=v, score=s,
                     defects=d, style=style)
            for i, (h, st_, v, s, d, style) in enumerate(specs)]


def ids(res):
    assert res.status_code == 200, res.text
    return {u["id"] for u in res.json()["items"]}


def test_filters_select_the_right_units(api, line):
    u = line
    get = lambda **q: ids(api.get("/api/v1/units", params=q))  # noqa: E731
    assert get(station="s2") == {u[3].id, u[4].id, u[5].id}
    assert get(verdict="fail") == {u[1].id, u[2].id, u[4].id, u[7].id}
    assert get(defect_type="hole") == {u[1].id, u[4].id}
    assert get(defect_type="stain", station="s1") == {u[2].id, u[7].id}
    assert get(min_score=0.6, max_score=0.8) == {u[1].id, u[2].id, u[7].id}
    assert get(style="polo", verdict="pass") == {u[0].id, u[6].id}
    assert get(line="line-1") == {r.id for r in u} and get(line="line-9") == set()
    start = (T0 + timedelta(hours=1)).isoformat()
    end = (T0 + timedelta(hours=8)).isoformat()
    assert get(**{"from": start, "to": end}) == {u[1].id, u[2].id, u[3].id}  # 'to' is exclusive
    # A zone in the query is honoured: 09:08+02:00 is 07:08 UTC.
    assert get(**{"from": "2024-05-06T09:08:09+02:00", "to": "2024-05-06T10:08:09+02:00"}) == {u[0].id}


def test_filtered_pages_are_stable(api, line, add_unit):
    first = api.get("/api/v1/units", params={"station": "s1", "limit": 2}).json()
    add_unit(T0 + timedelta(hours=20), station="s1")  # arrives on top meanwhile
    seen = [x["id"] for x in first["items"]]
    cursor = first["next"]
    while cursor:
        page = api.get("/api/v1/units", params={"station": "s1", "limit": 2, "cursor": cursor}).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next"]
    s1 = [r for r in line if r.station == "s1"]
    assert seen == [r.id for r in sorted(s1, key=lambda r: r.captured_at, reverse=True)]


@pytest.mark.parametrize("query, words", [
    ("from=2024-05-07&to=2024-05-06", "must be before"),
    ("min_score=0.9&max_score=0.1", "above max_score"),
    ("verdict=maybe", "verdict"),
    ("defect_type=a%25b", "defect_type"),
    ("defect_type=a,b", "defect_type"),
    ("min_score=nan", "min_score"),
    ("min_score=-1", "min_score"),
    ("from=yesterday", "from"),
    ("station=" + "x" * 200, "station"),
])
def test_invalid_filters_are_422_with_a_detail(api, query, words):
    for path in ("/api/v1/units", "/api/v1/units.csv", "/api/v1/summary"):
        res = api.get(f"{path}?{query}")
        assert res.status_code == 422, (path, query, res.text)
        assert words in str(res.json()["detail"])


def test_review_overrides_and_keeps_history(api, line, auth):
    unit = line[1]  # failed by the model with two holes
    url = f"/api/v1/units/{unit.id}/review"
    res = api.post(url, json={"verdict": "pass", "note": "lint, not a hole"}, headers=auth["operator"])
    assert res.status_code == 200
    out = res.json()
    assert out["verdict"] == "fail" and out["final_verdict"] == "pass"
    assert out["review"]["by"] == "operator-key" and out["review"]["note"] == "lint, not a hole"
    assert unit.id not in ids(api.get("/api/v1/units", params={"defect_type": "hole"}))
    assert unit.id in ids(api.get("/api/v1/units", params={"verdict": "pass"}))

    res = api.post(url, json={"verdict": "fail", "defect_type": "slub", "severity": "minor"},
                   headers=auth["admin"])
    assert res.json()["review"] == {"by": "admin-key", "at": res.json()["review"]["at"],
                                    "verdict": "fail", "defect_type": "slub", "severity": "minor",
                                    "type_severity": "minor", "note": None}
    assert ids(api.get("/api/v1/units", params={"defect_type": "slub"})) == {unit.id}
    history = api.get(f"/api/v1/units/{unit.id}/reviews").json()["reviews"]
    assert [(h["by"], h["verdict"], h["defect_type"]) for h in history] == [
        ("operator-key", "pass", None), ("admin-key", "fail", "slub")]
    assert api.get(f"/api/v1/units/{unit.id}").json()["review"]["defect_type"] == "slub"


@pytest.mark.parametrize("body", [{"verdict": "maybe"}, {"verdict": "pass", "severity": "huge"},
                                  {"verdict": "pass", "by": "someone-else"}, {}])
def test_bad_reviews_are_422_and_unknown_units_404(api, line, auth, body):
    res = api.post(f"/api/v1/units/{line[0].id}/review", json=body, headers=auth["operator"])
    assert res.status_code == 422
    res = api.post("/api/v1/units/nope/review", json={"verdict": "pass"}, headers=auth["operator"])
    assert res.status_code == 404 and res.json()["detail"] == "unit nope not found"
    assert api.get("/api/v1/units/nope/reviews").status_code == 404


def test_summary_figures(make_client, line, auth):
    config = EdgeConfig.model_validate({"reports": {"timezone": "UTC"}})
    api = make_client(config)
    # The operator passes unit 7 (a stain that was a shadow): not first-pass, but it yields.
    api.post(f"/api/v1/units/{line[7].id}/review", json={"verdict": "pass"}, headers=auth["operator"])
    s = api.get("/api/v1/summary").json()
    assert (s["units"], s["passed"], s["failed"]) == (8, 5, 3)
    assert s["yield"] == pytest.approx(5 / 8) and s["first_pass_yield"] == pytest.approx(4 / 8)
    assert s["units_per_hour"] == pytest.approx(8 / 16)  # first to last unit: 16 h
    # The Pareto counts units: unit 1's two holes are one holed unit.
    assert [(p["type"], p["count"]) for p in s["pareto"]] == [("hole", 2), ("stain", 2)]
    assert s["pareto"][0]["percent"] == pytest.approx(50) and s["pareto"][-1]["cumulative_percent"] == 100
    # Regions stored without a class count as major, as every failed unit did before classes.
    assert [p["by_severity"] for p in s["pareto"]] == [{"critical": 0, "major": 2, "minor": 0}] * 2
    stations = {r["station"]: (r["units"], r["passed"]) for r in s["by_station"]}
    assert stations == {"s1": (5, 3), "s2": (3, 2)}
    shifts = {r["shift"]: (r["units"], r["passed"], r["first_pass_yield"]) for r in s["by_shift"]}
    assert shifts == {"A": (3, 1, 1 / 3), "B": (3, 2, 2 / 3), "C": (2, 2, 0.5)}

    window = {"from": (T0 - timedelta(minutes=8)).isoformat(), "to": (T0 + timedelta(hours=4)).isoformat(),
              "station": "s1"}
    w = api.get("/api/v1/summary", params=window).json()
    assert (w["units"], w["passed"]) == (3, 1) and w["units_per_hour"] == pytest.approx(3 / (4 + 8 / 60))
    assert w["by_station"] == [{"station": "s1", "units": 3, "passed": 1, "yield": 1 / 3,
                                "first_pass_yield": 1 / 3}]
    empty = api.get("/api/v1/summary", params={"station": "none"}).json()
    assert empty["units"] == 0 and empty["yield"] is None and empty["pareto"] == []


def test_shifts_follow_the_configured_zone(make_client, line):
    # Dhaka is UTC+6: 07:08 UTC is 13:08 (A), 08:08 and 09:08 UTC are 14:08 and 15:08 (B).
    config = EdgeConfig.model_validate({"reports": {"timezone": "Asia/Dhaka"}})
    s = make_client(config).get("/api/v1/summary", params={"station": "s1"}).json()
    shifts = {r["shift"]: r["units"] for r in s["by_shift"]}
    assert shifts == {"A": 1, "B": 2, "C": 2}


def test_csv_export_streams_the_filtered_units(api, line, add_unit):
    add_unit(T0 + timedelta(hours=30), seed=9, station="s1", style="=HYPERLINK(\"x\")")
    res = api.get("/api/v1/units.csv", params={"station": "s1"})
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    assert "attachment" in res.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert len(rows) == 6 and {r["station"] for r in rows} == {"s1"}
    assert rows[0]["style"].startswith("'=")  # no formula injection into a spreadsheet
    by_id = {r["id"]: r for r in rows}
    assert by_id[line[1].id]["defect_types"] == "hole" and by_id[line[1].id]["defect_count"] == "2"
    assert datetime.fromisoformat(by_id[line[0].id]["captured_at"]) == T0
    many = api.get("/api/v1/units.csv").text.strip().splitlines()
    assert len(many) == 1 + 9


def test_csv_columns_keep_their_names_and_order(api, line):
    """Users' spreadsheets read the export by these names and positions."""
    header = next(csv.reader(io.StringIO(api.get("/api/v1/units.csv").text)))
    assert header == [
        "id", "station", "line", "lot", "style", "captured_at", "decided_at", "verdict",
        "final_verdict", "score", "defect_count", "defect_types", "model_name", "model_version",
        "review_by", "reviewed_at", "review_verdict", "review_defect_type", "review_severity",
        "review_note", "po", "colour", "size", "camera", "unit_ref",
        "severity", "model_severity", "type_confidence",
    ]


def test_csv_has_a_column_for_every_field_of_a_unit_it_does_not_leave_out():
    from edge.api.routes.units import CSV_COLUMNS, CSV_DERIVED, CSV_LEFT_OUT
    from edge.units import RECORD_FIELDS

    assert CSV_LEFT_OUT <= set(RECORD_FIELDS)
    kept = set(RECORD_FIELDS) - CSV_LEFT_OUT - {"defects"}  # defects: their count and types
    assert kept | {"defect_count", "defect_types", *CSV_DERIVED} == set(CSV_COLUMNS)


def test_csv_export_gives_each_units_class_the_models_class_and_type_confidence(api, add_unit, auth):
    slub = {**HOLE, "type": "slub", "severity": "minor", "type_confidence": 0.91}
    hole = {**HOLE, "severity": "major", "type_confidence": 0.78}
    graded = add_unit(T0, seed=1, verdict="fail", score=0.9, defects=[slub, hole])
    reviewed = add_unit(T0 + timedelta(seconds=1), seed=2, verdict="fail", score=0.9, defects=[slub])
    untyped = add_unit(T0 + timedelta(seconds=2), seed=3, verdict="fail", score=0.9, defects=[HOLE])
    passed = add_unit(T0 + timedelta(seconds=3), seed=4)
    api.post(f"/api/v1/units/{reviewed.id}/review", json={"verdict": "fail", "severity": "critical"},
             headers=auth["operator"])
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(api.get("/api/v1/units.csv").text))}
    columns = ("severity", "model_severity", "type_confidence", "defect_types")
    assert [rows[graded.id][c] for c in columns] == ["major", "major", "0.780", "hole slub"]
    assert [rows[reviewed.id][c] for c in columns] == ["critical", "minor", "0.910", "slub"]  # review wins
    assert [rows[untyped.id][c] for c in columns] == ["major", "", "", "hole"]  # stored before classes
    assert [rows[passed.id][c] for c in columns] == ["", "", "", ""]


def test_csv_export_of_more_than_a_page(api, store, add_unit):
    for i in range(520):
        add_unit(T0 + timedelta(seconds=i), seed=i % 3)
    rows = list(csv.DictReader(io.StringIO(api.get("/api/v1/units.csv").text)))
    assert len(rows) == 520 and len({r["id"] for r in rows}) == 520


texts = st.one_of(st.none(), st.text(max_size=140))
times = st.one_of(st.none(), st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(
    lambda d: d.isoformat()), st.text(max_size=30))
numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True).map(str),
                    st.text(max_size=10))
queries = st.fixed_dictionaries({}, optional={
    "from": times, "to": times, "station": texts, "line": texts, "lot": texts, "style": texts,
    "verdict": st.one_of(st.sampled_from(["pass", "fail", "needs_review"]), texts),
    "defect_type": texts, "min_score": numbers, "max_score": numbers,
    "limit": st.one_of(st.integers(-5, 600).map(str), texts), "cursor": texts,
}).map(lambda q: {k: v for k, v in q.items() if v is not None})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries)
def test_no_query_makes_a_5xx(api, line, query):
    for path in ("/api/v1/units", "/api/v1/summary"):
        res = api.get(path, params=query)
        assert res.status_code in (200, 422), (path, query, res.status_code, res.text)
        if res.status_code == 422:
            assert res.json()["detail"]


def test_shifts_in_a_half_hour_zone(make_client, add_unit):
    # Kolkata is UTC+5:30: 00:08 UTC is 05:38 (shift C), 00:38 UTC is 06:08 (shift A).
    day = datetime(2024, 5, 6, tzinfo=timezone.utc)
    add_unit(day + timedelta(minutes=8))
    add_unit(day + timedelta(minutes=38), seed=1)
    config = EdgeConfig.model_validate({"reports": {"timezone": "Asia/Kolkata"}})
    s = make_client(config).get("/api/v1/summary").json()
    assert {r["shift"]: r["units"] for r in s["by_shift"]} == {"A": 1, "B": 0, "C": 1}


def test_shift_config_is_checked():
    from edge.config import load_config
    from qc.overrides import ConfigError

    with pytest.raises(ConfigError, match="at 00:00 the shift is none"):
        load_config(None, ['reports.shifts=[{"name": "day", "start": "06:00", "end": "22:00"}]'])
    with pytest.raises(ConfigError, match="unknown time zone"):
        load_config(None, ["reports.timezone=Mars/Olympus"])
