"""What routes receive: the services object built once at the entry point, and typed aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from pydantic import ValidationError

from edge.config import EdgeConfig
from edge.line.pipeline import Pipeline
from edge.storage.query import UnitFilter
from edge.storage.store import UnitStore
from edge.text_fields import Text


@dataclass
class ModelInfo:
    name: str
    version: str
    dir: str
    thresholds: dict[str, float] = field(default_factory=dict)


@dataclass
class Services:
    """Everything the routes need, built once at the entry point (tests build their own)."""

    config: EdgeConfig
    store: UnitStore
    pipeline: Pipeline | None = None  # the first camera's, for code that knows of one camera
    model: ModelInfo | None = None
    inferencer: Any = None  # for POST /inspect; default: the pipeline's
    pipelines: list[Pipeline] = field(default_factory=list)  # one per camera, in config order

    def __post_init__(self) -> None:
        if self.pipelines and self.pipeline is None:
            self.pipeline = self.pipelines[0]
        elif self.pipeline is not None and not self.pipelines:
            self.pipelines = [self.pipeline]
        cameras = [p.camera for p in self.pipelines]
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"each pipeline needs its own camera id, got {cameras}")

    def camera(self, camera_id: str) -> Pipeline | None:
        return next((p for p in self.pipelines if p.camera == camera_id), None)

    def swap_model(self, model_dir: str) -> ModelInfo:
        """Load and verify another model, then switch the line to it between two units.

        A model that fails verification raises qc.card.ModelRefused before anything changes:
        the station keeps serving the model it had.
        """
        from qc.inference import Inferencer

        new = Inferencer(model_dir, threads=self.config.pipeline.inference_threads)
        for pipeline in self.pipelines:
            pipeline.inferencer = new  # one attribute store: the worker picks it up per unit
        self.inferencer = new
        thresholds = new.card.thresholds
        self.model = ModelInfo(
            new.name, new.version, str(new.model_dir), {"image": thresholds.image, "pixel": thresholds.pixel}
        )
        return self.model

    def inspector(self) -> Any:
        if self.inferencer is not None:
            return self.inferencer
        return self.pipeline.inferencer if self.pipeline is not None else None


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
