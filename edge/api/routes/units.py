"""Units: list, CSV, detail, images, review and review history."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, StreamingResponse

from edge.api.auth import Operator, Reader
from edge.api.dependencies import FilterDep, ServicesDep, StoreDep
from edge.api.schemas import ReviewHistoryOut, ReviewIn, UnitOut, UnitPage, review_out
from edge.reports.pictures import unit_picture
from edge.storage.files import UnsafePath
from edge.storage.query import UnitFilter
from edge.storage.retention import removed_by_retention
from edge.storage.store import BadCursor, UnitStore, UnknownUnit
from edge.text_fields import Text
from edge.units import RECORD_FIELDS, Review, UnitRecord, defect_types, unit_severity
from qc.severity import worst

router = APIRouter(prefix="/api/v1", tags=["units"])
# A unit's pictures never change once made (the colour heatmap and overlay are rendered on first
# request from files that never change, edge.reports.pictures).
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}

# The units CSV has a column for every field of a stored unit (edge.units.RECORD_FIELDS, in its
# order) but those it leaves out: the pictures' paths and sizes (the API links the pictures) and
# the thresholds and timings (JSON a spreadsheet cannot use), and the class the station's table
# gave a reviewed type (it is the `severity` column where `review_severity` is empty; a column in
# the middle would move the ones users' spreadsheets read by position). A field added to the unit
# gets its column without a second list to remember.
CSV_LEFT_OUT = frozenset(
    {"original_path", "heatmap_path", "overlay_path", "height_px", "width_px", "thresholds", "timings",
     "review_type_severity"}
)
# Where columns stand apart from the record's order, as users' spreadsheets have them: the
# defects as their count and types, the final verdict beside the model's, the id first, the
# camera and unit_ref last.
_CSV_IN_PLACE_OF = {"defects": ("defect_count", "defect_types"), "verdict": ("verdict", "final_verdict")}
_CSV_FIRST, _CSV_LAST = ("id",), ("camera", "unit_ref")
# Columns a spreadsheet reads that are worked out from the unit rather than stored as its fields,
# after all the others (added with defect types and classes; older exports end at unit_ref): the
# class the unit counts under, the worst class the station graded, the least sure type.
CSV_DERIVED = ("severity", "model_severity", "type_confidence")


def _csv_columns() -> tuple[str, ...]:
    placed = {*_CSV_FIRST, *_CSV_LAST, *(c for cs in _CSV_IN_PLACE_OF.values() for c in cs)}
    middle: list[str] = []
    for name in RECORD_FIELDS:
        if name in _CSV_IN_PLACE_OF:
            middle.extend(_CSV_IN_PLACE_OF[name])
        elif name not in CSV_LEFT_OUT and name not in placed:
            middle.append(name)
    return (*_CSV_FIRST, *middle, *_CSV_LAST, *CSV_DERIVED)


CSV_COLUMNS = _csv_columns()


def _unit_file(store: UnitStore, unit_id: str, kind: str, media_type: str) -> FileResponse:
    try:
        path = unit_picture(store, unit_id, kind)
    except UnsafePath as exc:
        raise HTTPException(403, detail=f"unit {unit_id}: {exc}") from exc
    if path is None:
        record = store.get(unit_id)
        if record is None:
            raise HTTPException(404, detail=f"unit {unit_id} not found")
        if removed_by_retention(store.data_dir, record.original_path):
            raise HTTPException(404, detail=f"unit {unit_id}: image removed by retention")
        raise HTTPException(404, detail=f"unit {unit_id} has no {kind} file on disk")
    return FileResponse(path, media_type=media_type, headers=IMMUTABLE)


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ runs as a formula in a spreadsheet; a quote makes it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(r: UnitRecord) -> list[str]:
    final = r.final_verdict or r.verdict
    types = sorted(defect_types(final, r.defects, r.review_defect_type))
    confidences = [d["type_confidence"] for d in r.defects if d.get("type_confidence") is not None]
    values = {
        **{c: getattr(r, c, None) for c in CSV_COLUMNS},
        "captured_at": r.captured_at.isoformat(),
        "decided_at": r.decided_at.isoformat(),
        "reviewed_at": r.reviewed_at.isoformat() if r.reviewed_at else None,
        "final_verdict": r.final_verdict or r.verdict,
        "score": f"{r.score:.6g}",
        "defect_count": len(r.defects),
        "defect_types": " ".join(types),
        # The class the unit counts under (the review's where given, else the table's for a
        # reviewed type), the worst the station graded among the model's regions, and the type
        # classifier's least sure region.
        "severity": unit_severity(final, r.defects, r.review_severity, r.review_type_severity),
        "model_severity": worst(d.get("severity") for d in r.defects),
        "type_confidence": f"{min(confidences):.3f}" if confidences else None,
    }
    return [_cell(values[c]) for c in CSV_COLUMNS]


def csv_lines(store: UnitStore, unit_filter: UnitFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for n, record in enumerate(store.iter_units(unit_filter), start=1):
        writer.writerow(_csv_row(record))
        if n % 200 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get("/units", response_model=UnitPage)
def list_units(
    store: StoreDep,
    unit_filter: FilterDep,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=500, description="units per page")] = 50,
    cursor: Annotated[Text | None, Query(description="`next` of the previous page")] = None,
) -> UnitPage:
    try:
        records, next_cursor = store.list_units(limit=limit, cursor=cursor, filter=unit_filter)
    except BadCursor as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    return UnitPage(items=[UnitOut.from_record(r) for r in records], next=next_cursor)


@router.get("/units.csv", response_class=StreamingResponse)
def units_csv(store: StoreDep, unit_filter: FilterDep, _: Reader) -> StreamingResponse:
    """Every unit the filters select, newest first, streamed page by page."""
    return StreamingResponse(
        csv_lines(store, unit_filter),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="units.csv"'},
    )


@router.get("/units/{unit_id}", response_model=UnitOut)
def get_unit(unit_id: Text, store: StoreDep, _: Reader) -> UnitOut:
    record = store.get(unit_id)
    if record is None:
        raise HTTPException(404, detail=f"unit {unit_id} not found")
    return UnitOut.from_record(record)


@router.post("/units/{unit_id}/review", response_model=UnitOut)
def review_unit(unit_id: Text, review: ReviewIn, services: ServicesDep, who: Operator) -> UnitOut:
    """Confirm or override the verdict, correct the defect type and class, add a note (history is
    kept). A type given without a class is graded by the station's severity table: the unit's
    `severity` follows it, `review.type_severity` records it, `review.severity` stays null."""
    try:
        record = services.review(unit_id, Review(by=who.name, **review.model_dump()))
    except UnknownUnit as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    return UnitOut.from_record(record)


@router.get("/units/{unit_id}/reviews", response_model=ReviewHistoryOut)
def unit_reviews(unit_id: Text, store: StoreDep, _: Reader) -> ReviewHistoryOut:
    if store.get(unit_id) is None:
        raise HTTPException(404, detail=f"unit {unit_id} not found")
    return ReviewHistoryOut(unit_id=unit_id, reviews=[review_out(r) for r in store.reviews(unit_id)])


@router.get("/units/{unit_id}/overlay.png", response_class=FileResponse)
def unit_overlay(unit_id: Text, store: StoreDep, _: Reader):
    return _unit_file(store, unit_id, "overlay", "image/png")


@router.get("/units/{unit_id}/heatmap.png", response_class=FileResponse)
def unit_heatmap(unit_id: Text, store: StoreDep, _: Reader):
    return _unit_file(store, unit_id, "heatmap", "image/png")


@router.get("/units/{unit_id}/image.jpg", response_class=FileResponse)
def unit_image(unit_id: Text, store: StoreDep, _: Reader):
    return _unit_file(store, unit_id, "image", "image/jpeg")
