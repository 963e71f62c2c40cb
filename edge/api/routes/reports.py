"""The manager's routes: summary and lots (open, close, list, report)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response

from edge.api.auth import Operator, Reader
from edge.api.dependencies import FilterDep, ServicesDep, StoreDep
from edge.api.schemas import LotIn, SummaryOut
from edge.reports.lot import lot_report
from edge.reports.pdf import lot_report_pdf
from edge.reports.summary import summary
from edge.storage.lots import LotConflict, NewLot, UnknownLot
from edge.text_fields import Printable
from edge.units import Lot

router = APIRouter(prefix="/api/v1", tags=["reports"])
# Lot ids are SQL INTEGERs, 32 bits on PostgreSQL (64 on SQLite): a larger number is no lot (422),
# not a database overflow (500).
LotId = Annotated[int, Path(ge=1, le=2**31 - 1, description="lot id")]


@router.get("/summary", response_model=SummaryOut)
def get_summary(services: ServicesDep, unit_filter: FilterDep, _: Reader) -> dict[str, Any]:
    """Yield, first-pass yield, units per hour, defect Pareto, by station and by shift."""
    return summary(services.store, unit_filter, services.config.reports)


@router.post("/lots", response_model=Lot, status_code=201)
def open_lot(lot: LotIn, services: ServicesDep, who: Operator) -> Lot:
    """Open a lot on a station; units stored there from now on belong to it."""
    station = lot.station or services.config.station.id
    new = NewLot(**{**lot.model_dump(), "station": station}, opened_by=who.name)
    try:
        return services.store.lots.open(new)
    except LotConflict as exc:
        raise HTTPException(409, detail=str(exc)) from exc


@router.post("/lots/{lot_id}/close", response_model=Lot)
def close_lot(lot_id: LotId, store: StoreDep, who: Operator) -> Lot:
    try:
        return store.lots.close(lot_id, by=who.name)
    except UnknownLot as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except LotConflict as exc:
        raise HTTPException(409, detail=str(exc)) from exc


@router.get("/lots", response_model=list[Lot])
def list_lots(
    store: StoreDep,
    _: Reader,
    station: Annotated[Annotated[str, Printable(max_length=128)] | None, Query()] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Lot]:
    """Newest first."""
    return store.lots.list(station=station, open_only=open_only, limit=limit)


@router.get("/lots/{lot_id}", response_model=Lot)
def get_lot(lot_id: LotId, store: StoreDep, _: Reader) -> Lot:
    try:
        return store.lots.get(lot_id)
    except UnknownLot as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get("/lots/{lot_id}/report")
def get_lot_report(lot_id: LotId, services: ServicesDep, _: Reader) -> dict[str, Any]:
    """Counts, defects by class, ISO 2859-1 acceptance and, for fabric, ASTM D5430 points."""
    try:
        lot = services.store.lots.get(lot_id)
    except UnknownLot as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    return lot_report(services.store, lot, services.config)


@router.get(
    "/lots/{lot_id}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the lot report as a PDF"}},
)
def get_lot_report_pdf(lot_id: LotId, services: ServicesDep, _: Reader) -> Response:
    """The lot report as a PDF: header, AQL table, 4-point figures, verdict, failed units."""
    try:
        lot = services.store.lots.get(lot_id)
    except UnknownLot as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    report = lot_report(services.store, lot, services.config)
    data = lot_report_pdf(services.store, lot, report)
    return Response(
        data, media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="lot-{lot.id}-report.pdf"'},
    )
