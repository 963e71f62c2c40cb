"""The manager page in a real headless Chromium: a fresh station with nothing recorded yet, and a
station with units and a closed lot (figures, Pareto, the lot's AQL and 4-point cells, its PDF).

Both stations run with an external trigger, so the simulated line files no units of its own and
the page shows exactly what the test recorded."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from edge.storage.lots import NewLot
from edge.storage.store import UnitStore
from edge.units import NewUnit, Review
from qc.decision import Defect
from tests.browser.station_helpers import api_request

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NO_UNITS_FROM_THE_LINE = "trigger.mode=external"  # frames become units only on request
PX_PER_MM = 0.05  # 64-pixel-high units: 1.28 m of fabric each, enough for the 4-point system


def _loaded(page) -> None:
    """Wait until the page has drawn its lots table or given up with an error."""
    page.wait_for_function(
        "document.getElementById('error').textContent"
        " || !document.getElementById('lots').textContent.includes('loading')", timeout=15_000
    )


def _defect(kind: str, x: int, y: int, w: int, h: int) -> dict:
    return Defect(type=kind, box=(x, y, w, h), area_px=w * h, peak_score=0.9,
                  mean_score=0.7).model_dump(mode="json")


# (model verdict, regions found, operator's review as (verdict, defect type, severity) or None)
UNITS = [
    ("pass", [], None),
    ("fail", [_defect("hole", 20, 10, 6, 6)], None),
    ("pass", [], None),
    ("pass", [], None),
    ("fail", [_defect("stain", 5, 30, 24, 8)], None),
    ("pass", [], None),
    ("pass", [], None),
    ("fail", [_defect("stain", 5, 5, 10, 4), _defect("hole", 40, 40, 5, 5)], None),
    ("pass", [], None),
    ("pass", [], ("fail", "slub", "minor")),  # the operator saw what the model missed
    ("fail", [_defect("stain", 10, 10, 4, 4)], ("pass", None, None)),  # a false alarm
    ("pass", [], None),
]


def _graded(kind: str, severity: str, confidence: float) -> dict:
    return {**_defect(kind, 10, 10, 8, 8), "severity": severity, "type_confidence": confidence}


# Units typed by a classifier and graded by the station's severity table.
GRADED_UNITS = [
    ("fail", [_graded("slub", "minor", 0.93)], None),
    ("fail", [_graded("slub", "major", 0.91)], None),
    ("fail", [_graded("slub", "minor", 0.88), _graded("hole", "major", 0.97)], None),
    ("fail", [_graded("open_seam", "critical", 0.95)], None),
    ("fail", [_graded("defect", "major", 0.41)], None),  # unsure: stays "defect"
    ("fail", [_graded("stain", "minor", 0.9)], ("fail", None, "major")),  # the operator's class wins
    ("pass", [], None),
]


def _seed_closed_lot(data_dir: Path, units=UNITS) -> int:
    """Record ``units``, one every 15 minutes up to now, in a lot that is then closed; its id."""
    store = UnitStore(f"sqlite:///{data_dir / 'qc.db'}", data_dir)
    try:
        lot = store.lots.open(NewLot(station="station-1", po="PO-4711", style="polo", colour="navy",
                                     size="M", lot_size=50, opened_by="planner", fabric_width_mm=1500.0))
        start = datetime.now(timezone.utc) - timedelta(minutes=15 * len(units))
        image = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
        for i, (verdict, defects, review) in enumerate(units):
            at = start + timedelta(minutes=15 * i)
            unit = store.add(
                NewUnit(station="station-1", line="line-1", captured_at=at, decided_at=at,
                        verdict=verdict, score=0.9 if verdict == "fail" else 0.1, defects=defects,
                        model_name="dark_spot", model_version="1.0.0",
                        thresholds={"image": 0.5, "pixel": 0.5}, timings={"infer_ms": 10.0}),
                original_rgb=image, heatmap_rgb=image, overlay_rgb=image,
            )
            if review:
                final, defect_type, severity = review
                store.review(unit.id, Review(by="op", verdict=final, defect_type=defect_type,
                                               severity=severity))
        store.lots.close(lot.id, by="planner")
        return lot.id
    finally:
        store.close()


def test_a_fresh_station_shows_empty_states(tmp_path, start_station, pages, screenshots):
    base = start_station(tmp_path / "var", NO_UNITS_FROM_THE_LINE)
    page = pages.open(f"{base}/manager", height=1000)
    _loaded(page)
    page.wait_for_function("!document.getElementById('figures').textContent.includes('loading')")
    page.screenshot(path=str(screenshots / "qc_manager_fresh.png"), full_page=True)

    assert page.text_content("#error") == ""  # not "could not load: ..."
    assert page.text_content("#lots").strip() == "no lots yet"
    figures = dict(zip(page.locator("#figures span").all_text_contents(),
                       page.locator("#figures b").all_text_contents()))
    assert figures["units"] == "0" and figures["failed"] == "0"
    assert figures["yield"] == "–" and figures["units / hour"] == "–"  # no rate from no units
    assert page.text_content("#pareto").strip() == "no defects recorded"
    assert page.text_content("#trend").strip() == "no units yet"


def test_units_and_a_closed_lot_show_figures_pareto_aql_fourpoint_and_pdf(
    tmp_path, start_station, pages, screenshots
):
    data_dir = tmp_path / "var"
    lot_id = _seed_closed_lot(data_dir)
    base = start_station(data_dir, NO_UNITS_FROM_THE_LINE, f"station.px_per_mm={PX_PER_MM}")
    summary = api_request(f"{base}/api/v1/summary")
    report = api_request(f"{base}/api/v1/lots/{lot_id}/report")
    aql, four = report["aql"], report["fourpoint"]
    # What the seeded lot must give, so the cells below are checked against real figures.
    assert summary["units"] == len(UNITS) and summary["failed"] == 4
    assert aql["verdict"] == "reject"  # three major defects where the plan accepts none
    assert four["available"] and four["points_per_100_sq_yd"] > 0

    page = pages.open(f"{base}/manager", height=1000)
    _loaded(page)
    page.wait_for_selector("#trend svg")
    page.screenshot(path=str(screenshots / "qc_manager_lot.png"), full_page=True)
    assert page.text_content("#error") == ""

    figures = dict(zip(page.locator("#figures span").all_text_contents(),
                       page.locator("#figures b").all_text_contents()))
    assert figures["units"] == str(len(UNITS)) and figures["failed"] == "4"
    assert figures["yield"] == f"{100 * summary['yield']:.1f} %"
    assert len(page.locator("#trend svg rect").all()) == 12  # one bar per hour
    pareto_labels = page.locator("#pareto svg text[text-anchor='end']").all_text_contents()
    assert pareto_labels == [row["type"] for row in summary["pareto"]]
    assert set(pareto_labels) == {"hole", "stain", "slub"}

    row = page.locator(f"#lots tr[data-lot-id='{lot_id}']")
    cells = row.locator("td").all_text_contents()
    assert cells[0] == f"#{lot_id}"  # closed: no "(open)"
    assert cells[1:3] == ["PO-4711", "polo / navy / M"]
    assert cells[4] == f"{len(UNITS)} / 50 · 4 failed"
    aql_cell, four_cell = row.locator("td").nth(5), row.locator("td").nth(6)
    assert aql_cell.locator(".v").text_content() == "reject"
    assert f"{aql['sampled']}/{aql['sample_size']}" in aql_cell.text_content()
    for c in aql["classes"]:
        assert f"{c['defect_class']} {c['found']}/{c['plan']['accept']}" in aql_cell.text_content()
    assert four_cell.locator(".v").text_content() == four["verdict"]
    assert f"{four['points_per_100_sq_yd']:.1f} pts/100 yd²" in four_cell.text_content()
    assert f"limit {four['limit']:g}" in four_cell.text_content()

    link = row.locator("a", has_text="PDF")
    with page.context.expect_event("response", lambda r: r.url.endswith("/report.pdf")) as answer:
        link.click()
    response = answer.value
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    # The browser shows the PDF in its viewer, whose page is not the file: fetch the file itself.
    pdf = page.request.get(response.url).body()
    assert pdf.startswith(b"%PDF-")
    if shutil.which("pdftotext"):  # poppler-utils: read the PDF back, not only its first bytes
        (tmp_path / "lot.pdf").write_bytes(pdf)
        text = subprocess.run(["pdftotext", str(tmp_path / "lot.pdf"), "-"], capture_output=True,
                              text=True, check=True, timeout=30).stdout
        assert "PO-4711" in text


def test_typed_and_graded_units_show_by_class_in_the_pareto_and_the_aql(tmp_path, start_station, pages, screenshots):
    data_dir = tmp_path / "var"
    lot_id = _seed_closed_lot(data_dir, GRADED_UNITS)
    base = start_station(data_dir, NO_UNITS_FROM_THE_LINE)
    summary = api_request(f"{base}/api/v1/summary")
    report = api_request(f"{base}/api/v1/lots/{lot_id}/report")
    split = {r["type"]: r["by_severity"] for r in summary["pareto"]}
    assert split["slub"] == {"critical": 0, "major": 1, "minor": 2}
    assert split["stain"] == {"critical": 0, "major": 1, "minor": 0}  # reviewed major
    assert report["defects_by_class"] == {"critical": 1, "major": 4, "minor": 1}

    page = pages.open(f"{base}/manager", height=1000)
    _loaded(page)
    page.wait_for_selector("#pareto svg")
    page.screenshot(path=str(screenshots / "qc_manager_graded.png"), full_page=True)
    assert page.text_content("#error") == ""

    labels = page.locator("#pareto svg text[text-anchor='end']").all_text_contents()
    assert labels[0] == "slub" and set(labels) == {"slub", "hole", "open_seam", "defect", "stain"}
    bars = {}
    for row in page.locator("#pareto svg g[data-type]").all():
        bars[row.get_attribute("data-type")] = {
            rect.get_attribute("data-severity"): int(rect.get_attribute("data-count"))
            for rect in row.locator("rect").all()
        }
    assert bars == {t: {c: n for c, n in s.items() if n} for t, s in split.items()}
    slub = page.locator("#pareto g[data-type='slub'] text.pareto-figures").text_content()
    assert slub.endswith("1 major, 2 minor")
    widths = [float(r.get_attribute("width")) for r in page.locator("#pareto g[data-type='slub'] rect").all()]
    assert widths[1] == pytest.approx(2 * widths[0], rel=0.01)  # the minor part is twice the major
    assert "critical" in page.text_content("#pareto p")  # the legend

    aql_cell = page.locator(f"#lots tr[data-lot-id='{lot_id}'] td").nth(5)
    for c in report["aql"]["classes"]:
        assert f"{c['defect_class']} {c['found']}/{c['plan']['accept']}" in aql_cell.text_content()
    found = {c["defect_class"]: c["found"] for c in report["aql"]["classes"]}
    assert found == {"critical": 1, "major": 4, "minor": 1}
