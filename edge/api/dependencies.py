"""What routes receive: the services object built once at the entry point, and typed aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from pydantic import ValidationError

from edge.services import Services
from edge.storage.query import UnitFilter
from edge.storage.store import UnitStore
from edge.text_fields import Text


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_store(services: ServicesDep) -> UnitStore:
    return services.store


StoreDep = Annotated[UnitStore, Depends(get_store)]


def validation_detail(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'query'}: {e['msg']}" for e in exc.errors()
    )


def unit_filter(
    from_: Annotated[datetime | None, Query(alias="from", description="captured at or after (ISO 8601; no zone: UTC)")] = None,
    to: Annotated[datetime | None, Query(description="captured before (ISO 8601; no zone: UTC)")] = None,
    station: Annotated[Text | None, Query()] = None,
    line: Annotated[Text | None, Query()] = None,
    lot: Annotated[Text | None, Query(description="lot id")] = None,
    style: Annotated[Text | None, Query()] = None,
    camera: Annotated[Text | None, Query(description="camera id")] = None,
    unit_ref: Annotated[Text | None, Query(description="unit id or barcode given by a trigger")] = None,
    verdict: Annotated[Text | None, Query(description="final verdict: pass | fail | needs_review")] = None,
    defect_type: Annotated[Text | None, Query()] = None,
    min_score: Annotated[float | None, Query()] = None,
    max_score: Annotated[float | None, Query()] = None,
) -> UnitFilter:
    values = {
        "from": from_, "to": to, "station": station, "line": line, "lot": lot, "style": style,
        "camera": camera, "unit_ref": unit_ref,
        "verdict": verdict, "defect_type": defect_type, "min_score": min_score, "max_score": max_score,
    }
    try:
        return UnitFilter.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise HTTPException(422, detail=validation_detail(exc)) from exc


FilterDep = Annotated[UnitFilter, Depends(unit_filter)]
