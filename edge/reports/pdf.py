"""A lot's report as a PDF a QC manager can file or send: ``lot_report_pdf(store, lot, report)``.

``report`` is what ``edge.reports.lot.lot_report`` returns, so the PDF and the JSON report never
disagree. The failed units are listed with a thumbnail of their stored overlay, downscaled to a
small JPEG so a lot with hundreds of failures still gives a PDF of a few megabytes.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import cv2
from fpdf import FPDF

from edge.reports.pictures import unit_picture
from edge.storage.files import UnsafePath
from edge.storage.query import UnitFilter
from edge.storage.store import UnitStore
from edge.units import Lot, UnitRecord, graded_defect_types, unit_severity
from qc.decision import ONE_CLASS
from qc.severity import SEVERITIES

MAX_FAILED_LISTED = 200  # beyond this the table says how many more; the CSV has them all
THUMB_WIDTH_PX = 240
THUMB_WIDTH_MM = 32.0
VERDICT_COLOURS = {
    "accept": (26, 127, 55), "pass": (26, 127, 55),
    "reject": (198, 40, 40), "fail": (198, 40, 40),
    "incomplete": (120, 120, 120), "n/a": (120, 120, 120),
}


def _text(value: Any) -> str:
    """The core PDF fonts know Latin-1 only; anything else prints as '?' rather than failing."""
    text = "-" if value is None or value == "" else str(value)
    return text.encode("latin-1", "replace").decode("latin-1")


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def overlay_thumbnail(store: UnitStore, unit_id: str) -> bytes | None:
    """The unit's overlay as a small JPEG, or None when its file is gone or unreadable."""
    try:
        path = unit_picture(store, unit_id, "overlay")
    except UnsafePath:
        return None
    if path is None:
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    h, w = image.shape[:2]
    if w > THUMB_WIDTH_PX:
        image = cv2.resize(image, (THUMB_WIDTH_PX, max(1, round(h * THUMB_WIDTH_PX / w))),
                           interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return jpeg.tobytes() if ok else None


class _ReportPDF(FPDF):
    def __init__(self, title: str):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.report_title = title
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(title)
        self.set_creator("garment QC station")

    def footer(self):
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(120)
        self.cell(0, 5, _text(f"{self.report_title} - page {self.page_no()}/{{nb}}"), align="C")

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font("Helvetica", "B", 12)
        self.set_text_color(0)
        self.cell(0, 7, _text(text), new_x="LMARGIN", new_y="NEXT")

    def line_text(self, text: str, size: int = 10) -> None:
        self.set_font("Helvetica", size=size)
        self.set_text_color(0)
        self.multi_cell(0, 5, _text(text), new_x="LMARGIN", new_y="NEXT")

    def grid(self, header: list[str], rows: list[list[Any]], widths: list[float]) -> None:
        self.set_font("Helvetica", "B", 9)
        self.set_fill_color(230)
        for text, w in zip(header, widths):
            self.cell(w, 6, _text(text), border=1, fill=True)
        self.ln()
        self.set_font("Helvetica", size=9)
        for row in rows:
            for text, w in zip(row, widths):
                self.cell(w, 6, _text(text), border=1)
            self.ln()

    def verdict_box(self, label: str, verdict: str, size: int = 28) -> None:
        self.set_font("Helvetica", "B", size)
        self.set_text_color(255)
        self.set_fill_color(*VERDICT_COLOURS.get(verdict, (60, 60, 60)))
        self.cell(0, size * 0.55, _text(f"{label}{verdict.upper()}"), align="C", fill=True,
                  new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0)


def _header(pdf: _ReportPDF, lot: Lot, report: dict[str, Any]) -> None:
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _text(f"Lot report - PO {lot.po}"), new_x="LMARGIN", new_y="NEXT")
    units = report["units"]
    pdf.line_text(
        f"Station {lot.station}   |   lot #{lot.id}   |   style {_text(lot.style)}   |   colour "
        f"{_text(lot.colour)}   |   size {_text(lot.size)}   |   lot size {lot.lot_size}"
    )
    pdf.line_text(
        f"Opened {_when(lot.opened_at)} by {lot.opened_by}   |   "
        + (f"closed {_when(lot.closed_at)} by {lot.closed_by}" if lot.closed_at else "still open")
        + f"   |   printed {_when(datetime.now(timezone.utc))}"
    )
    pdf.line_text(
        f"Units inspected {units['inspected']}: passed {units['passed']}, failed {units['failed']}, "
        f"needs review {units['needs_review']}, reviewed by an operator {units['reviewed']}"
    )
    pdf.ln(2)
    pdf.verdict_box("LOT ", report["verdict"])


def _aql(pdf: _ReportPDF, aql: dict[str, Any]) -> None:
    pdf.heading(f"ISO 2859-1 sampling, inspection level {aql['inspection_level']}, "
                f"sample {aql['sampled']} of {aql['sample_size']} units")
    rows = []
    for c in aql["classes"]:
        plan = c["plan"]
        letter = plan["plan_letter"]
        if plan["code_letter"] != letter:
            letter = f"{plan['code_letter']} -> {letter}"
        rows.append([c["defect_class"], f"{c['aql']:g}", letter, plan["sample_size"],
                     f"{plan['accept']} / {plan['reject']}", c["found"],
                     "accept" if c["accepted"] else "reject"])
    pdf.grid(["class", "AQL", "plan letter", "n", "Ac / Re", "found", "verdict"], rows,
             [28, 18, 30, 20, 28, 20, 28])
    pdf.ln(1)
    reason = f" ({aql['reason']})" if aql.get("reason") else ""
    pdf.line_text(f"AQL verdict: {aql['verdict']}{reason}")


