"""POST /api/v1/trigger: make the next frame of a camera in ``external`` trigger mode a unit."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.api.auth import Operator
from edge.api.dependencies import ServicesDep
from edge.line.pipeline import Pipeline
from edge.line.triggers.external import ExternalTrigger, TriggerBusy
from edge.text_fields import Name

router = APIRouter(prefix="/api/v1", tags=["trigger"])


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    station: Name | None = Field(None, description="this station's id (checked when given)")
    camera: Name | None = Field(
        None, description="camera to trigger; default: every camera in external mode"
    )
    unit_ref: Name | None = Field(None, description="the unit's own id, recorded with it")
    barcode: Name | None = Field(None, description="a scanned barcode: the same as unit_ref")

    @model_validator(mode="after")
    def _one_ref(self) -> TriggerIn:
        if self.unit_ref and self.barcode and self.unit_ref != self.barcode:
            raise ValueError(f"unit_ref {self.unit_ref!r} and barcode {self.barcode!r} differ")
        return self

    @property
    def ref(self) -> str | None:
        return self.unit_ref or self.barcode


class TriggerOut(BaseModel):
    station: str
    unit_ref: str | None
    cameras: list[str] = Field(description="cameras whose next frame becomes a unit")
    pending: dict[str, int] = Field(description="requests waiting for a frame, per camera")


def _targets(services, camera: str | None) -> list[Pipeline]:
    if camera is not None:
        pipeline = services.camera(camera)
        if pipeline is None:
            known = ", ".join(p.camera for p in services.pipelines) or "none"
            raise HTTPException(404, detail=f"no camera {camera!r} on this station (cameras: {known})")
        if not isinstance(pipeline.trigger, ExternalTrigger):
            raise HTTPException(
                409, detail=f"camera {camera} makes units by {pipeline.trigger.mode}, not on request"
            )
        return [pipeline]
    targets = [p for p in services.pipelines if isinstance(p.trigger, ExternalTrigger)]
    if not targets:
        raise HTTPException(409, detail="no camera of this station has trigger mode 'external'")
    return targets


@router.post("/trigger", response_model=TriggerOut, status_code=202)
def trigger(body: TriggerIn, services: ServicesDep, _: Operator) -> TriggerOut:
    """The next frame each camera captures after this request becomes a unit carrying unit_ref
    (the next, not the newest already waiting, which may show the previous unit). Answered once
    queued; the unit appears in the unit list when inspected (filter by unit_ref)."""
    station = services.config.station.id
    if body.station is not None and body.station != station:
        raise HTTPException(404, detail=f"this is station {station}, not {body.station}")
    targets = _targets(services, body.camera)
    stopped = [p.camera for p in targets if not p.running]
    if stopped:
        raise HTTPException(503, detail=f"camera {', '.join(stopped)} is not running: no frame would come")
    pending = {}
    for pipeline in targets:
        try:
            pending[pipeline.camera] = pipeline.trigger.request(body.ref, via="rest")
        except TriggerBusy as exc:
            raise HTTPException(503, detail=str(exc)) from exc
    return TriggerOut(station=station, unit_ref=body.ref, cameras=list(pending), pending=pending)
