"""The REST API and the live page: ``create_app(services)``. Short routes that call the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from pydantic import BaseModel, Field

from edge.config import EdgeConfig
from edge.files import UnsafePath
from edge.pipeline import Pipeline
from edge.store import BadCursor, UnitRecord, UnitStore
from qc.decision import Defect

STATIC_DIR = Path(__file__).parent / "static"
RECENT_ERROR_S = 60.0  # an inference error older than this no longer degrades /healthz
INVALID_REASONS = ("empty", "malformed", "wrong_size", "stale", "unreadable")
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}  # unit files never change


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
    pipeline: Pipeline | None = None
    model: ModelInfo | None = None


class ReviewOut(BaseModel):
    by: str
    at: datetime | None
    verdict: str
    note: str | None


class UnitLinks(BaseModel):
    image: str
    heatmap: str
    overlay: str


class UnitOut(BaseModel):
    id: str
    station: str
    line: str
    lot: str | None
    style: str | None
    captured_at: datetime
    decided_at: datetime
    verdict: str = Field(description="pass | fail | needs_review")
    score: float
    defects: list[Defect]
    model_name: str
    model_version: str
    thresholds: dict[str, float]
    timings: dict[str, float] = Field(description="milliseconds per stage")
    review: ReviewOut | None
    links: UnitLinks

    @classmethod
    def from_record(cls, r: UnitRecord) -> UnitOut:
        base = f"/api/v1/units/{r.id}"
        review = None
        if r.review_verdict is not None:
            review = ReviewOut(
                by=r.review_by or "", at=r.reviewed_at, verdict=r.review_verdict, note=r.review_note
            )
        return cls(
            id=r.id,
            station=r.station,
            line=r.line,
            lot=r.lot,
            style=r.style,
            captured_at=r.captured_at,
            decided_at=r.decided_at,
            verdict=r.verdict,
            score=r.score,
            defects=[Defect.model_validate(d) for d in r.defects],
            model_name=r.model_name,
            model_version=r.model_version,
            thresholds=r.thresholds,
            timings=r.timings,
            review=review,
            links=UnitLinks(
                image=f"{base}/image.jpg", heatmap=f"{base}/heatmap.png", overlay=f"{base}/overlay.png"
            ),
        )


class UnitPage(BaseModel):
    items: list[UnitOut]
    next: str | None = Field(description="cursor of the next (older) page; null on the last page")


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_store(services: ServicesDep) -> UnitStore:
    return services.store


StoreDep = Annotated[UnitStore, Depends(get_store)]


def _unit_file(store: UnitStore, unit_id: str, kind: str, media_type: str) -> FileResponse:
    try:
        path = store.file_path(unit_id, kind)
    except UnsafePath as exc:
        raise HTTPException(403, detail=f"unit {unit_id}: {exc}") from exc
    if path is None:
        if store.get(unit_id) is None:
            raise HTTPException(404, detail=f"unit {unit_id} not found")
        raise HTTPException(404, detail=f"unit {unit_id} has no {kind} file on disk")
    return FileResponse(path, media_type=media_type, headers=IMMUTABLE)


def health(services: Services) -> dict[str, Any]:
    """Status plus, in words, everything that is wrong."""
    problems: list[str] = []
    pipeline = services.pipeline
    snap: dict[str, Any] = pipeline.snapshot() if pipeline else {}
    if services.model is None:
        problems.append("no model loaded")
    if pipeline is None:
        problems.append("no pipeline: the API serves stored units only")
    else:
        source_state = snap["source"]
        if snap["source_error"]:
            problems.append(snap["source_error"])
        elif source_state["down_since"] and not source_state["up"] and snap["running"]:
            problems.append(
                f"source down since {source_state['down_since']}, reconnecting, attempt "
                f"{source_state['attempt']}: {source_state['last_error']}"
            )
        elif not snap["running"]:
            problems.append("pipeline is not running: no new units are inspected")
        age = snap["last_error_age_s"]
        if age is not None and age < RECENT_ERROR_S:
            problems.append(
                f"{snap['errors']} unit(s) failed so far, the last {age:.0f} s ago: {snap['last_error']}"
            )
    source = services.pipeline.source.describe() if pipeline else {}
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "station": {"id": services.config.station.id, "line": services.config.station.line},
        "model": vars(services.model) if services.model else None,
        "source": {
            **source,
            **{k: v for k, v in snap.get("source", {}).items() if k != "skipped"},
            "frames_read": snap.get("frames_read", 0),
        },
        "units": services.store.count(),
        "units_by_verdict": snap.get("units_by_verdict", {}),
        "frames_dropped": snap.get("frames_dropped", 0),
        "frames_invalid": snap.get("frames_invalid", {}),
        "queued": snap.get("queued", 0),
        "last_timings_ms": snap.get("last_timings", {}),
    }


class PipelineCollector:
    """Prometheus metrics read from the pipeline's snapshot at scrape time, so the counters live in
    one place and the pipeline knows nothing of Prometheus."""

    def __init__(self, services: Services):
        self.services = services

    def collect(self):
        pipeline = self.services.pipeline
        if pipeline is None:
            return
        snap = pipeline.snapshot()
        source = snap["source"]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        def by_label(name: str, doc: str, label: str, counts: dict[str, int]):
            family = CounterMetricFamily(name, doc, labels=[label])
            for key, n in sorted(counts.items()):
                family.add_metric([key], n)
            return family

        yield counter("qc_frames_read", "frames delivered by the source", snap["frames_read"])
        yield counter(
            "qc_frames_dropped", "frames dropped as inference fell behind", snap["frames_dropped"]
        )
        # Known labels start at zero, so rate() sees the first skip and dashboards the series.
        invalid = {**dict.fromkeys(INVALID_REASONS, 0), **snap["frames_invalid"]}
        yield by_label("qc_frames_invalid", "frames skipped as unusable", "reason", invalid)
        verdicts = {"pass": 0, "fail": 0, **snap["units_by_verdict"]}
        yield by_label("qc_units", "units inspected and stored", "verdict", verdicts)
        yield counter("qc_unit_errors", "units failed in inference or storage", snap["errors"])
        yield counter("qc_source_reconnects", "tries to reopen a lost source", source["reconnects"])
        yield GaugeMetricFamily("qc_source_up", "1 while frames arrive", value=int(source["up"]))
        yield GaugeMetricFamily("qc_queue_depth", "frames awaiting inference", value=snap["queued"])
        hist = snap["inference_seconds"]
        cumulative, buckets = 0, []
        for bound, n in zip([*hist["bounds_s"], float("inf")], hist["counts"]):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "qc_inference_seconds", "model inference time per unit", buckets=buckets,
            sum_value=hist["sum_s"],
        )


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Garment QC station", version="1")
    app.state.services = services
    # One registry per app, not the process-wide default: tests and several stations in one
    # process each get their own figures.
    registry = CollectorRegistry()
    registry.register(PipelineCollector(services))

    @app.get("/api/v1/units", response_model=UnitPage)
    def list_units(
        store: StoreDep,
        limit: Annotated[int, Query(ge=1, le=500, description="units per page")] = 50,
        cursor: Annotated[str | None, Query(description="`next` of the previous page")] = None,
    ) -> UnitPage:
        try:
            records, next_cursor = store.list_units(limit=limit, cursor=cursor)
        except BadCursor as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        return UnitPage(items=[UnitOut.from_record(r) for r in records], next=next_cursor)

    @app.get("/api/v1/units/{unit_id}", response_model=UnitOut)
    def get_unit(unit_id: str, store: StoreDep) -> UnitOut:
        record = store.get(unit_id)
        if record is None:
            raise HTTPException(404, detail=f"unit {unit_id} not found")
        return UnitOut.from_record(record)

    @app.get("/api/v1/units/{unit_id}/overlay.png", response_class=FileResponse)
    def unit_overlay(unit_id: str, store: StoreDep):
        return _unit_file(store, unit_id, "overlay", "image/png")

    @app.get("/api/v1/units/{unit_id}/heatmap.png", response_class=FileResponse)
    def unit_heatmap(unit_id: str, store: StoreDep):
        return _unit_file(store, unit_id, "heatmap", "image/png")

    @app.get("/api/v1/units/{unit_id}/image.jpg", response_class=FileResponse)
    def unit_image(unit_id: str, store: StoreDep):
        return _unit_file(store, unit_id, "image", "image/jpeg")

    @app.get("/healthz")
    def healthz(services: ServicesDep) -> dict[str, Any]:
        return health(services)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    def live_page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app