def _fourpoint(pdf: _ReportPDF, four: dict[str, Any]) -> None:
    pdf.heading("ASTM D5430 4-point system")
    if not four.get("available"):
        pdf.line_text(f"Not computed: {four['reason']}")
        return
    pdf.grid(
        ["defects", "points", "length (yd)", "width (in)", "pts / 100 sq yd", "limit", "verdict"],
        [[four["defects"], four["total_points"], f"{four['inspected_length_yd']:.2f}",
          f"{four['width_in']:.1f}", f"{four['points_per_100_sq_yd']:.1f}", f"{four['limit']:g}",
          four["verdict"]]],
        [22, 20, 26, 24, 32, 20, 28],
    )


def _failed_units(pdf: _ReportPDF, store: UnitStore, lot: Lot) -> None:
    failed = store.iter_units(UnitFilter(lot=str(lot.id), verdict="fail"))
    pdf.heading("Failed units (newest first)")
    widths = [THUMB_WIDTH_MM + 2, 50, 14, 24, 0]
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(230)
    for text, w in zip(["overlay", "unit / captured", "score", "verdict, class", "defects, review"], widths):
        pdf.cell(w or pdf.epw - sum(widths), 6, text, border=1, fill=True)
    pdf.ln()
    listed = 0
    for record in failed:
        if listed == MAX_FAILED_LISTED:
            pdf.line_text("... and more failed units; the CSV export lists them all.")
            break
        _failed_row(pdf, store, record, widths)
        listed += 1
    if listed == 0:
        pdf.line_text("No failed units in this lot.")


def _failed_row(pdf: _ReportPDF, store: UnitStore, r: UnitRecord, widths: list[float]) -> None:
    thumb = overlay_thumbnail(store, r.id)
    aspect = (r.height_px / r.width_px) if r.height_px and r.width_px else 0.75
    row_h = max(12.0, THUMB_WIDTH_MM * aspect + 2)
    if pdf.will_page_break(row_h):
        pdf.add_page()
    x, y = pdf.get_x(), pdf.get_y()
    pdf.rect(x, y, widths[0], row_h)
    if thumb is not None:
        pdf.image(io.BytesIO(thumb), x=x + 1, y=y + 1, w=THUMB_WIDTH_MM)
    else:
        pdf.set_xy(x, y + 1)
        pdf.set_font("Helvetica", size=7)
        pdf.cell(widths[0], 4, "overlay missing")
    final = r.final_verdict or r.verdict
    review = "-"
    if r.review_verdict:
        review = (f"reviewed {r.review_verdict} by {r.review_by}"
                  + (f", type {r.review_defect_type}" if r.review_defect_type else "")
                  + (f", {r.review_severity}" if r.review_severity else "")
                  + (f": {r.review_note}" if r.review_note else ""))
    severity = unit_severity(final, r.defects, r.review_severity, r.review_type_severity)
    cells = [
        f"{r.id}\n{_when(r.captured_at)}",
        f"{r.score:.3f}",
        f"model {r.verdict}\nfinal {final}\nclass {severity or '-'}",
        f"{len(r.defects)} region(s): {_model_types(r.defects) or '-'}\n{review}",
    ]
    pdf.set_font("Helvetica", size=7)  # a unit id (32 characters) fits one line
    cx = x + widths[0]
    for text, w in zip(cells, widths[1:]):
        w = w or pdf.epw - sum(widths)
        pdf.rect(cx, y, w, row_h)
        pdf.set_xy(cx, y + 1)
        pdf.multi_cell(w, 4, _text(text), max_line_height=4)
        cx += w
    pdf.set_xy(x, y + row_h)


def _model_types(defects: list[dict[str, Any]]) -> str:
    """The model's types with their classes and the classifier's lowest confidence, e.g.
    "hole major p=0.97, slub minor"."""
    parts = []
    for defect_type, severity in graded_defect_types("fail", defects, None, None):
        confidences = [d["type_confidence"] for d in defects
                       if d.get("type", ONE_CLASS) == defect_type and d.get("type_confidence") is not None]
        parts.append(f"{defect_type} {severity}" + (f" p={min(confidences):.2f}" if confidences else ""))
    return ", ".join(parts)


def lot_report_pdf(store: UnitStore, lot: Lot, report: dict[str, Any], *, compress: bool = True) -> bytes:
    title = f"Lot {lot.id} (PO {lot.po})"
    pdf = _ReportPDF(_text(title))
    pdf.set_compression(compress)  # off in tests, so the page text can be read from the bytes
    pdf.alias_nb_pages()
    pdf.add_page()
    _header(pdf, lot, report)
    _aql(pdf, report["aql"])
    _fourpoint(pdf, report["fourpoint"])
    if report["defects_by_type"]:
        pdf.heading("Defects by type")
        pdf.grid(["type", "count", "%", "cumulative %", *SEVERITIES],
                 [[d["type"], d["count"], f"{d['percent']:.1f}", f"{d['cumulative_percent']:.1f}",
                   *(d["by_severity"][c] for c in SEVERITIES)]
                  for d in report["defects_by_type"]], [50, 16, 16, 24, 18, 18, 18])
    _failed_units(pdf, store, lot)
    return bytes(pdf.output())
