"""The station and manager pages are served and call routes that exist with the fields they read."""

from tests.edge.conftest import T0


def test_station_page_has_review_buttons_lot_and_key_field(api):
    res = api.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    html = res.text
    for needle in ('id="confirm"', 'id="override"', 'id="op-key"', 'id="lot"', "localStorage",
                   "/review", "/api/v1/lots?open=true", 'href="/manager"'):
        assert needle in html, needle


def test_manager_page_is_served_and_links_the_exports(api):
    res = api.get("/manager")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    for needle in ("/api/v1/units.csv", "/report.pdf", "/api/v1/summary", "/api/v1/lots?limit="):
        assert needle in res.text, needle
    assert "/manager" not in api.get("/openapi.json").text  # pages stay out of the API schema


def test_favicon_is_no_content_not_a_404(api):
    """Browsers ask every page's origin for /favicon.ico; a 404 there is a console error."""
    res = api.get("/favicon.ico")
    assert res.status_code == 204 and res.content == b""


def test_the_fields_the_pages_read_exist(api, auth, add_unit):
    """The pages are plain JS with no type checks: pin the API fields they use."""
    unit = add_unit(T0, verdict="fail")
    lot = api.post("/api/v1/lots", json={"po": "PO-1", "style": "tee", "lot_size": 50},
                   headers=auth["operator"]).json()
    got = api.get("/api/v1/units?limit=12").json()["items"][0]
    assert {"id", "verdict", "final_verdict", "score", "captured_at", "defects", "thresholds",
            "timings", "model_name", "model_version", "review", "links"} <= got.keys()
    assert got["links"]["overlay"] == f"/api/v1/units/{unit.id}/overlay.png"
    reviewed = api.post(f"/api/v1/units/{unit.id}/review", json={"verdict": "pass", "note": "ok"},
                        headers=auth["operator"]).json()
    assert reviewed["final_verdict"] == "pass" and reviewed["review"]["by"] == "operator-key"
    assert {"id", "po", "style", "colour", "size", "lot_size", "opened_at", "opened_by", "open"} <= (
        api.get("/api/v1/lots", params={"open": "true", "station": "station-1", "limit": 1}).json()[0].keys())
    summary = api.get("/api/v1/summary").json()
    assert {"units", "yield", "first_pass_yield", "failed", "units_per_hour", "pareto",
            "last_unit_at"} <= summary.keys()
    report = api.get(f"/api/v1/lots/{lot['id']}/report").json()
    assert {"inspected", "failed"} <= report["units"].keys()
    assert {"verdict", "sampled", "sample_size", "classes"} <= report["aql"].keys()
    assert {"defect_class", "found", "plan"} <= report["aql"]["classes"][0].keys()
    assert "available" in report["fourpoint"] and "reason" in report["fourpoint"]


def test_review_without_a_key_is_401_and_with_a_viewer_key_403(api, auth, add_unit):
    """What the station page turns into its 'key refused' / 'not allowed' messages."""
    unit = add_unit(T0)
    assert api.post(f"/api/v1/units/{unit.id}/review", json={"verdict": "fail"}).status_code == 401
    res = api.post(f"/api/v1/units/{unit.id}/review", json={"verdict": "fail"}, headers=auth["viewer"])
    assert res.status_code == 403 and "operator" in res.json()["detail"]
