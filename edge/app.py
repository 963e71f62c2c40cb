"""The REST API and the live page: ``create_app(services)``. Short routes that call the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from edge.deps import ModelInfo, Services, ServicesDep, StoreDep, get_services
from edge.routes import admin, inspect, pages, reports, units
from edge.schemas import ReviewOut, UnitLinks, UnitOut, UnitPage
from edge.storage_health import StorageCollector, answer_database_away_with_503, storage_health

if TYPE_CHECKING:
    from edge.outputs.dispatcher import OutputDispatcher

__all__ = [
    "ModelInfo", "Services", "ServicesDep", "StoreDep", "UnitOut", "UnitPage", "ReviewOut",
    "UnitLinks", "create_app", "get_services", "health",
]

STATIC_DIR = Path(__file__).parent / "static"
RECENT_ERROR_S = 60.0  # an inference error older than this no longer degrades /healthz
INVALID_REASONS = ("empty", "malformed", "wrong_size", "stale", "unreadable")


def health(services: Services, outputs: OutputDispatcher | None = None) -> dict[str, Any]:
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
        storage_problem = pipeline.storage_problem()  # "disk full: <data_dir>, <N> MB free; ..."
        if storage_problem:
            problems.append(storage_problem)
    database = storage_health(services.store)  # database unreachable, units in the spool
    problems.extend(database.problems)
    if outputs is not None:
        problems.extend(outputs.problems())  # e.g. "mqtt broker 10.0.0.5:1883 unreachable since"
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
        "units": database.units,
        "database": database.status,
        "units_by_verdict": snap.get("units_by_verdict", {}),
        "frames_dropped": snap.get("frames_dropped", 0),
        "frames_invalid": snap.get("frames_invalid", {}),
        "queued": snap.get("queued", 0),
        "last_timings_ms": snap.get("last_timings", {}),
        "outputs": outputs.snapshot() if outputs is not None else {},
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
        storage = snap["storage"]
        yield counter(
            "qc_storage_errors", "unit writes the disk refused (each retry counts)", storage["errors"]
        )
        yield GaugeMetricFamily(
            "qc_storage_held_units", "decided units waiting for the disk to take them",
            value=storage["held"],
        )
        if storage["free_bytes"] is not None:
            yield GaugeMetricFamily(
                "qc_disk_free_bytes", "free bytes on the filesystem of the data folder",
                value=storage["free_bytes"],
            )
        hist = snap["inference_seconds"]
        cumulative, buckets = 0, []
        for bound, n in zip([*hist["bounds_s"], float("inf")], hist["counts"]):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "qc_inference_seconds", "model inference time per unit", buckets=buckets,
            sum_value=hist["sum_s"],
        )


class OutputsCollector:
    """qc_outputs_{sent,failed,dropped}{output=...} and qc_outputs_queued, read at scrape time."""

    def __init__(self, outputs: OutputDispatcher):
        self.outputs = outputs

    def collect(self):
        snap = self.outputs.snapshot()
        docs = {
            "sent": "units delivered by the output",
            "failed": "units the output gave up on (refused, retries spent, too late)",
            "dropped": "units dropped from the output's full queue, or left queued at shutdown",
        }
        for key, doc in docs.items():
            family = CounterMetricFamily(f"qc_outputs_{key}", doc, labels=["output"])
            for name, figures in snap.items():
                family.add_metric([name], figures[key])
            yield family
        queued = GaugeMetricFamily("qc_outputs_queued", "units waiting for the output", labels=["output"])
        for name, figures in snap.items():
            queued.add_metric([name], figures["queued"])
        yield queued


def create_app(services: Services, outputs: OutputDispatcher | None = None) -> FastAPI:
    """``outputs``: the station's MQTT / webhook / reject outputs, for /metrics and /healthz."""
    app = FastAPI(title="Garment QC station", version="1")
    app.state.services = services
    # One registry per app, not the process-wide default: tests and several stations in one
    # process each get their own figures.
    registry = CollectorRegistry()
    registry.register(PipelineCollector(services))
    registry.register(StorageCollector(services.store))
    answer_database_away_with_503(app, services.store)
    app.state.outputs = outputs
    if outputs is not None:
        registry.register(OutputsCollector(outputs))

    for module in (units, reports, inspect, admin, pages):
        app.include_router(module.router)
    cors = services.config.api.cors_origins
    if cors:  # off unless origins are named: the API serves the station's own pages
        app.add_middleware(
            CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )

    @app.get("/healthz")
    def healthz(services: ServicesDep) -> dict[str, Any]:
        return health(services, outputs)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    def live_page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app
