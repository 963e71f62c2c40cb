"""The lot report as a PDF: a real PDF with the lot's figures and its failed units' thumbnails."""

import re
import shutil
import subprocess
from datetime import timedelta

from edge.config import EdgeConfig
from edge.reports.lot import lot_report, lot_verdict
from edge.reports.pdf import lot_report_pdf, overlay_thumbnail
from edge.reports.pictures import unit_picture
from tests.edge.conftest import T0

LOT = {"po": "PO-4711", "style": "polo", "colour": "navy", "size": "M", "lot_size": 500}
HOLE = {"type": "hole", "box": [10, 20, 30, 10], "area_px": 300, "area_mm2": None, "length_mm": None,
        "peak_score": 0.9, "mean_score": 0.7}


def _lot(api, auth, add_unit, verdicts, lot=LOT):
    made = api.post("/api/v1/lots", json=lot, headers=auth["operator"]).json()
    units = [add_unit(T0 + timedelta(seconds=i), seed=i, verdict=v, score=0.9 if v == "fail" else 0.1,
                      defects=[HOLE] if v == "fail" else []) for i, v in enumerate(verdicts)]
    return made, units


def _page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def test_route_gives_a_pdf_and_404_for_an_unknown_lot(api, auth, add_unit):
    lot, _ = _lot(api, auth, add_unit, ["pass", "fail", "fail"])
    res = api.get(f"/api/v1/lots/{lot['id']}/report.pdf")
    assert res.status_code == 200
    assert res.headers["content-type"] == "application/pdf"
    assert res.content.startswith(b"%PDF-") and res.content.rstrip().endswith(b"%%EOF")
    assert _page_count(res.content) >= 1
    assert api.get("/api/v1/lots/999/report.pdf").status_code == 404
    if shutil.which("pdftotext"):  # poppler reads the compressed streams too
        text = subprocess.run(["pdftotext", "-", "-"], input=res.content, capture_output=True,
                              check=True).stdout.decode()
        # 3 of the 50 sample units, none at a rejection number yet: the verdict waits.
        assert "PO-4711" in text and "LOT INCOMPLETE" in text and "plan letter" in text


def test_pdf_reads_like_the_json_report(api, auth, add_unit, store):
    lot, units = _lot(api, auth, add_unit, ["pass", "fail", "fail", "pass"])
    api.post(f"/api/v1/units/{units[2].id}/review",
             json={"verdict": "fail", "severity": "critical", "defect_type": "stain", "note": "oil"},
             headers=auth["operator"])
    record = store.lots.get(lot["id"])
    report = lot_report(store, record, EdgeConfig())
    pdf = lot_report_pdf(store, record, report, compress=False)
    assert pdf.startswith(b"%PDF-")
    assert b"PO-4711" in pdf and b"polo" in pdf and b"navy" in pdf
    # A critical defect with AQL 0 rejects the lot whatever the sample holds.
    assert lot_verdict(report) == "reject" and b"LOT REJECT" in pdf
    assert b"plan letter" in pdf and b"Ac / Re" in pdf
    assert b"Not computed: the 4-point system needs" in pdf  # no px_per_mm in the default config
    assert units[1].id.encode() in pdf and units[2].id.encode() in pdf
    assert units[0].id.encode() not in pdf  # passed units are not listed
    assert b"reviewed fail by operator-key, type stain, critical: oil" in pdf
    assert pdf.count(b"/Subtype /Image") == 2  # one thumbnail per failed unit
    assert b"/DCTDecode" in pdf  # stored as JPEG


def test_thumbnail_is_a_small_jpeg_and_missing_files_are_tolerated(store, add_unit):
    unit = add_unit(T0, verdict="fail")
    jpeg = overlay_thumbnail(store, unit.id)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    unit_picture(store, unit.id, "overlay").unlink()
    assert overlay_thumbnail(store, unit.id) is None


def test_missing_overlay_still_gives_a_pdf(api, auth, add_unit, store):
    lot, units = _lot(api, auth, add_unit, ["fail"])
    unit_picture(store, units[0].id, "overlay").unlink()
    res = api.get(f"/api/v1/lots/{lot['id']}/report.pdf")
    assert res.status_code == 200 and res.content.startswith(b"%PDF-")
    record = store.lots.get(lot["id"])
    pdf = lot_report_pdf(store, record, lot_report(store, record, EdgeConfig()), compress=False)
    assert b"overlay missing" in pdf and b"/Subtype /Image" not in pdf


def test_non_latin_text_does_not_break_the_pdf(api, auth, add_unit):
    lot, _ = _lot(api, auth, add_unit, ["fail"], lot={**LOT, "po": "PO-Ünï-日本"})
    res = api.get(f"/api/v1/lots/{lot['id']}/report.pdf")
    assert res.status_code == 200 and res.content.startswith(b"%PDF-")


def test_pdf_lists_types_with_their_classes_and_each_units_class(api, auth, add_unit, store):
    made = api.post("/api/v1/lots", json=LOT, headers=auth["operator"]).json()
    slub = {**HOLE, "type": "slub", "severity": "minor", "type_confidence": 0.91}
    hole = {**HOLE, "severity": "major", "type_confidence": 0.88}
    units = [add_unit(T0 + timedelta(seconds=i), seed=i, verdict="fail", score=0.9, defects=d)
             for i, d in enumerate([[slub], [slub, hole], [{**HOLE, "severity": "major"}]])]
    record = store.lots.get(made["id"])
    report = lot_report(store, record, EdgeConfig())
    pdf = lot_report_pdf(store, record, report, compress=False)
    assert b"critical" in pdf and b"minor" in pdf  # the type table's class columns
    regions = re.findall(rb"region\\\(s\\\): ([^()]*)\) ?Tj", pdf)  # "(" ")" are escaped in a PDF string
    assert sorted(regions) == [b"hole major", b"slub minor p=0.91", b"slub minor p=0.91, hole major p=0.88"]
    assert pdf.count(b"class minor") == 1 and pdf.count(b"class major") == 2  # each unit's worst
    assert units[0].id.encode() in pdf
