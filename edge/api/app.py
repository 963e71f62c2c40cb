"""The REST API and the live page: ``create_app(services)``. Short routes that call the store."""

from __future__ import annotations

from collections import Counter
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

from edge.api.auth import Reader
from edge.api.dependencies import ServicesDep, StoreDep, get_services
from edge.api.inspection_slots import InspectionSlots
from edge.api.routes import admin, inspect, pages, reports, trigger, units
from edge.api.schemas import UnitPage
from edge.api.storage_health import StorageCollector, answer_database_away_with_503, storage_health
from edge.api.validation_errors import answer_validation_errors_with_422
from edge.line.pipeline import Pipeline
from edge.services import ModelInfo, Services
from edge.units import ReviewOut, UnitLinks, UnitOut

if TYPE_CHECKING:
    from edge.line.outputs.dispatcher import OutputDispatcher

__all__ = [
    "ModelInfo", "Services", "ServicesDep", "StoreDep", "UnitOut", "UnitPage", "ReviewOut",
    "UnitLinks", "create_app", "get_services", "health",
]

STATIC_DIR = Path(__file__).parent / "static"
RECENT_ERROR_S = 60.0  # an inference error older than this no longer degrades /healthz
INVALID_REASONS = ("empty", "malformed", "wrong_size", "stale", "unreadable")


def camera_health(pipeline: Pipeline) -> dict[str, Any]:
    """One camera's state, and its problems in words, each naming the camera."""
    snap = pipeline.snapshot()
    problems: list[str] = []
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
    problems.extend(pipeline.trigger.problems())  # e.g. its MQTT trigger broker is unreachable
    return {
        "id": snap["camera"],
        "problems": [f"camera {snap['camera']}: {p}" for p in problems],
        "running": snap["running"],
        "trigger": snap["trigger"],
        "source": {
            **pipeline.source.describe(),
            **{k: v for k, v in source_state.items() if k != "skipped"},
            "frames_read": snap["frames_read"],
        },
        "units_by_verdict": snap["units_by_verdict"],
        "frames_dropped": snap["frames_dropped"],
        "frames_invalid": snap["frames_invalid"],
        "queued": snap["queued"],
        "last_timings_ms": snap["last_timings"],
    }


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    return dict(sum((Counter(c) for c in counts), Counter()))


def health(services: Services, outputs: OutputDispatcher | None = None) -> dict[str, Any]:
    """Status plus, in words, everything that is wrong. Station-wide figures add up the cameras;
    ``cameras`` has each one, and ``source`` is the first camera's (as for a one-camera station)."""
    problems: list[str] = []
    cameras = [camera_health(p) for p in services.pipelines]
    if services.model is None:
        problems.append("no model loaded")
    if not cameras:
        problems.append("no pipeline: the API serves stored units only")
    for camera in cameras:
        problems.extend(camera["problems"])
    for pipeline in services.pipelines:
        storage_problem = pipeline.storage_problem()  # "disk full: <data_dir>, <N> MB free; ..."
        if storage_problem and storage_problem not in problems:
            problems.append(storage_problem)
    database = storage_health(services.store)  # database unreachable, units in the spool
    problems.extend(database.problems)
    if outputs is not None:
        problems.extend(outputs.problems())  # e.g. "mqtt broker 10.0.0.5:1883 unreachable since"
    first = cameras[0] if cameras else {}
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "station": {"id": services.config.station.id, "line": services.config.station.line},
        "model": vars(services.model) if services.model else None,
        "cameras": cameras,
        "source": first.get("source", {}),
        "units": database.units,
        "database": database.status,
        "units_by_verdict": _summed([c["units_by_verdict"] for c in cameras]),
        "frames_dropped": sum(c["frames_dropped"] for c in cameras),
        "frames_invalid": _summed([c["frames_invalid"] for c in cameras]),
        "queued": sum(c["queued"] for c in cameras),
        "last_timings_ms": first.get("last_timings_ms", {}),
        "outputs": outputs.snapshot() if outputs is not None else {},
    }


