"""The REST API and the live page: ``create_app(services)``. Short routes that call the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from edge.api.auth import Reader
from edge.api.dependencies import ServicesDep, StoreDep, get_services
from edge.api.health import health
from edge.api.inspection_slots import InspectionSlots
from edge.api.metrics import OutputsCollector, PipelineCollector
from edge.api.routes import admin, inspect, pages, reports, trigger, units
from edge.api.schemas import UnitPage
from edge.api.storage_health import StorageCollector, answer_database_away_with_503
from edge.api.validation_errors import answer_validation_errors_with_422
from edge.services import ModelInfo, Services
from edge.units import ReviewOut, UnitLinks, UnitOut

if TYPE_CHECKING:
    from edge.line.outputs.dispatcher import OutputDispatcher

__all__ = [
    "ModelInfo", "Services", "ServicesDep", "StoreDep", "UnitOut", "UnitPage", "ReviewOut",
    "UnitLinks", "create_app", "get_services", "health",
]

STATIC_DIR = Path(__file__).parent / "static"


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
