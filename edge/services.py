"""The one object the API and the line share: the station's config, store, cameras' pipelines and
model, built once by ``build_services`` at the entry point (tests build their own)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge.config import CameraConfig, EdgeConfig
from edge.line.defect_grading import DefectGrading, reviewed_type_severity
from edge.line.pipeline import Pipeline
from edge.line.sources import build_source
from edge.line.triggers.base import TriggerContext
from edge.line.triggers.build import build_trigger
from edge.storage.store import UnitStore
from edge.units import Review, UnitRecord
from qc.card import ModelRefused
from qc.inference import Inferencer
from qc.inspection_model import InspectionModel

if TYPE_CHECKING:
    from edge.line.outputs.dispatcher import OutputDispatcher

log = logging.getLogger(__name__)


@dataclass
class ModelInfo:
    name: str
    version: str
    dir: str
    thresholds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, inferencer: Inferencer) -> ModelInfo:
        """What /healthz and the admin routes tell about the model an inferencer serves."""
        thresholds = inferencer.card.thresholds
        return cls(
            inferencer.name, inferencer.version, str(inferencer.model_dir),
            {"image": thresholds.image, "pixel": thresholds.pixel},
        )


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
        new = InspectionModel(model_dir, threads=self.config.pipeline.inference_threads)
        for pipeline in self.pipelines:
            pipeline.inferencer = new  # one attribute store: the worker picks it up per unit
        self.inferencer = new
        self.model = ModelInfo.of(new)
        return self.model

    def review(self, unit_id: str, review: Review) -> UnitRecord:
        """Record an operator's review (edge.storage.store.UnitStore.review; raises UnknownUnit).

        A reviewed defect type is graded by the station's severity table at the unit's regions'
        sizes (edge.line.defect_grading.reviewed_type_severity) and recorded with the review: the
        unit counts under that class unless the operator gave one. The model's regions keep the
        grades they were stored with."""
        table = self.config.severity
        return self.store.review(
            unit_id, review,
            grade_type=lambda defect_type, defects: reviewed_type_severity(table, defect_type, defects),
        )

    def inspector(self) -> Any:
        if self.inferencer is not None:
            return self.inferencer
        return self.pipeline.inferencer if self.pipeline is not None else None


def build_services(config: EdgeConfig, outputs: OutputDispatcher | None = None) -> Services:
    """Load the model (refused models raise qc.card.ModelRefused), open the store, wire the line.

    ``outputs``: where stored units go besides the database (its on_unit is the pipeline's hook).
    """
    try:
        inferencer = InspectionModel(config.model.dir, threads=config.pipeline.inference_threads)
    except ModelRefused as exc:
        how = config.how_resolved("model.dir")  # which folder a relative model.dir was taken from
        if how is None:
            raise
        raise ModelRefused(f"{exc}; {how}") from exc
    storage = config.storage
    store = UnitStore(
        storage.resolved_database_url(),
        storage.data_dir,
        busy_timeout_s=storage.sqlite_busy_timeout_s,
        connect_timeout_s=storage.postgres_connect_timeout_s,
        spool_retry_s=storage.spool_retry_s,
    )
    swept = store.sweep_after_crash()
    if swept.total:
        log.warning("startup sweep after an unclean stop: %s", swept)
    on_unit = outputs.on_unit if outputs is not None else None
    pipelines = [
        build_pipeline(camera, config, inferencer, store, on_unit=on_unit)
        for camera in config.camera_list()
    ]
    return Services(
        config=config, store=store, pipelines=pipelines, model=ModelInfo.of(inferencer),
        inferencer=inferencer,
    )


def build_pipeline(
    camera: CameraConfig, config: EdgeConfig, inferencer, store: UnitStore, *, on_unit=None
) -> Pipeline:
    """One camera's line: its source and trigger, the station's model, store and outputs."""
    station = config.station
    return Pipeline(
        build_source(camera.source),
        inferencer,
        store,
        station=station,
        camera=camera,
        settings=config.pipeline,
        rules=config.rules,
        grading=DefectGrading(config.severity),
        trigger=build_trigger(camera.trigger, TriggerContext(station.id, station.line, camera.id)),
        on_unit=on_unit,
    )