class PipelineCollector:
    """Prometheus metrics read from the pipelines' snapshots at scrape time, so the counters live
    in one place and the pipeline knows nothing of Prometheus. Every series of a camera's line
    carries its ``camera`` label; the disk's figures are the station's, without one."""

    def __init__(self, services: Services):
        self.services = services

    def collect(self):
        pipelines = self.services.pipelines
        if not pipelines:
            return
        snaps = [p.snapshot() for p in pipelines]
        families: dict[str, Any] = {}

        def family(kind, name: str, doc: str, labels: tuple[str, ...] = ()):
            if name not in families:
                families[name] = kind(name, doc, labels=["camera", *labels])
            return families[name]

        for snap in snaps:
            cam = snap["camera"]
            source = snap["source"]

            def counter(name: str, doc: str, value: float) -> None:
                family(CounterMetricFamily, name, doc).add_metric([cam], value)

            def gauge(name: str, doc: str, value: float) -> None:
                family(GaugeMetricFamily, name, doc).add_metric([cam], value)

            def by_label(name: str, doc: str, label: str, counts: dict[str, int]) -> None:
                f = family(CounterMetricFamily, name, doc, (label,))
                for key, n in sorted(counts.items()):
                    f.add_metric([cam, key], n)

            counter("qc_frames_read", "frames delivered by the source", snap["frames_read"])
            counter("qc_frames_dropped", "frames dropped as inference fell behind", snap["frames_dropped"])
            # Known labels start at zero, so rate() sees the first skip and dashboards the series.
            invalid = {**dict.fromkeys(INVALID_REASONS, 0), **snap["frames_invalid"]}
            by_label("qc_frames_invalid", "frames skipped as unusable", "reason", invalid)
            verdicts = {"pass": 0, "fail": 0, **snap["units_by_verdict"]}
            by_label("qc_units", "units inspected and stored", "verdict", verdicts)
            counter("qc_unit_errors", "units failed in inference or storage", snap["errors"])
            counter("qc_source_reconnects", "tries to reopen a lost source", source["reconnects"])
            gauge("qc_source_up", "1 while frames arrive", int(source["up"]))
            gauge("qc_queue_depth", "frames awaiting inference", snap["queued"])
            counter("qc_trigger_units", "units the camera's trigger made of its frames",
                    snap["trigger"]["units"])
            hist = snap["inference_seconds"]
            cumulative, buckets = 0, []
            for bound, n in zip([*hist["bounds_s"], float("inf")], hist["counts"]):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family(HistogramMetricFamily, "qc_inference_seconds", "model inference time per unit"
                   ).add_metric([cam], buckets, sum_value=hist["sum_s"])
        yield from families.values()
        # The disk is the station's: its figures add up the cameras and carry no camera label.
        storage = [s["storage"] for s in snaps]
        yield CounterMetricFamily(
            "qc_storage_errors", "unit writes the disk refused (each retry counts)",
            value=sum(s["errors"] for s in storage),
        )
        yield GaugeMetricFamily(
            "qc_storage_held_units", "decided units waiting for the disk to take them",
            value=sum(s["held"] for s in storage),
        )
        free_bytes = snaps[0]["storage"]["free_bytes"]
        if free_bytes is not None:
            yield GaugeMetricFamily(
                "qc_disk_free_bytes", "free bytes on the filesystem of the data folder", value=free_bytes
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
    app.state.inspection_slots = InspectionSlots(services.config.api.max_concurrent_inspections)
    # One registry per app, not the process-wide default: tests and several stations in one
    # process each get their own figures.
    registry = CollectorRegistry()
    registry.register(PipelineCollector(services))
    registry.register(StorageCollector(services.store))
    answer_database_away_with_503(app, services.store)
    answer_validation_errors_with_422(app)
    app.state.outputs = outputs
    if outputs is not None:
        registry.register(OutputsCollector(outputs))

    for module in (units, reports, inspect, admin, trigger, pages):
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
    def metrics(_: Reader) -> Response:  # a scraper sends its key as a bearer token
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    def live_page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app
